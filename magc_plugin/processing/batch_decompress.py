"""Batch decompress folder: every .magc file of a folder -> GeoTIFFs, on a Dask cluster."""
from .batch import BatchAlgorithm
from .decompress import DecoderParameters


class BatchDecompressFolder(DecoderParameters, BatchAlgorithm):

    def name(self):
        return "batchdecompressfolder"

    def displayName(self):  # noqa: N802 (QGIS's name)
        return self.tr("Batch decompress folder")

    def shortHelpString(self):  # noqa: N802 (QGIS's name)
        return self.tr("Decodes every .magc file of a folder into a GeoTIFF of the same name, on a Dask cluster: "
                       "this computer's CPU cores, or the workers of a scheduler whose address you give (decoding "
                       "is the slow part; GPU workers are much faster). The images are the same as 'Decompress "
                       "raster' writes. A file that fails is reported and skipped. Give the guidance layers used "
                       "to compress.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS's name)
        self.add_input_folder(self.tr("The folder of .magc files to decode (not its subfolders)."))
        self.add_guidance_parameters()
        self.add_decoder_parameters()
        self.add_model_parameters()
        self.add_cluster_parameters_and_outputs(self.tr("Where the GeoTIFFs and the batch report are written."))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS's name)
        return self.run_batch(parameters, context, feedback, "batch_decompress",
                              **self.decoder_options(parameters, context))
