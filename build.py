#!/usr/bin/env python3
"""Set up, test, demonstrate and package the MAGC QGIS plugin. Standard library only.

    python3 build.py setup                 Debian packages, .venv (on top of Debian's QGIS), pip requirements
    python3 build.py test [-- PYTEST ARGS] setup, then the test suite, headless
    python3 build.py demo [--model DIR]    setup, then compress + decompress a sample with the shipped model
    python3 build.py deploy [--profile D]  copy the plugin into a QGIS profile
    python3 build.py package               the zip to install from QGIS's plugin manager (dist/)
    python3 build.py train|bench [ARGS]    the training recipe / the benchmark, in the venv

Every step is idempotent: what is already done is skipped. Works from any python3:
the virtual environment is made from Debian's /usr/bin/python3.11, which has QGIS.
"""
import argparse
import configparser
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PLUGIN = "magc_plugin"
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
REQUIREMENTS = ROOT / "requirements.txt"
SYSTEM_PYTHONS = ("/usr/bin/python3.11", "/usr/bin/python3")
QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # the /usr/bin/qgis_process wrapper is broken on Debian 12
APT_PACKAGES = ("qgis", "python3-qgis", "python3-rasterio", "python3-fiona", "python3-venv", "xvfb", "xauth",
                "qttools5-dev-tools")
SHARED_DATA = ROOT.parent / "shared" / "data"
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights"  # metric networks for the evaluation, when present
DEMO_OUTPUT = ROOT / "demo_output"
# Files of the repository root that ship inside the plugin folder.
PLUGIN_EXTRAS = ("metadata.txt", "LICENSE", "README.md", "resources")


def log(message):
    print(f"[build] {message}", flush=True)


def run(cmd, **kwargs):
    log(" ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kwargs)


# -- setup -----------------------------------------------------------------------------
def missing_debian_packages():
    missing = []
    for package in APT_PACKAGES:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        if "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def setup():
    """Install what is missing: Debian packages, the venv, the pip requirements."""
    missing = missing_debian_packages() if shutil.which("dpkg-query") else []
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(sudo + ["apt-get", "update"], env=env)
        run(sudo + ["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env)
    if not VENV_PYTHON.exists():
        base = next((p for p in SYSTEM_PYTHONS if os.path.exists(p)), None)
        if base is None:
            sys.exit("Debian's python3 is missing: apt-get install python3 python3-venv")
        run([base, "-m", "venv", "--system-site-packages", VENV])
    stamp = VENV / ".magc-requirements.sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text().strip() != digest:
        run([VENV_PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-r", REQUIREMENTS])
        stamp.write_text(digest + "\n")
    log("setup done")


# -- translations, staging, deploy, package -------------------------------------------------
def compile_translations():
    """i18n/*.ts -> i18n/*.qm with Qt's lrelease."""
    lrelease = next((p for p in ("/usr/lib/qt5/bin/lrelease", shutil.which("lrelease")) if p and os.path.exists(p)),
                    None)
    sources = sorted((ROOT / "i18n").glob("*.ts"))
    if lrelease is None:
        sys.exit("lrelease is missing: apt-get install qttools5-dev-tools (or run 'build.py setup')")
    for ts in sources:
        qm = ts.with_suffix(".qm")
        if not qm.exists() or qm.stat().st_mtime < ts.stat().st_mtime:
            run([lrelease, "-silent", ts, "-qm", qm])
    return [ts.with_suffix(".qm") for ts in sources]


def stage_plugin(dest):
    """Lay out the installable plugin folder at `dest`: the package, metadata, resources, compiled i18n."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    shutil.copytree(ROOT / PLUGIN, dest, ignore=ignore)
    for name in PLUGIN_EXTRAS:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)
    (dest / "i18n").mkdir(exist_ok=True)
    for qm in compile_translations():
        shutil.copy2(qm, dest / "i18n" / qm.name)
    return dest


def default_profile():
    return Path.home() / ".local" / "share" / "QGIS" / "QGIS3" / "profiles" / "default"


def deploy(profile=None):
    target = stage_plugin(Path(profile or default_profile()) / "python" / "plugins" / PLUGIN)
    log(f"deployed to {target}; enable 'MAGC' in Plugins > Manage and Install Plugins")
    return target


def plugin_version():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "metadata.txt")
    return parser["general"]["version"]


def package():
    """dist/magc_plugin-VERSION.zip with one top folder, as QGIS's plugin manager expects."""
    staging = Path(tempfile.mkdtemp(prefix="magc-package-"))
    try:
        folder = stage_plugin(staging / PLUGIN)
        dist = ROOT / "dist"
        dist.mkdir(exist_ok=True)
        archive = dist / f"{PLUGIN}-{plugin_version()}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(staging).as_posix())
    finally:
        shutil.rmtree(staging)
    log(f"wrote {archive} ({archive.stat().st_size / 2**20:.1f} MiB)")
    return archive


# -- headless QGIS ---------------------------------------------------------------------------
def venv_site_packages():
    return next(VENV.glob("lib/python3*/site-packages"))


def headless_env(base=None):
    """Environment for headless QGIS and the venv's packages."""
    env = dict(base or os.environ)
    env["QT_QPA_PLATFORM"] = env.get("QT_QPA_PLATFORM") or "offscreen"
    runtime = env.get("XDG_RUNTIME_DIR")
    if not runtime or not os.path.isdir(runtime):
        runtime = tempfile.mkdtemp(prefix="magc-xdg-")
        os.chmod(runtime, 0o700)
        env["XDG_RUNTIME_DIR"] = runtime
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(venv_site_packages()), env.get("PYTHONPATH")) if p)
    # QGIS's embedded Python locates its standard library from the first `python3` on PATH: another
    # Python ahead of Debian's (pyenv, conda) gives it a stdlib without the qgis package.
    env["PATH"] = os.pathsep.join(["/usr/bin"] + [p for p in env.get("PATH", "").split(os.pathsep) if p and p != "/usr/bin"])
    # Idle OpenMP workers sleep instead of spinning: on a small shared CPU spinning costs 3x.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


class QgisProcess:
    """qgis_process with the plugin deployed in a throwaway profile: run(algorithm, **parameters) -> results."""

    def __init__(self, workdir):
        workdir = Path(workdir)
        self.env = headless_env()
        self.env["QGIS_PLUGINPATH"] = str(workdir / "plugins")
        self.env["QGIS_CUSTOM_CONFIG_PATH"] = str(workdir / "config")
        stage_plugin(workdir / "plugins" / PLUGIN)
        self.call("plugins", "enable", PLUGIN)

    def call(self, *args):
        result = subprocess.run([QGIS_PROCESS, *map(str, args)], env=self.env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"qgis_process {' '.join(map(str, args))} failed ({result.returncode}):\n"
                               f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result.stdout

    def run(self, algorithm, **parameters):
        args = [f"--{key}={value}" for key, value in parameters.items()]
        out = self.call("--json", "run", algorithm, *args)
        return json.loads(out[out.index("{"):])["results"]


# -- demo --------------------------------------------------------------------------------
def demo(model=None):
    """Compress and decompress a sample through qgis_process (the shipped model, or `model`); a side-by-side PNG."""
    if model is None and not (ROOT / PLUGIN / "models" / "compact" / "config.json").exists():
        sys.exit(f"The shipped model {PLUGIN}/models/compact is not there yet: train it with 'build.py train'.")
    DEMO_OUTPUT.mkdir(exist_ok=True)
    sample = json.loads(subprocess.run([VENV_PYTHON, __file__, "_demo_sample", DEMO_OUTPUT], check=True,
                                       capture_output=True, text=True, env=headless_env()).stdout)
    log(f"sample: {sample['description']}")
    work = Path(tempfile.mkdtemp(prefix="magc-demo-"))
    try:
        qgis = QgisProcess(work)
        guidance = {"BUILDINGS": sample["buildings"]}
        codec = {**guidance, **({"MODEL": Path(model).resolve()} if model else {})}
        files = {k: DEMO_OUTPUT / f"{k}.{ext}" for k, ext in
                 (("guidance", "tif"), ("compressed", "magc"), ("decoded", "tif"), ("evaluation", "html"))}
        qgis.run("magc:rasterizeguidance", INPUT=sample["image"], OUTPUT=files["guidance"], **guidance)
        compressed = qgis.run("magc:compressraster", INPUT=sample["image"], OUTPUT=files["compressed"], **codec)
        decoded = qgis.run("magc:decompressraster", INPUT=files["compressed"], OUTPUT=files["decoded"], **codec)
        report = {"sample": sample, "compress": compressed, "decompress": decoded}
        try:
            weights = {"WEIGHTS": SHARED_WEIGHTS} if SHARED_WEIGHTS.is_dir() else {}
            report["evaluate"] = qgis.run("magc:evaluate", ORIGINAL=sample["image"], DECODED=files["decoded"],
                                          MAGC_FILE=files["compressed"], OUTPUT_HTML=files["evaluation"], **weights)
        except RuntimeError as exc:
            log(f"evaluation skipped: {str(exc).splitlines()[0]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (DEMO_OUTPUT / "report.json").write_text(json.dumps(report, indent=2, default=str))
    run([VENV_PYTHON, __file__, "_demo_figure", sample["image"], files["guidance"], files["decoded"],
         DEMO_OUTPUT / "side_by_side.png"])
    log(f"{compressed['BYTES']:.0f} bytes, {compressed['BPP']:.4f} bpp; outputs in {DEMO_OUTPUT}")


def _demo_sample(out_dir):
    """(venv) Write the demo image: a stitched block of held-out Catanduanes OAM tiles with their OSM buildings
    (never seen in training), else a scene."""
    import numpy as np
    import rasterio
    from PIL import Image
    from rasterio.transform import from_origin

    out_dir = Path(out_dir)
    region = SHARED_DATA / "oam-osm-buildings" / "catanduanes_ph"
    n, half = 2, 20037508.342789244
    tiles = {tuple(int(v) for v in p.stem.split("-")[1:3]): p for p in (region / "images").glob("OAM-*-21.png")}
    def buildings(x, y):  # size of the tile's clipped OSM buildings: a proxy for how built-up it is
        label = region / "labels_per_tile" / f"OAM-{x}-{y}-21.geojson"
        return label.stat().st_size if label.exists() else 0

    blocks = [t for t in tiles if all((t[0] + i, t[1] + j) in tiles for i in range(n) for j in range(n))]
    corner = max(blocks, default=None, key=lambda t: (sum(buildings(t[0] + i, t[1] + j) for i in range(n)
                                                          for j in range(n)), t))
    image_path = out_dir / "original.tif"
    if corner is not None:
        x, y = corner
        size = 2 * half / 2**21
        mosaic = np.concatenate([np.concatenate([np.asarray(Image.open(tiles[(x + i, y + j)]).convert("RGB"))
                                                 for i in range(n)], axis=1) for j in range(n)], axis=0)
        transform, crs = from_origin(-half + x * size, half - y * size, size / 256, size / 256), "EPSG:3857"
        sample = {"buildings": str(region / "labels_osm_buildings.geojson"),
                  "description": f"the most built-up block of Catanduanes OAM zoom-21 tiles {x}..{x + n - 1} x "
                                 f"{y}..{y + n - 1} (OpenAerialMap CC-BY 4.0) with OSM buildings (ODbL)"}
    else:
        mosaic, transform, crs, buildings = _synthetic_scene(out_dir)
        sample = {"buildings": str(buildings), "description": "a synthetic scene (../shared/data is absent)"}
    with rasterio.open(image_path, "w", driver="GTiff", width=mosaic.shape[1], height=mosaic.shape[0], count=3,
                       dtype="uint8", crs=crs, transform=transform) as dst:
        dst.write(mosaic.transpose(2, 0, 1))
    print(json.dumps({"image": str(image_path), **sample}))


def _synthetic_scene(out_dir, size=512, pixel=0.3):
    """A field with a road and a few buildings (image and GeoJSON buildings), in UTM zone 37S."""
    import numpy as np
    from rasterio.transform import from_origin
    from rasterio.warp import transform_geom

    rng = np.random.default_rng(0)
    image = np.empty((size, size, 3), np.uint8)
    image[:] = (70, 120, 60)
    image += rng.integers(0, 20, image.shape, dtype=np.uint8)
    image[size // 2 - 12:size // 2 + 12] = (150, 150, 145)
    transform = from_origin(500000.0, 9330000.0, pixel, pixel)
    features = []
    for i in range(8):
        row, col = (40 + 55 * (i % 2) + (size // 2 + 20) * (i // 4), 30 + 120 * (i % 4))
        image[row:row + 40, col:col + 60] = (180, 80, 60)
        (x0, y0), (x1, y1) = transform * (col, row), transform * (col + 60, row + 40)
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        geometry = transform_geom("EPSG:32737", "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})
        features.append({"type": "Feature", "properties": {"building": "yes"}, "geometry": geometry})
    path = Path(out_dir) / "buildings.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return image, transform, "EPSG:32737", path


def _demo_figure(original, guidance, decoded, out):
    """(venv) original | guidance | decoded, side by side, as a PNG."""
    import numpy as np
    import rasterio
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from magc_plugin.codec.classes import colourize

    def rgb(path):
        with rasterio.open(path) as src:
            return np.moveaxis(src.read([1, 2, 3] if src.count >= 3 else [1, 1, 1]), 0, -1)

    with rasterio.open(guidance) as src:
        panels = [rgb(original), colourize(src.read(1)), rgb(decoded)]
    gap = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)).save(out)


# -- tests and delegation ------------------------------------------------------------------
def test(pytest_args):
    """The test suite, headless; this is the README's and CI's test command."""
    compile_translations()
    env = headless_env()
    env.setdefault("OMP_NUM_THREADS", "2")
    return subprocess.call([str(VENV_PYTHON), "-m", "pytest", *pytest_args], cwd=ROOT, env=env)


def venv_module(module, args):
    return subprocess.call([str(VENV_PYTHON), "-m", module, *args], cwd=ROOT, env=headless_env())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("setup", "package"):
        sub.add_parser(name)
    sub.add_parser("demo").add_argument("--model", help="a model folder (default: the shipped model)")
    sub.add_parser("deploy").add_argument("--profile", help="QGIS profile folder (default: the default profile)")
    for name in ("test", "train", "bench"):
        sub.add_parser(name).add_argument("args", nargs=argparse.REMAINDER, help="passed on")
    hidden = {"_demo_sample": _demo_sample, "_demo_figure": _demo_figure}
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in hidden:
        return hidden[argv[0]](*argv[1:])
    args = parser.parse_args(argv)
    extra = list(getattr(args, "args", []))
    extra = extra[1:] if extra[:1] == ["--"] else extra
    if args.command == "deploy":
        deploy(args.profile)
        return 0
    if args.command == "package":
        package()
        return 0
    setup()
    if args.command == "demo":
        demo(args.model)
    elif args.command == "test":
        return test(extra)
    elif args.command == "train":
        return venv_module(f"{PLUGIN}.training", extra)
    elif args.command == "bench":
        return venv_module(f"{PLUGIN}.evaluation.bench", extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
