"""Paired differences of benchmark figures over the same samples, with their standard errors.

A model change counts when it moves a figure by more than the noise of the measurement. Samples differ far more
from each other than two models differ on one sample, so two runs are compared sample by sample: per-image figures
by the mean and standard error of the per-sample differences (each sample's decode seeds averaged first), mIoU
(which pools confusion matrices, not per-image figures) by a bootstrap over the samples.

    python -m magc_plugin.evaluation.paired OLD_REPORT NEW_REPORT [--codecs magc,magc-stage1] [--out paired.csv]

compares two reports of `bench` (their per_image.csv and segmentation.npz) over the samples and groups they share.
"""
import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from .metrics import PER_IMAGE_METRICS, format_value
from .segmentation import IoUMeter

GROUP_KEYS = ("codec", "rate", "match", "steps")
SEGMENTATION_FIGURES = ("miou_gt", "building_iou_gt", "miou_vs_original")
PAIRED_FIGURES = ("bpp",) + PER_IMAGE_METRICS + SEGMENTATION_FIGURES
BOOTSTRAP_DRAWS, BOOTSTRAP_SEED = 1000, 0  # a fixed seed: the same reports give the same standard errors


def group_key(row):
    """A row's group as text, the same for rows made in memory and rows read back from per_image.csv."""
    return tuple(str(row[k]) for k in GROUP_KEYS)


def per_sample(rows, metric):
    """{sample: the mean of `metric` over its rows (its decode seeds)}, NaN figures left out."""
    values = defaultdict(list)
    for row in rows:
        value = float(row[metric]) if row.get(metric) not in (None, "", "n/a") else math.nan
        if not math.isnan(value):
            values[row["sample"]].append(value)
    return {sample: float(np.mean(v)) for sample, v in values.items()}


def difference(old_rows, new_rows, metric):
    """(mean over the shared samples of new - old, its standard error, samples): NaN where fewer than 2."""
    old, new = per_sample(old_rows, metric), per_sample(new_rows, metric)
    shared = sorted(set(old) & set(new))
    if len(shared) < 2:
        return math.nan, math.nan, len(shared)
    d = np.array([new[s] - old[s] for s in shared])
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))), len(d)


def segmentation_difference(old_meters, new_meters, figure):
    """(new - old of a segmentation figure pooled over the shared samples, its bootstrap standard error, samples)
    from {sample: IoUMeter} of each run."""
    shared = sorted(set(old_meters) & set(new_meters))
    if len(shared) < 2:
        return math.nan, math.nan, len(shared)

    def pooled(meters, picks):
        return IoUMeter.pooled(meters[shared[i]] for i in picks).scores()[figure]

    every = range(len(shared))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = [pooled(new_meters, picks) - pooled(old_meters, picks)
             for picks in (rng.integers(0, len(shared), len(shared)) for _ in range(BOOTSTRAP_DRAWS))]
    draws = [d for d in draws if not math.isnan(d)]
    return (pooled(new_meters, every) - pooled(old_meters, every),
            float(np.std(draws, ddof=1)) if len(draws) > 1 else math.nan, len(shared))


def figure_difference(old, new, figure):
    """(difference, standard error, samples) of one figure between two groups, each (rows, {sample: IoUMeter})."""
    if figure in SEGMENTATION_FIGURES:
        return segmentation_difference(old[1], new[1], figure)
    return difference(old[0], new[0], figure)


# -- reports on disk ------------------------------------------------------------------------------

def save_segmentation(path, meters):
    """Write {group key: {sample: IoUMeter}} as one npz (per group: sample names and their confusion matrices)."""
    arrays = {}
    for key, by_sample in meters.items():
        name = "|".join(key)
        samples = sorted(by_sample)
        arrays[f"{name}|samples"] = np.array(samples, dtype=str)
        for field in IoUMeter.FIELDS:
            arrays[f"{name}|{field}"] = np.stack([getattr(by_sample[s], field) for s in samples])
    np.savez_compressed(path, **arrays)


def load_segmentation(path):
    """{group key: {sample: IoUMeter}} from save_segmentation's file; empty when the report has none."""
    if not Path(path).is_file():
        return {}
    meters = {}
    with np.load(path) as z:
        for name in {k.rsplit("|", 1)[0] for k in z.files}:
            by_sample = meters[tuple(name.split("|"))] = {}
            for i, sample in enumerate(z[f"{name}|samples"]):
                meter = by_sample[str(sample)] = IoUMeter()
                for field in IoUMeter.FIELDS:
                    setattr(meter, field, z[f"{name}|{field}"][i].astype(np.int64))
    return meters


def load_report(folder):
    """{group key: (per-image rows, {sample: IoUMeter})} of a bench report folder."""
    folder = Path(folder)
    if not (folder / "per_image.csv").is_file():
        raise SystemExit(f"{folder} is not a bench report (no per_image.csv): run `build.py bench -- --out {folder}`.")
    rows = defaultdict(list)
    with open(folder / "per_image.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            rows[group_key(row)].append(row)
    segmentation = load_segmentation(folder / "segmentation.npz")
    return {key: (group, segmentation.get(key, {})) for key, group in rows.items()}


def compare_reports(old_folder, new_folder, codecs=("magc",)):
    """One row per (group, figure) that both reports have, for the groups of `codecs`: the paired difference (new
    minus old) over the shared samples, its standard error and the number of samples."""
    old, new = load_report(old_folder), load_report(new_folder)
    out = []
    for key in sorted(set(old) & set(new)):
        if key[0] not in codecs:
            continue
        for figure in PAIRED_FIGURES:
            diff, se, n = figure_difference(old[key], new[key], figure)
            if not math.isnan(diff):
                out.append({**dict(zip(GROUP_KEYS, key)), "figure": figure, "samples": n, "difference": diff,
                            "standard_error": se})
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m magc_plugin.evaluation.paired", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", help="the baseline's bench report folder")
    parser.add_argument("new", help="the candidate's bench report folder")
    parser.add_argument("--codecs", default="magc,magc-stage1,magc-emptymap,magc-roadless",
                        help="codec groups to compare (comma-separated)")
    parser.add_argument("--out", help="also write the rows to this CSV file")
    args = parser.parse_args(argv)
    rows = compare_reports(args.old, args.new, tuple(args.codecs.split(",")))
    if not rows:
        raise SystemExit("The two reports share no group of those codecs with the same samples.")
    for r in rows:
        print(f"{r['codec']:>14} {r['rate']:>7} {r['steps']:>3} {r['figure']:<17} "
              f"{r['difference']:+.4f} +- {r['standard_error']:.4f}  ({r['samples']} samples)")
    if args.out:
        with open(args.out, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: format_value(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    return rows


if __name__ == "__main__":
    main()
