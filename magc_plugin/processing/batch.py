"""The shared part of the batch tools: a folder of inputs, a Dask cluster, one report per file.

The cluster is a local one (one worker process per CPU core, or WORKERS) unless a scheduler
address is given. A file that fails is reported and skipped; the others are written.
"""
import json
from pathlib import Path

from qgis.core import (QgsProcessingException, QgsProcessingOutputFile, QgsProcessingOutputNumber,
                       QgsProcessingParameterFile, QgsProcessingParameterFolderDestination,
                       QgsProcessingParameterNumber, QgsProcessingParameterString)

from ..termination import terminating
from . import settings
from .base import MAGCAlgorithm

REPORT_NAME = "magc_batch_report.json"


class BatchAlgorithm(MAGCAlgorithm):
    INPUT = "INPUT"
    SCHEDULER = "SCHEDULER"
    WORKERS = "WORKERS"
    OUTPUT = "OUTPUT"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REPORT = "REPORT"

    def add_input_folder(self, help_text):
        self.add(QgsProcessingParameterFile(self.INPUT, self.tr("Input folder"), QgsProcessingParameterFile.Folder),
                 help_text)

    def add_cluster_parameters_and_outputs(self, output_help):
        self.add(QgsProcessingParameterString(self.SCHEDULER, self.tr("Dask scheduler address"), optional=True),
                 self.tr("The address of a running Dask scheduler, such as tcp://server:8786, whose workers have "
                         "MAGC, PyTorch and the model installed. Empty: a local cluster on this computer's CPU "
                         "cores."))
        self.add(QgsProcessingParameterNumber(self.WORKERS, self.tr("Local worker processes"),
                                              QgsProcessingParameterNumber.Integer, 0, minValue=0),
                 self.tr("Worker processes of the local cluster (each loads the model once). 0: one per CPU core. "
                         "Not used with a scheduler address."), advanced=True)
        self.add(QgsProcessingParameterFolderDestination(self.OUTPUT, self.tr("Output folder")), output_help)
        self.addOutput(QgsProcessingOutputNumber(self.SUCCEEDED, self.tr("Files written")))
        self.addOutput(QgsProcessingOutputNumber(self.FAILED, self.tr("Files that failed")))
        self.addOutput(QgsProcessingOutputFile(self.REPORT, self.tr("Batch report (JSON)")))

    def run_batch(self, parameters, context, feedback, batch_name, **options):
        """Run magc_plugin.distributed.<batch_name> on the folder; log and return the outputs."""
        folder = self.parameterAsFile(parameters, self.INPUT, context)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        scheduler = self.parameterAsString(parameters, self.SCHEDULER, context).strip() or None
        workers = self.parameterAsInt(parameters, self.WORKERS, context) or None
        model_path, device = self.model_and_device(parameters, context)
        guidance = self.guidance(parameters, context, feedback)
        with self.core_errors(feedback):
            from .. import distributed
            feedback.pushInfo(self.tr("Connecting to the Dask scheduler at {}").format(scheduler) if scheduler
                              else self.tr("Starting a local Dask cluster"))
            with distributed.connect(scheduler, workers, python=settings.value(settings.WORKER_PYTHON) or None) \
                    as client:
                feedback.pushInfo(self.tr("{} workers, {} threads").format(
                    len(client.nthreads()), sum(client.nthreads().values())))
                report = getattr(distributed, batch_name)([folder], output, guidance or None, model_path, client,
                                                          device=device, progress=self.progress(feedback),
                                                          cancel=lambda: feedback.isCanceled() or terminating(),
                                                          **options)
        self.report_guidance(guidance, feedback)
        report_path = Path(output) / REPORT_NAME
        report_path.write_text(json.dumps(report, indent=2, default=str))
        for entry in report["files"]:
            if "error" in entry:
                feedback.reportError(self.tr("{} failed: {}").format(Path(entry["input"]).name, entry["error"]),
                                     fatalError=False)
        feedback.pushInfo(self.tr("{} files written, {} failed, in {:.1f} s; report: {}").format(
            report["succeeded"], report["failed"], report["seconds"], report_path))
        if not report["succeeded"]:
            raise QgsProcessingException(self.tr("No file could be coded: {}. See the log and {}.").format(
                report["files"][0]["error"], report_path))
        return {self.OUTPUT: output, self.SUCCEEDED: report["succeeded"], self.FAILED: report["failed"],
                self.REPORT: str(report_path)}
