"""python -m magc_plugin.training [--out FOLDER] [--work FOLDER] [--device auto] [--steps-scale 1.0] [--steps STAGE=N ...]
    [--from-model FOLDER] [--lcm RATE] [--pack FILE]
python -m magc_plugin.training --write-pack FILE"""
import argparse
import os

# Spinning OpenMP workers waste most of a small shared CPU (measured 3x slower with 2
# threads beside another busy process); must be set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from .. import data  # noqa: E402
from ..codec.folders import SHIPPED_MODELS  # noqa: E402
from ..codec.model import resolve_device  # noqa: E402
from .recipe import CPU_STEPS, GPU_STEPS, Trainer  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m magc_plugin.training", description=__doc__)
    parser.add_argument("--out", default=str(SHIPPED_MODELS / "compact"), help="model folder to write")
    parser.add_argument("--work", default="runs/train", help="checkpoints and logs (resumable)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every stage's step count")
    parser.add_argument("--steps", nargs="+", default=[], metavar="STAGE=N",
                        help=f"set stages' step counts (stages: {', '.join(CPU_STEPS)}), after --steps-scale")
    parser.add_argument("--from-model", metavar="FOLDER",
                        help="go on from this model folder (e.g. the shipped one): its stages count as trained, and a "
                             "stage given more steps is extended from its weights")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    parser.add_argument("--lcm", metavar="RATE", help="train only this rate's latent compression module (rates can "
                                                      "run in parallel processes, e.g. one thread each)")
    parser.add_argument("--write-pack", metavar="FILE",
                        help="write the training split into one file (image files and class rasters) and exit: "
                             "train from it with --pack where ../shared/data or GDAL is missing (a GPU machine)")
    parser.add_argument("--pack", metavar="FILE", help="train from this training pack instead of ../shared/data")
    args = parser.parse_args(argv)
    if args.write_pack:
        if not data.have_data():
            parser.error(f"--write-pack reads ../shared/data, which is not at {data.data_root()}")
        print(f"{data.write_training_pack(args.write_pack)} images written to {args.write_pack}")
        return
    if args.pack and not os.path.isfile(args.pack):
        parser.error(f"--pack {args.pack}: no such file")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    base = GPU_STEPS if device.type == "cuda" else CPU_STEPS
    steps = {k: max(1, int(v * args.steps_scale)) for k, v in base.items()}
    for item in args.steps:
        stage, _, count = item.partition("=")
        if stage not in steps or not count.isdigit():
            parser.error(f"--steps takes STAGE=N with STAGE one of {', '.join(steps)}; got {item!r}")
        steps[stage] = int(count)
    trainer = Trainer(args.work, args.out, device, steps=steps, pack=args.pack)
    if args.from_model:
        trainer.seed_from(args.from_model)
    trainer.run(codec_only=args.lcm and f"lcm-{args.lcm}")


if __name__ == "__main__":
    main()
