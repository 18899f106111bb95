"""Batch compress folder: every raster of a folder -> .magc files, on a Dask cluster."""
from .batch import BatchAlgorithm
from .compress import EncoderParameters


class BatchCompressFolder(EncoderParameters, BatchAlgorithm):

    def name(self):
        return "batchcompressfolder"

    def displayName(self):  # noqa: N802 (QGIS's name)
        return self.tr("Batch compress folder")

    def shortHelpString(self):  # noqa: N802 (QGIS's name)
        return self.tr("Compresses every raster of a folder (.tif, .tiff, .jp2, .img, .vrt, .png) to a .magc file "
                       "of the same name, on a Dask cluster: this computer's CPU cores, or the workers of a "
                       "scheduler whose address you give. The files are the same as 'Compress raster' writes. A "
                       "raster that fails is reported and skipped; the others are written. Give guidance layers "
                       "that cover all the rasters.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS's name)
        self.add_input_folder(self.tr("The folder of rasters to compress (not its subfolders)."))
        self.add_guidance_parameters()
        self.add_encoder_parameters()
        self.add_model_parameters()
        self.add_cluster_parameters_and_outputs(self.tr("Where the .magc files and the batch report are written."))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS's name)
        return self.run_batch(parameters, context, feedback, "batch_compress",
                              **self.encoder_options(parameters, context))
