"""Diagnostics: the Python stack, the compute device and the model files with their checksums.

Works when PyTorch is missing: then it says so, which is the first thing to check.
"""
import json
import platform
from importlib import metadata
from pathlib import Path

from qgis.core import (Qgis, QgsProcessingOutputString, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterFile)

from .. import __version__
from .base import INSTALL_HINT, MAGCAlgorithm

PACKAGES = ("torch", "torchvision", "compressai", "constriction", "diffusers", "safetensors", "numpy", "rasterio",
            "lpips", "pytorch-msssim")


def package_versions():
    """Installed versions of the packages MAGC uses, read from their metadata (nothing is imported)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info():
    """What PyTorch sees: CUDA availability, GPU name, threads; an 'error' entry if torch cannot be imported."""
    try:
        import torch
    except ImportError as exc:
        return {"device": "none", "error": f"{exc}. {INSTALL_HINT}"}
    info = {"device": "cuda" if torch.cuda.is_available() else "cpu", "cuda_available": torch.cuda.is_available(),
            "cuda_version": torch.version.cuda, "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return info


def model_files(model):
    """The model folder and the sha256 of each of its files, or an 'error' entry saying what is wrong."""
    from ..codec.errors import MAGCError
    try:
        from ..codec.folders import resolve_model_path, sha256_files
        folder = resolve_model_path(model)
    except (ImportError, MAGCError) as exc:
        return {"folder": model, "error": str(exc)}
    files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_files([p])}
             for p in sorted(Path(folder).iterdir()) if p.is_file()}
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except ValueError as exc:
        return {"folder": str(folder), "files": files, "error": f"config.json: {exc}"}
    return {"folder": str(folder), "name": config.get("name"), "rates": sorted(config.get("rates", {})),
            "default_rate": config.get("default_rate"), "files": files}


class Diagnostics(MAGCAlgorithm):
    GROUP = "tools"
    OUTPUT = "OUTPUT"
    DEVICE_NAME = "DEVICE_NAME"
    TORCH_VERSION = "TORCH_VERSION"
    MODEL_FOLDER = "MODEL_FOLDER"

    def name(self):
        return "diagnostics"

    def displayName(self):  # noqa: N802 (QGIS's name)
        return self.tr("Diagnostics")

    def shortHelpString(self):  # noqa: N802 (QGIS's name)
        return self.tr("Reports the versions of QGIS, Python and the packages MAGC needs, the device PyTorch will "
                       "use, and the model files with their SHA-256 checksums. Run it first when a tool fails, and "
                       "attach its report to bug reports.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS's name)
        self.add(QgsProcessingParameterFile(self.MODEL, self.tr("Model folder"), QgsProcessingParameterFile.Folder,
                                            optional=True),
                 self.tr("The model folder to check. Empty: the model shipped with the plugin."))
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT, self.tr("Report"), self.tr("JSON files (*.json)")),
                 self.tr("The report as JSON."))
        self.addOutput(QgsProcessingOutputString(self.DEVICE_NAME, self.tr("Device")))
        self.addOutput(QgsProcessingOutputString(self.TORCH_VERSION, self.tr("PyTorch version")))
        self.addOutput(QgsProcessingOutputString(self.MODEL_FOLDER, self.tr("Model folder")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS's name)
        model = self.parameterAsFile(parameters, self.MODEL, context) or "default"
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        report = {"magc": __version__, "qgis": Qgis.QGIS_VERSION, "python": platform.python_version(),
                  "platform": platform.platform(), "packages": package_versions()}
        feedback.setProgress(20)
        report["device"] = device_info()
        feedback.setProgress(50)
        report["model"] = model_files(model)
        for section in ("device", "model"):
            if "error" in report[section]:
                feedback.reportError(f"{section}: {report[section]['error']}", fatalError=False)
        text = json.dumps(report, indent=2)
        feedback.pushInfo(text)
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
        return {self.OUTPUT: output, self.DEVICE_NAME: report["device"]["device"],
                self.TORCH_VERSION: report["packages"]["torch"] or "",
                self.MODEL_FOLDER: report["model"].get("folder", model)}
