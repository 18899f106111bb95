"""The shared base of every MAGC algorithm: translation, icon, groups, shared parameters,
and the one place where core errors become actionable QgsProcessingExceptions.

Heavy modules (torch, the codec, the tiling core) are imported inside
``processAlgorithm`` only, so the toolbox always lists every tool and a missing
dependency is reported when a tool runs, with what to install.
"""
import warnings
from contextlib import contextmanager

from qgis.core import (QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingParameterDefinition,
                       QgsProcessingParameterEnum, QgsProcessingParameterFeatureSource, QgsProcessingParameterFile,
                       QgsProcessingParameterMultipleLayers, QgsProcessingParameterRasterLayer, QgsProcessing)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..codec.classes import BUILDING, OTHER_LAND, ROAD, VEGETATION, WATER
from ..codec.errors import MAGCError
from ..plugin import plugin_file
from ..termination import sigterm_unwinds

REPOSITORY = "https://github.com/magc-qgis/magc_plugin"
INSTALL_HINT = ("Install the plugin's Python dependencies into QGIS's Python: run 'python3 build.py setup' in the "
                "plugin's source folder, or 'pip install -r requirements.txt' with QGIS's Python (see the README).")
DEVICES = ("auto", "cpu", "cuda")
GROUPS = {"compression": "Compression", "guidance": "Guidance", "tools": "Tools"}
CONTEXT = "MAGCAlgorithm"


def tr(text, context=CONTEXT):
    """Translate a string shared by every algorithm."""
    return QCoreApplication.translate(context, text)


# One optional layer parameter per guidance class: (parameter id, class id, display name).
CLASS_LAYERS = (
    ("BUILDINGS", BUILDING, "Buildings"),
    ("ROADS", ROAD, "Roads"),
    ("WATER", WATER, "Water"),
    ("VEGETATION", VEGETATION, "Vegetation"),
    ("OTHER_LAND", OTHER_LAND, "Other land"),
)


class MAGCAlgorithm(QgsProcessingAlgorithm):
    """Base of the MAGC tools. Subclasses set GROUP and define name/displayName/initAlgorithm/processAlgorithm."""

    GROUP = "compression"
    GUIDANCE = "GUIDANCE"
    GUIDANCE_RASTER = "GUIDANCE_RASTER"
    MODEL = "MODEL"
    DEVICE = "DEVICE"

    # -- identity -----------------------------------------------------------------
    def tr(self, text):
        return QCoreApplication.translate(type(self).__name__, text)

    def createInstance(self):  # noqa: N802 (QGIS's name)
        return type(self)()

    def icon(self):
        return QIcon(str(plugin_file("resources", "icon.svg")))

    def group(self):
        return tr(GROUPS[self.GROUP])

    def groupId(self):  # noqa: N802 (QGIS's name)
        return self.GROUP

    def helpUrl(self):  # noqa: N802 (QGIS's name)
        return f"{REPOSITORY}#{self.name()}"

    # -- parameters -----------------------------------------------------------------
    def add(self, parameter, help_text, advanced=False):
        """Add a parameter with its help text; secondary ones go to the Advanced group."""
        parameter.setHelp(help_text)
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)
        return parameter

    def add_guidance_parameters(self):
        """The vector map: one optional layer per class, tag-classified layers, an optional class raster."""
        for param_id, _, name in CLASS_LAYERS:
            self.add(QgsProcessingParameterFeatureSource(param_id, tr(f"{name} (guidance layer)"),
                                                         [QgsProcessing.TypeVectorAnyGeometry], optional=True),
                     tr(f"Every feature of this layer is mapped as '{name.lower()}', whatever its attributes. "
                        "Any vector source and CRS; lines are buffered to a typical width."))
        self.add(QgsProcessingParameterMultipleLayers(self.GUIDANCE, tr("Guidance layers classified by OSM tags"),
                                                      QgsProcessing.TypeVectorAnyGeometry, optional=True),
                 tr("Vector layers whose features are classified one by one from OpenStreetMap tags (building, "
                    "highway, waterway, natural, landuse...) or the 'fclass' field of OSM exports. Features with no "
                    "recognised tag are skipped. Give the same layers to Compress and Decompress."))
        self.add(QgsProcessingParameterRasterLayer(self.GUIDANCE_RASTER, tr("Guidance class raster"), optional=True),
                 tr("A class raster made by 'Rasterize guidance' (0 not mapped, 1 building, 2 road, 3 water, "
                    "4 vegetation, 5 other land), used where no vector layer maps a pixel."), advanced=True)

    def add_model_parameters(self):
        self.add(QgsProcessingParameterFile(self.MODEL, tr("Model folder"), QgsProcessingParameterFile.Folder,
                                            optional=True),
                 tr("A MAGC model folder (config.json and .safetensors files). Empty: the model shipped with the "
                    "plugin. Decompress with the model that compressed."), advanced=True)
        device = QgsProcessingParameterEnum(self.DEVICE, tr("Device"), options=list(DEVICES), defaultValue="auto")
        device.setUsesStaticStrings(True)
        self.add(device, tr("Where the networks run: 'auto' takes a CUDA GPU when PyTorch sees one, else the CPU."),
                 advanced=True)

    # -- reading parameters --------------------------------------------------------
    def guidance(self, parameters, context, feedback):
        """The guidance callable of the core, built from the guidance parameters (falsy when none is given)."""
        from ..qgis_guidance import GuidanceSource, LayerGuidance

        sources = []
        for param_id, class_id, _ in CLASS_LAYERS:
            source = self.parameterAsSource(parameters, param_id, context)
            if source is not None:
                sources.append(GuidanceSource(source, class_id))
        for layer in self.parameterAsLayerList(parameters, self.GUIDANCE, context):
            sources.append(GuidanceSource(layer, None, layer.name()))
        raster = self.parameterAsRasterLayer(parameters, self.GUIDANCE_RASTER, context)
        return LayerGuidance(sources, context.transformContext(), raster_path(raster) if raster else None,
                             cancel=feedback.isCanceled)

    def report_guidance(self, guidance, feedback):
        """Log what each guidance layer contributed, and warn about layers that did not overlap."""
        for name, burnt, unclassified in guidance.summary():
            feedback.pushInfo(tr("Guidance '{}': {} features mapped, {} without a recognised class.")
                              .format(name, burnt, unclassified))
            if burnt == 0:
                feedback.reportError(tr("Guidance '{}' contributed nothing: it does not overlap the raster (check "
                                        "its CRS and extent) or none of its features has a known class.").format(name),
                                     fatalError=False)

    def model_and_device(self, parameters, context):
        """(model folder or 'default', device string) from the model parameters."""
        return (self.parameterAsFile(parameters, self.MODEL, context) or "default",
                self.parameterAsEnumString(parameters, self.DEVICE, context) or "auto")

    # -- running the core -------------------------------------------------------------
    @staticmethod
    def progress(feedback):
        """The core's progress(fraction, message) callback, bound to a feedback."""
        last = []

        def report(fraction, message=None):
            feedback.setProgress(100.0 * max(0.0, min(1.0, float(fraction))))
            if message and last[-1:] != [message]:
                feedback.setProgressText(message)
                last[:] = [message]
        return report

    @contextmanager
    def core_errors(self, feedback):
        """Turn what the core raises into a QgsProcessingException that says what to do, and its warnings
        (a guidance that differs from the encoder's, a version mismatch) into log warnings. A SIGTERM in
        qgis_process removes the partial output before the process ends."""
        try:
            with warnings.catch_warnings(record=True) as caught, sigterm_unwinds(then_terminate=True):
                warnings.simplefilter("always")
                try:
                    yield
                finally:
                    for warning in caught:
                        if not issubclass(warning.category, (DeprecationWarning, FutureWarning)):
                            feedback.reportError(str(warning.message), fatalError=False)
        except QgsProcessingException:
            raise
        except ImportError as exc:
            raise QgsProcessingException(tr("MAGC needs the Python package '{}', which QGIS's Python cannot import "
                                            "({}). {}").format(exc.name or "?", exc, tr(INSTALL_HINT))) from exc
        except MAGCError as exc:
            if feedback.isCanceled():
                raise QgsProcessingException(tr("Canceled.")) from exc
            raise QgsProcessingException(str(exc)) from exc
        except ValueError as exc:  # the core's other messages about bad input
            raise QgsProcessingException(str(exc)) from exc
        except MemoryError as exc:
            raise QgsProcessingException(tr("Out of memory: choose a smaller tile size.")) from exc
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                raise QgsProcessingException(tr("The device ran out of memory: choose a smaller tile size or the "
                                                "CPU device.")) from exc
            raise QgsProcessingException(tr("MAGC failed: {}").format(exc)) from exc
        except OSError as exc:
            raise QgsProcessingException(tr("Cannot read or write a file: {}").format(exc)) from exc
        if feedback.isCanceled():
            raise QgsProcessingException(tr("Canceled."))


def raster_path(layer):
    """The file behind a raster layer, which the GDAL-based core reads; an error for other providers."""
    if layer.providerType() != "gdal":
        raise QgsProcessingException(tr("The raster '{}' is not a GDAL file (provider '{}'): save it as a GeoTIFF "
                                        "first (Export > Save As).").format(layer.name(), layer.providerType()))
    return layer.source().split("|")[0]
