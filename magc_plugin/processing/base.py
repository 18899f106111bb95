"""The shared base of every MAGC algorithm: translation, icon, groups, shared parameters,
and the one place where core errors become actionable QgsProcessingExceptions.

Heavy modules (torch, the codec, the tiling core) are imported inside
``processAlgorithm`` only, so the toolbox always lists every tool and a missing
dependency is reported when a tool runs, with what to install.
"""
import threading
import warnings
from contextlib import contextmanager

from qgis.core import (QgsApplication, QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingParameterBoolean,
                       QgsProcessingParameterDefinition, QgsProcessingParameterEnum,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterFile,
                       QgsProcessingParameterMultipleLayers, QgsProcessingParameterRasterLayer, QgsProcessing,
                       QgsProject)
from qgis.PyQt.QtCore import QCoreApplication, QThread
from qgis.PyQt.QtGui import QIcon

from ..codec.classes import BUILDING, CLASS_NAMES, OTHER_LAND, ROAD, VEGETATION, WATER
from ..codec.errors import MAGCError
from ..plugin_files import plugin_file
from ..termination import sigterm_unwinds
from . import settings
from .settings import DEVICES

REPOSITORY = "https://github.com/magc-qgis/magc_plugin"
INSTALL_HINT = ("Install the plugin's Python dependencies into QGIS's Python: run 'python3 build.py setup' in the "
                "plugin's source folder, or 'pip install -r requirements.txt' with QGIS's Python (see the README).")
GROUPS = {"compression": "Compression", "guidance": "Guidance", "tools": "Tools"}
CONTEXT = "MAGCAlgorithm"


def tr(text, context=CONTEXT):
    """Translate a string shared by every algorithm."""
    return QCoreApplication.translate(context, text)


class EnumParameter(QgsProcessingParameterEnum):
    """An enum whose value is its option's name (stable when a model adds options) that also takes the
    option's number, which is what 'qgis_process help' offers: --DEVICE=1 and --DEVICE=cpu both work."""

    def __init__(self, name, description, options, default_value):
        super().__init__(name, description, options=list(options), defaultValue=default_value)
        self.setUsesStaticStrings(True)

    def clone(self):
        copy = EnumParameter(self.name(), self.description(), self.options(), self.defaultValue())
        copy.setFlags(self.flags())
        copy.setHelp(self.help())
        copy.setMetadata(self.metadata())
        return copy

    def checkValueIsAcceptable(self, value, context=None):  # noqa: N802 (QGIS's name)
        return super().checkValueIsAcceptable(option_name(self.options(), value), context)


def option_name(options, value):
    """An enum value given as an option's number (int or digits) -> that option's name; others unchanged."""
    text = str(value).strip() if isinstance(value, (int, str)) else None
    if text is not None and text.isdigit() and int(text) < len(options):
        return options[int(text)]
    return value


# One optional layer parameter per guidance class: (parameter id, class id, display name).
CLASS_LAYERS = (
    ("BUILDINGS", BUILDING, "Buildings"),
    ("ROADS", ROAD, "Roads"),
    ("WATER", WATER, "Water"),
    ("VEGETATION", VEGETATION, "Vegetation"),
    ("OTHER_LAND", OTHER_LAND, "Other land"),
)
GUIDANCE_KEYS = tuple(param_id for param_id, _, _ in CLASS_LAYERS) + ("GUIDANCE", "GUIDANCE_RASTER")


def is_given(value):
    """Whether a guidance parameter has a value in a run's parameters (the dialog passes None for an empty box)."""
    return value is not None and not (isinstance(value, (str, list, tuple)) and not value)


def project_guidance_defaults():
    """The guidance parameters' values that the project's layers give, as a run with none would use them, so that
    the dialog shows the map it will get. {} without a QGIS window (qgis_process, scripts: no dialog, and runs
    ignore defaults) and outside the main thread (a model's child algorithm), which owns the layers."""
    import qgis.utils
    app = QgsApplication.instance()
    if qgis.utils.iface is None or app is None or QThread.currentThread() != app.thread():
        return {}
    from ..qgis_guidance import layer_texts, project_layer_class, project_vector_layers

    class_params = {class_id: param_id for param_id, class_id, _ in CLASS_LAYERS}
    defaults = {}
    for layer in project_vector_layers(QgsProject.instance()):
        kind, class_id = project_layer_class(layer, layer_texts(layer))
        if kind == "tags":
            defaults.setdefault(MAGCAlgorithm.GUIDANCE, []).append(layer.id())
        elif kind == "name":
            defaults.setdefault(class_params[class_id], layer.id())
    return defaults


class MAGCAlgorithm(QgsProcessingAlgorithm):
    """Base of the MAGC tools. Subclasses set GROUP and define name/displayName/initAlgorithm/processAlgorithm."""

    GROUP = "compression"
    GUIDANCE = "GUIDANCE"
    GUIDANCE_RASTER = "GUIDANCE_RASTER"
    USE_PROJECT_LAYERS = "USE_PROJECT_LAYERS"
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
        """The vector map: one optional layer per class, tag-classified layers, an optional class raster, and
        whether the project's layers stand in for them; the layers start filled from the project."""
        defaults = project_guidance_defaults()
        for param_id, _, name in CLASS_LAYERS:
            self.add(QgsProcessingParameterFeatureSource(param_id, tr(f"{name} (guidance layer)"),
                                                         [QgsProcessing.TypeVectorAnyGeometry],
                                                         defaultValue=defaults.get(param_id), optional=True),
                     tr(f"Every feature of this layer is mapped as '{name.lower()}', whatever its attributes. "
                        "Any vector source and CRS; lines are buffered to a typical width."))
        self.add(QgsProcessingParameterMultipleLayers(self.GUIDANCE, tr("Guidance layers classified by OSM tags"),
                                                      QgsProcessing.TypeVectorAnyGeometry,
                                                      defaultValue=defaults.get(self.GUIDANCE), optional=True),
                 tr("Vector layers whose features are classified one by one from OpenStreetMap tags (building, "
                    "highway, waterway, natural, landuse...) or the 'fclass' field of OSM exports. Features with no "
                    "recognised tag are skipped. Give the same layers to Compress and Decompress."))
        self.add(QgsProcessingParameterRasterLayer(self.GUIDANCE_RASTER, tr("Guidance class raster"), optional=True),
                 tr("A class raster made by 'Rasterize guidance' (0 not mapped, 1 building, 2 road, 3 water, "
                    "4 vegetation, 5 other land), used where no vector layer maps a pixel."), advanced=True)
        self.add(QgsProcessingParameterBoolean(self.USE_PROJECT_LAYERS,
                                               tr("Use the project's vector layers when no guidance is given"),
                                               defaultValue=True),
                 tr("When no guidance layer and no class raster is given, the project's vector layers over the "
                    "raster are the map: each classified by its features' OSM tags or 'fclass', else by its name "
                    "(buildings, roads, water, forest, landuse...); the others are left out. The log lists them, and "
                    "the dialog opens with them filled in. Off: no map unless one is given."), advanced=True)

    def guidance_given(self, parameters):
        """The guidance parameters that a run's parameters fill (never their defaults, which depend on when the
        tool was opened)."""
        return [key for key in GUIDANCE_KEYS if is_given(parameters.get(key))]

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS's name)
        """In the main thread, which owns the layers: the guidance layers to read become feature sources made for
        the algorithm thread (the tag-classified ones, or the project's when no guidance is given)."""
        if self.parameterDefinition(self.GUIDANCE) is None:
            return True
        from ..qgis_guidance import LayerSnapshot, project_vector_layers

        given = self.guidance_given(parameters)
        self.guidance_layers = [LayerSnapshot(layer) for layer in self.parameterAsLayerList(
            parameters, self.GUIDANCE, context)] if self.GUIDANCE in given else []
        project = context.project()
        use_project = (not given and project is not None
                       and self.parameterAsBool(parameters, self.USE_PROJECT_LAYERS, context))
        self.project_layers = [LayerSnapshot(layer) for layer in project_vector_layers(project)] if use_project else []
        return True

    def add_model_parameters(self):
        self.add(QgsProcessingParameterFile(self.MODEL, tr("Model folder"), QgsProcessingParameterFile.Folder,
                                            optional=True),
                 tr("A MAGC model folder (config.json and .safetensors files). Empty: the model shipped with the "
                    "plugin. Decompress with the model that compressed."), advanced=True)
        device = EnumParameter(self.DEVICE, tr("Device"), DEVICES, settings.value(settings.DEVICE))
        self.add(device, tr("Where the networks run: 'auto' takes a CUDA GPU when PyTorch sees one, else the CPU. "
                            "Give the name or the number. Default: the MAGC device in Processing > Options."),
                 advanced=True)

    # -- reading parameters --------------------------------------------------------
    def guidance(self, parameters, context, feedback, extent=None):
        """The guidance callable of the core, built from the guidance parameters, else from the project's layers
        that touch `extent` ((QgsRectangle, its CRS) of the raster; None: every layer with features). Falsy when
        there is no map."""
        from ..qgis_guidance import GuidanceSource, LayerGuidance

        given = self.guidance_given(parameters)
        if self.project_layers:  # prepared only when no guidance is given
            sources = self.project_sources(context, feedback, extent)
        else:
            sources = []
            for param_id, class_id, _ in CLASS_LAYERS:
                source = self.parameterAsSource(parameters, param_id, context) if param_id in given else None
                if source is not None:
                    sources.append(GuidanceSource(source, class_id))
            sources.extend(GuidanceSource(layer, None, layer.name) for layer in self.guidance_layers)
        raster = self.parameterAsRasterLayer(parameters, self.GUIDANCE_RASTER, context) \
            if self.GUIDANCE_RASTER in given else None
        return LayerGuidance(sources, context.transformContext(), raster_path(raster) if raster else None,
                             cancel=feedback.isCanceled)

    def project_sources(self, context, feedback, extent):
        """GuidanceSources of the project's layers that say their class and touch the extent; logs each layer,
        used or left out, and why."""
        from ..qgis_guidance import GuidanceSource, features_over, project_layer_class

        feedback.pushInfo(tr("No guidance given: the project's vector layers are the map (advanced parameter 'Use "
                             "the project's vector layers when no guidance is given')."))
        sources = []
        for layer in self.project_layers:
            kind, class_id = project_layer_class(layer, layer.texts)
            if kind is None:
                feedback.pushInfo(tr("Project layer '{}' left out: its features have no OSM tag or 'fclass' of a "
                                     "guidance class and its name names none (buildings, roads, water, forest, "
                                     "landuse...).").format(layer.name))
                continue
            count = features_over(layer, extent, context.transformContext())
            if not count:
                feedback.pushInfo(tr("Project layer '{}' left out: none of its features touches the raster.")
                                  .format(layer.name))
                continue
            how = (tr("by its features' OSM tags") if kind == "tags"
                   else tr("as '{}' (its name)").format(CLASS_NAMES[class_id]))
            feedback.pushInfo(tr("Project layer '{}' used, classified {}: {} features.").format(layer.name, how,
                                                                                                count))
            sources.append(GuidanceSource(layer, class_id, layer.name))
        return sources

    def report_guidance(self, guidance, feedback):
        """Log what each guidance layer contributed, and warn about layers that did not overlap."""
        for name, burnt, unclassified in guidance.summary():
            feedback.pushInfo(tr("Guidance '{}': {} features mapped, {} without a recognised class.")
                              .format(name, burnt, unclassified))
            if burnt == 0:
                feedback.pushWarning(tr("Guidance '{}' contributed nothing: it does not overlap the raster (check "
                                        "its CRS and extent) or none of its features has a known class.").format(name))

    def model_and_device(self, parameters, context):
        """(model folder or 'default', device string) from the model parameters, then the provider's settings."""
        return (self.parameterAsFile(parameters, self.MODEL, context) or settings.value(settings.MODEL_FOLDER)
                or "default", self.enum_string(parameters, self.DEVICE, context))

    def enum_string(self, parameters, name, context):
        """The option name of an EnumParameter, given by name or by number."""
        options = self.parameterDefinition(name).options()
        value = option_name(options, self.parameterAsString(parameters, name, context))
        return value if value in options else self.parameterDefinition(name).defaultValue()

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
            with thread_warnings() as caught, sigterm_unwinds(then_terminate=True):
                try:
                    yield
                finally:
                    for message, category in caught:
                        if not issubclass(category, (DeprecationWarning, FutureWarning)):
                            feedback.pushWarning(str(message))
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


CORE_MODULES = r"magc_plugin\."
_this_thread = threading.local()  # .caught: the warnings of the tool running in this thread
_hook_lock = threading.Lock()
_shown_elsewhere = warnings.showwarning


def _show_or_keep(message, category, filename, lineno, file=None, line=None):
    caught = getattr(_this_thread, "caught", None)
    if caught is None:
        _shown_elsewhere(message, category, filename, lineno, file, line)
    else:
        caught.append((message, category))


@contextmanager
def thread_warnings():
    """The warnings raised in this thread while the block runs, as (message, category). QGIS runs tools in
    worker threads, where warnings.catch_warnings (which swaps process-wide state) is not safe: this keeps one
    process-wide hook that sorts warnings by thread and passes the other threads' ones on."""
    global _shown_elsewhere
    with _hook_lock:
        if warnings.showwarning is not _show_or_keep:  # first use, or someone installed another hook since
            _shown_elsewhere, warnings.showwarning = warnings.showwarning, _show_or_keep
        # The core's warnings are messages for the user: on every run, not once per QGIS session.
        if not any(action == "always" and module is not None and module.pattern == CORE_MODULES
                   for action, _, _, module, _ in warnings.filters):
            warnings.filterwarnings("always", module=CORE_MODULES)
    outer = getattr(_this_thread, "caught", None)
    _this_thread.caught = caught = []
    try:
        yield caught
    finally:
        _this_thread.caught = outer


def raster_path(layer):
    """The file behind a raster layer, which the GDAL-based core reads; an error for other providers."""
    if layer.providerType() != "gdal":
        raise QgsProcessingException(tr("The raster '{}' is not a GDAL file (provider '{}'): save it as a GeoTIFF "
                                        "first (Export > Save As).").format(layer.name(), layer.providerType()))
    return layer.source().split("|")[0]
