<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="fr_FR" sourcelanguage="en">
<context>
    <name>BatchCompressFolder</name>
    <message>
        <source>Batch compress folder</source>
        <translation>Compresser un dossier par lot</translation>
    </message>
    <message>
        <source>Compresses every raster of a folder (.tif, .tiff, .jp2, .img, .vrt, .png) to a .magc file of the same name, on a Dask cluster: this computer's CPU cores, or the workers of a scheduler whose address you give. The files are the same as 'Compress raster' writes. A raster that fails is reported and skipped; the others are written. Give guidance layers that cover all the rasters.</source>
        <translation>Compresse chaque raster d'un dossier (.tif, .tiff, .jp2, .img, .vrt, .png) en un fichier .magc du même nom, sur un cluster Dask : les cœurs de CPU de cet ordinateur, ou les workers d'un ordonnanceur dont vous donnez l'adresse. Les fichiers sont ceux qu'écrit « Compresser un raster ». Un raster en échec est signalé et ignoré ; les autres sont écrits. Donnez des couches de guidage qui couvrent tous les rasters.</translation>
    </message>
    <message>
        <source>The folder of rasters to compress (not its subfolders).</source>
        <translation>Le dossier des rasters à compresser (sans ses sous-dossiers).</translation>
    </message>
    <message>
        <source>Where the .magc files and the batch report are written.</source>
        <translation>Où sont écrits les fichiers .magc et le rapport du lot.</translation>
    </message>
    <message>
        <source>Bitrate preset</source>
        <translation>Débit prédéfini</translation>
    </message>
    <message>
        <source>The model's rate preset, by name or number: lower rates give smaller files and more invented detail. 'default' is the model's default preset.</source>
        <translation>Le débit prédéfini du modèle, par son nom ou son numéro : un débit plus bas donne des fichiers plus petits et plus de détails inventés. « default » est le débit par défaut du modèle.</translation>
    </message>
    <message>
        <source>Tile size (pixels)</source>
        <translation>Taille des tuiles (pixels)</translation>
    </message>
    <message>
        <source>Side of the tiles coded one at a time (a multiple of 64). Smaller tiles use less memory. Default: the MAGC tile size in Processing &gt; Options.</source>
        <translation>Côté des tuiles codées une à une (multiple de 64). Des tuiles plus petites utilisent moins de mémoire. Par défaut : la taille des tuiles MAGC des options de Traitement.</translation>
    </message>
    <message>
        <source>Embed the guidance map in the file</source>
        <translation>Inclure la carte de guidage dans le fichier</translation>
    </message>
    <message>
        <source>Store the rasterized map in the file (it costs bits) so that it decodes without the vector layers.</source>
        <translation>Stocker la carte rastérisée dans le fichier (cela coûte des bits) pour décoder sans les couches vecteur.</translation>
    </message>
    <message>
        <source>Input folder</source>
        <translation>Dossier en entrée</translation>
    </message>
    <message>
        <source>Dask scheduler address</source>
        <translation>Adresse de l'ordonnanceur Dask</translation>
    </message>
    <message>
        <source>The address of a running Dask scheduler, such as tcp://server:8786, whose workers have MAGC, PyTorch and the model installed. Empty: a local cluster on this computer's CPU cores.</source>
        <translation>L'adresse d'un ordonnanceur Dask en marche, comme tcp://server:8786, dont les workers ont MAGC, PyTorch et le modèle installés. Vide : un cluster local sur les cœurs de CPU de cet ordinateur.</translation>
    </message>
    <message>
        <source>Local worker processes</source>
        <translation>Processus workers locaux</translation>
    </message>
    <message>
        <source>Worker processes of the local cluster (each loads the model once). 0: one per CPU core. Not used with a scheduler address.</source>
        <translation>Processus workers du cluster local (chacun charge le modèle une fois). 0 : un par cœur de CPU. Ignoré avec une adresse d'ordonnanceur.</translation>
    </message>
    <message>
        <source>Output folder</source>
        <translation>Dossier en sortie</translation>
    </message>
    <message>
        <source>Files written</source>
        <translation>Fichiers écrits</translation>
    </message>
    <message>
        <source>Files that failed</source>
        <translation>Fichiers en échec</translation>
    </message>
    <message>
        <source>Batch report (JSON)</source>
        <translation>Rapport du lot (JSON)</translation>
    </message>
    <message>
        <source>Connecting to the Dask scheduler at {}</source>
        <translation>Connexion à l'ordonnanceur Dask à {}</translation>
    </message>
    <message>
        <source>Starting a local Dask cluster</source>
        <translation>Démarrage d'un cluster Dask local</translation>
    </message>
    <message>
        <source>{} workers, {} threads</source>
        <translation>{} workers, {} threads</translation>
    </message>
    <message>
        <source>{} failed: {}</source>
        <translation>Échec de {} : {}</translation>
    </message>
    <message>
        <source>{} files written, {} failed, in {:.1f} s; report: {}</source>
        <translation>{} fichiers écrits, {} en échec, en {:.1f} s ; rapport : {}</translation>
    </message>
    <message>
        <source>No file could be coded: {}. See the log and {}.</source>
        <translation>Aucun fichier n'a pu être codé : {}. Voir le journal et {}.</translation>
    </message>
</context>
<context>
    <name>BatchDecompressFolder</name>
    <message>
        <source>Batch decompress folder</source>
        <translation>Décompresser un dossier par lot</translation>
    </message>
    <message>
        <source>Decodes every .magc file of a folder into a GeoTIFF of the same name, on a Dask cluster: this computer's CPU cores, or the workers of a scheduler whose address you give (decoding is the slow part; GPU workers are much faster). The images are the same as 'Decompress raster' writes. A file that fails is reported and skipped. Give the guidance layers used to compress.</source>
        <translation>Décode chaque fichier .magc d'un dossier en un GeoTIFF du même nom, sur un cluster Dask : les cœurs de CPU de cet ordinateur, ou les workers d'un ordonnanceur dont vous donnez l'adresse (le décodage est la partie lente ; des workers GPU sont bien plus rapides). Les images sont celles qu'écrit « Décompresser un raster ». Un fichier en échec est signalé et ignoré. Donnez les couches de guidage utilisées à la compression.</translation>
    </message>
    <message>
        <source>The folder of .magc files to decode (not its subfolders).</source>
        <translation>Le dossier des fichiers .magc à décoder (sans ses sous-dossiers).</translation>
    </message>
    <message>
        <source>Where the GeoTIFFs and the batch report are written.</source>
        <translation>Où sont écrits les GeoTIFF et le rapport du lot.</translation>
    </message>
    <message>
        <source>Diffusion steps</source>
        <translation>Étapes de diffusion</translation>
    </message>
    <message>
        <source>More steps: finer texture, slower decoding. 0: stage 1 alone, no diffusion: fast, the colours and layout the bits carry, no drawn texture (blurry).</source>
        <translation>Plus d'étapes : texture plus fine, décodage plus lent. 0 : l'étape 1 seule, sans diffusion : rapide, les couleurs et la disposition que portent les bits, sans texture dessinée (flou).</translation>
    </message>
    <message>
        <source>Seed</source>
        <translation>Graine</translation>
    </message>
    <message>
        <source>Seed of the decoder's noise: the same file, map and seed always give the same image.</source>
        <translation>Graine du bruit du décodeur : le même fichier, la même carte et la même graine donnent toujours la même image.</translation>
    </message>
    <message>
        <source>Stop if the guidance differs</source>
        <translation>Arrêter si le guidage diffère</translation>
    </message>
    <message>
        <source>Fail instead of warning when the guidance map differs from the one used to compress.</source>
        <translation>Échouer au lieu d'avertir quand la carte de guidage diffère de celle utilisée à la compression.</translation>
    </message>
    <message>
        <source>Skip damaged tiles</source>
        <translation>Ignorer les tuiles endommagées</translation>
    </message>
    <message>
        <source>Decode what can be: the tiles that are damaged in the file become nodata, with a warning each, instead of the whole file being refused.</source>
        <translation>Décoder ce qui peut l'être : les tuiles endommagées du fichier deviennent nodata, avec un avertissement pour chacune, au lieu du refus de tout le fichier.</translation>
    </message>
    <message>
        <source>Input folder</source>
        <translation>Dossier en entrée</translation>
    </message>
    <message>
        <source>Dask scheduler address</source>
        <translation>Adresse de l'ordonnanceur Dask</translation>
    </message>
    <message>
        <source>The address of a running Dask scheduler, such as tcp://server:8786, whose workers have MAGC, PyTorch and the model installed. Empty: a local cluster on this computer's CPU cores.</source>
        <translation>L'adresse d'un ordonnanceur Dask en marche, comme tcp://server:8786, dont les workers ont MAGC, PyTorch et le modèle installés. Vide : un cluster local sur les cœurs de CPU de cet ordinateur.</translation>
    </message>
    <message>
        <source>Local worker processes</source>
        <translation>Processus workers locaux</translation>
    </message>
    <message>
        <source>Worker processes of the local cluster (each loads the model once). 0: one per CPU core. Not used with a scheduler address.</source>
        <translation>Processus workers du cluster local (chacun charge le modèle une fois). 0 : un par cœur de CPU. Ignoré avec une adresse d'ordonnanceur.</translation>
    </message>
    <message>
        <source>Output folder</source>
        <translation>Dossier en sortie</translation>
    </message>
    <message>
        <source>Files written</source>
        <translation>Fichiers écrits</translation>
    </message>
    <message>
        <source>Files that failed</source>
        <translation>Fichiers en échec</translation>
    </message>
    <message>
        <source>Batch report (JSON)</source>
        <translation>Rapport du lot (JSON)</translation>
    </message>
    <message>
        <source>Connecting to the Dask scheduler at {}</source>
        <translation>Connexion à l'ordonnanceur Dask à {}</translation>
    </message>
    <message>
        <source>Starting a local Dask cluster</source>
        <translation>Démarrage d'un cluster Dask local</translation>
    </message>
    <message>
        <source>{} workers, {} threads</source>
        <translation>{} workers, {} threads</translation>
    </message>
    <message>
        <source>{} failed: {}</source>
        <translation>Échec de {} : {}</translation>
    </message>
    <message>
        <source>{} files written, {} failed, in {:.1f} s; report: {}</source>
        <translation>{} fichiers écrits, {} en échec, en {:.1f} s ; rapport : {}</translation>
    </message>
    <message>
        <source>No file could be coded: {}. See the log and {}.</source>
        <translation>Aucun fichier n'a pu être codé : {}. Voir le journal et {}.</translation>
    </message>
</context>
<context>
    <name>CompressRaster</name>
    <message>
        <source>Stretch range (min, max)</source>
        <translation>Plage d'étirement (min, max)</translation>
    </message>
    <message>
        <source>Source values mapped to 0..255 in every band, as 'min, max' (for a 16-bit or float raster). Empty: 8-bit rasters as they are, others from each band's 2 % and 98 % percentiles. The log gives the range used; values outside it are clipped.</source>
        <translation>Valeurs source ramenées à 0..255 dans chaque bande, sous la forme « min, max » (pour un raster 16 bits ou flottant). Vide : les rasters 8 bits tels quels, les autres d'après les centiles 2 % et 98 % de chaque bande. Le journal indique la plage utilisée ; les valeurs hors de cette plage sont écrêtées.</translation>
    </message>
    <message>
        <source>The stretch range '{}' is not two numbers: give 'min, max', such as '0, 4000', or leave it empty.</source>
        <translation>La plage d'étirement « {} » n'est pas deux nombres : donnez « min, max », par exemple « 0, 4000 », ou laissez-la vide.</translation>
    </message>
    <message>
        <source>8-bit source: its values are coded as they are.</source>
        <translation>Source 8 bits : ses valeurs sont codées telles quelles.</translation>
    </message>
    <message>
        <source>{} source stretched to 0..255 from {} (red, green, blue); values outside are clipped, and decoded values lie within these ranges.</source>
        <translation>Source {} étirée vers 0..255 depuis {} (rouge, vert, bleu) ; les valeurs hors plage sont écrêtées, et les valeurs décodées restent dans ces plages.</translation>
    </message>
    <message>
        <source>Compress raster</source>
        <translation>Compresser un raster</translation>
    </message>
    <message>
        <source>Compresses an RGB raster to a .magc file at an extremely low bitrate, helped by a vector map (buildings, roads, water, vegetation, other land) that the decoder will have too, such as OpenStreetMap. The CRS, geotransform and nodata of the raster are kept. The real size in bits per pixel is reported. Decompress with the same guidance layers.</source>
        <translation>Compresse un raster RVB en un fichier .magc à très bas débit, aidé par une carte vecteur (bâtiments, routes, eau, végétation, autre terrain) dont le décodeur disposera aussi, comme OpenStreetMap. Le SCR, le géoréférencement et le nodata du raster sont conservés. La taille réelle en bits par pixel est indiquée. Décompressez avec les mêmes couches de guidage.</translation>
    </message>
    <message>
        <source>The image to compress: 8-bit RGB, any CRS; nodata pixels are kept as nodata.</source>
        <translation>L'image à compresser : RVB 8 bits, tout SCR ; les pixels nodata restent nodata.</translation>
    </message>
    <message>
        <source>Three bands to code as red, green and blue. Empty: bands 1, 2, 3 (one band: grey).</source>
        <translation>Trois bandes à coder en rouge, vert et bleu. Vide : bandes 1, 2, 3 (une bande : niveaux de gris).</translation>
    </message>
    <message>
        <source>Bitrate preset</source>
        <translation>Débit prédéfini</translation>
    </message>
    <message>
        <source>The model's rate preset, by name or number: lower rates give smaller files and more invented detail. 'default' is the model's default preset.</source>
        <translation>Le débit prédéfini du modèle, par son nom ou son numéro : un débit plus bas donne des fichiers plus petits et plus de détails inventés. « default » est le débit par défaut du modèle.</translation>
    </message>
    <message>
        <source>Side of the tiles coded one at a time (a multiple of 64). Smaller tiles use less memory. Default: the MAGC tile size in Processing &gt; Options.</source>
        <translation>Côté des tuiles codées une à une (multiple de 64). Des tuiles plus petites utilisent moins de mémoire. Par défaut : la taille des tuiles MAGC des options de Traitement.</translation>
    </message>
    <message>
        <source>Store the rasterized map in the file (it costs bits) so that it decodes without the vector layers.</source>
        <translation>Stocker la carte rastérisée dans le fichier (cela coûte des bits) pour décoder sans les couches vecteur.</translation>
    </message>
    <message>
        <source>The .magc file to write.</source>
        <translation>Le fichier .magc à écrire.</translation>
    </message>
    <message>
        <source>Input raster</source>
        <translation>Raster en entrée</translation>
    </message>
    <message>
        <source>Bands (red, green, blue)</source>
        <translation>Bandes (rouge, vert, bleu)</translation>
    </message>
    <message>
        <source>Tile size (pixels)</source>
        <translation>Taille des tuiles (pixels)</translation>
    </message>
    <message>
        <source>Embed the guidance map in the file</source>
        <translation>Inclure la carte de guidage dans le fichier</translation>
    </message>
    <message>
        <source>Compressed file</source>
        <translation>Fichier compressé</translation>
    </message>
    <message>
        <source>MAGC files (*.magc)</source>
        <translation>Fichiers MAGC (*.magc)</translation>
    </message>
    <message>
        <source>No guidance layer given: the codec works without a map, but with less detail.</source>
        <translation>Aucune couche de guidage : le codec fonctionne sans carte, mais avec moins de détails.</translation>
    </message>
    <message>
        <source>Model {}, rate preset '{}', device {}</source>
        <translation>Modèle {}, débit prédéfini « {} », périphérique {}</translation>
    </message>
    <message>
        <source>Wrote {}: {} bytes, {:.4f} bpp for {} pixels in {} tiles, {:.1f} s</source>
        <translation>{} écrit : {} octets, {:.4f} bpp pour {} pixels en {} tuiles, {:.1f} s</translation>
    </message>
    <message>
        <source>Size (bytes)</source>
        <translation>Taille (octets)</translation>
    </message>
    <message>
        <source>Bits per pixel</source>
        <translation>Bits par pixel</translation>
    </message>
    <message>
        <source>Pixels</source>
        <translation>Pixels</translation>
    </message>
    <message>
        <source>Tiles</source>
        <translation>Tuiles</translation>
    </message>
    <message>
        <source>Time (seconds)</source>
        <translation>Durée (secondes)</translation>
    </message>
</context>
<context>
    <name>DecompressRaster</name>
    <message>
        <source>Decompress raster</source>
        <translation>Décompresser un raster</translation>
    </message>
    <message>
        <source>Decodes a .magc file into a GeoTIFF with the original CRS, geotransform and nodata, and loads it. Give the guidance layers that were used to compress: the decoder draws detail that the map implies. The same seed gives the same image.</source>
        <translation>Décode un fichier .magc en un GeoTIFF avec le SCR, le géoréférencement et le nodata d'origine, et le charge. Donnez les couches de guidage utilisées à la compression : le décodeur dessine les détails que la carte implique. La même graine donne la même image.</translation>
    </message>
    <message>
        <source>A .magc file written by 'Compress raster'.</source>
        <translation>Un fichier .magc écrit par « Compresser un raster ».</translation>
    </message>
    <message>
        <source>More steps: finer texture, slower decoding. 0: stage 1 alone, no diffusion: fast, the colours and layout the bits carry, no drawn texture (blurry).</source>
        <translation>Plus d'étapes : texture plus fine, décodage plus lent. 0 : l'étape 1 seule, sans diffusion : rapide, les couleurs et la disposition que portent les bits, sans texture dessinée (flou).</translation>
    </message>
    <message>
        <source>Seed of the decoder's noise: the same file, map and seed always give the same image.</source>
        <translation>Graine du bruit du décodeur : le même fichier, la même carte et la même graine donnent toujours la même image.</translation>
    </message>
    <message>
        <source>Decode only the tiles that cover this extent. Empty: the whole raster.</source>
        <translation>Décoder seulement les tuiles qui couvrent cette emprise. Vide : tout le raster.</translation>
    </message>
    <message>
        <source>Fail instead of warning when the guidance map differs from the one used to compress.</source>
        <translation>Échouer au lieu d'avertir quand la carte de guidage diffère de celle utilisée à la compression.</translation>
    </message>
    <message>
        <source>Skip damaged tiles</source>
        <translation>Ignorer les tuiles endommagées</translation>
    </message>
    <message>
        <source>Decode what can be: the tiles that are damaged in the file become nodata, with a warning each, instead of the whole file being refused.</source>
        <translation>Décoder ce qui peut l'être : les tuiles endommagées du fichier deviennent nodata, avec un avertissement pour chacune, au lieu du refus de tout le fichier.</translation>
    </message>
    <message>
        <source>The decoded GeoTIFF.</source>
        <translation>Le GeoTIFF décodé.</translation>
    </message>
    <message>
        <source>Compressed file</source>
        <translation>Fichier compressé</translation>
    </message>
    <message>
        <source>Diffusion steps</source>
        <translation>Étapes de diffusion</translation>
    </message>
    <message>
        <source>Seed</source>
        <translation>Graine</translation>
    </message>
    <message>
        <source>Extent to decode</source>
        <translation>Emprise à décoder</translation>
    </message>
    <message>
        <source>Stop if the guidance differs</source>
        <translation>Arrêter si le guidage diffère</translation>
    </message>
    <message>
        <source>Decoded raster</source>
        <translation>Raster décodé</translation>
    </message>
    <message>
        <source>No guidance layer given: the map embedded in the file is used, if any.</source>
        <translation>Aucune couche de guidage : la carte incluse dans le fichier est utilisée, s'il y en a une.</translation>
    </message>
    <message>
        <source>Wrote {}: {} pixels in {} tiles, {:.1f} s</source>
        <translation>{} écrit : {} pixels en {} tuiles, {:.1f} s</translation>
    </message>
    <message>
        <source>Pixels</source>
        <translation>Pixels</translation>
    </message>
    <message>
        <source>Tiles</source>
        <translation>Tuiles</translation>
    </message>
    <message>
        <source>Time (seconds)</source>
        <translation>Durée (secondes)</translation>
    </message>
</context>
<context>
    <name>Diagnostics</name>
    <message>
        <source>Diagnostics</source>
        <translation>Diagnostic</translation>
    </message>
    <message>
        <source>Reports the versions of QGIS, Python and the packages MAGC needs, the device PyTorch will use, and the model files with their SHA-256 checksums. Run it first when a tool fails, and attach its report to bug reports.</source>
        <translation>Indique les versions de QGIS, de Python et des paquets nécessaires à MAGC, le périphérique qu'utilisera PyTorch, et les fichiers du modèle avec leurs sommes SHA-256. Lancez-le d'abord quand un outil échoue, et joignez son rapport aux signalements de bogues.</translation>
    </message>
    <message>
        <source>The model folder to check. Empty: the model shipped with the plugin.</source>
        <translation>Le dossier de modèle à vérifier. Vide : le modèle livré avec l'extension.</translation>
    </message>
    <message>
        <source>The report as JSON.</source>
        <translation>Le rapport en JSON.</translation>
    </message>
    <message>
        <source>Model folder</source>
        <translation>Dossier du modèle</translation>
    </message>
    <message>
        <source>Report</source>
        <translation>Rapport</translation>
    </message>
    <message>
        <source>JSON files (*.json)</source>
        <translation>Fichiers JSON (*.json)</translation>
    </message>
    <message>
        <source>Device</source>
        <translation>Périphérique</translation>
    </message>
    <message>
        <source>PyTorch version</source>
        <translation>Version de PyTorch</translation>
    </message>
</context>
<context>
    <name>Evaluate</name>
    <message>
        <source>Downloading {} to {} (once)</source>
        <translation>Téléchargement de {} vers {} (une seule fois)</translation>
    </message>
    <message>
        <source>Evaluate</source>
        <translation>Évaluer</translation>
    </message>
    <message>
        <source>Compares a decoded raster with its original: PSNR and MS-SSIM, bits per pixel when the .magc file is given, and the perceptual metrics LPIPS, DISTS and FID when their network weights are available. Figures are outputs and an HTML report; nodata windows are left out.</source>
        <translation>Compare un raster décodé à son original : PSNR et MS-SSIM, bits par pixel si le fichier .magc est donné, et les mesures perceptuelles LPIPS, DISTS et FID si leurs poids sont disponibles. Les résultats sont des sorties et un rapport HTML ; les fenêtres nodata sont exclues.</translation>
    </message>
    <message>
        <source>The raster that was compressed.</source>
        <translation>Le raster qui a été compressé.</translation>
    </message>
    <message>
        <source>The output of 'Decompress raster', on the same grid.</source>
        <translation>La sortie de « Décompresser un raster », sur la même grille.</translation>
    </message>
    <message>
        <source>The .magc file, to report its real size in bits per pixel.</source>
        <translation>Le fichier .magc, pour indiquer sa taille réelle en bits par pixel.</translation>
    </message>
    <message>
        <source>Folder with the LPIPS/DISTS backbone weights (in its metrics/ subfolder). Empty: the metric weights folder of Processing &gt; Options, else torchvision's ImageNet weights in PyTorch's cache, downloaded there on first use (about 780 MB). A metric without weights is left out, with a warning.</source>
        <translation>Dossier des poids des réseaux LPIPS/DISTS (dans son sous-dossier metrics/). Vide : le dossier des poids des mesures des options de Traitement, sinon les poids ImageNet de torchvision dans le cache de PyTorch, téléchargés là à la première utilisation (environ 780 Mo). Une mesure sans poids est omise, avec un avertissement.</translation>
    </message>
    <message>
        <source>The HTML report.</source>
        <translation>Le rapport HTML.</translation>
    </message>
    <message>
        <source>Original raster</source>
        <translation>Raster d'origine</translation>
    </message>
    <message>
        <source>Decoded raster</source>
        <translation>Raster décodé</translation>
    </message>
    <message>
        <source>Compressed file</source>
        <translation>Fichier compressé</translation>
    </message>
    <message>
        <source>Metric weights folder</source>
        <translation>Dossier des poids des mesures</translation>
    </message>
    <message>
        <source>Report</source>
        <translation>Rapport</translation>
    </message>
    <message>
        <source>HTML files (*.html)</source>
        <translation>Fichiers HTML (*.html)</translation>
    </message>
    <message>
        <source>Computing the metrics</source>
        <translation>Calcul des mesures</translation>
    </message>
    <message>
        <source>Bits per pixel</source>
        <translation>Bits par pixel</translation>
    </message>
    <message>
        <source>PSNR (dB)</source>
        <translation>PSNR (dB)</translation>
    </message>
    <message>
        <source>MS-SSIM</source>
        <translation>MS-SSIM</translation>
    </message>
    <message>
        <source>LPIPS (AlexNet)</source>
        <translation>LPIPS (AlexNet)</translation>
    </message>
    <message>
        <source>LPIPS (VGG)</source>
        <translation>LPIPS (VGG)</translation>
    </message>
    <message>
        <source>DISTS</source>
        <translation>DISTS</translation>
    </message>
    <message>
        <source>FID</source>
        <translation>FID</translation>
    </message>
</context>
<context>
    <name>MAGCAlgorithm</name>
    <message>
        <source>Default device</source>
        <translation>Périphérique par défaut</translation>
    </message>
    <message>
        <source>Default model folder (empty: the model shipped with the plugin)</source>
        <translation>Dossier du modèle par défaut (vide : le modèle livré avec l'extension)</translation>
    </message>
    <message>
        <source>Default tile size (pixels, a multiple of 64)</source>
        <translation>Taille des tuiles par défaut (pixels, multiple de 64)</translation>
    </message>
    <message>
        <source>Metric weights folder (empty: torchvision's cache, downloaded once)</source>
        <translation>Dossier des poids des mesures (vide : le cache de torchvision, téléchargé une fois)</translation>
    </message>
    <message>
        <source>Python of local Dask workers (empty: python3 on the PATH)</source>
        <translation>Python des travailleurs Dask locaux (vide : le python3 du PATH)</translation>
    </message>
    <message>
        <source>Vector layers whose features are classified one by one from OpenStreetMap tags (building, highway, waterway, natural, landuse...) or the 'fclass' field of OSM exports. Features with no recognised tag are skipped. Give the same layers to Compress and Decompress.</source>
        <translation>Couches vecteur dont les entités sont classées une à une d'après les attributs OpenStreetMap (building, highway, waterway, natural, landuse...) ou le champ « fclass » des exports OSM. Les entités sans attribut reconnu sont ignorées. Donnez les mêmes couches à Compresser et à Décompresser.</translation>
    </message>
    <message>
        <source>A class raster made by 'Rasterize guidance' (0 not mapped, 1 building, 2 road, 3 water, 4 vegetation, 5 other land), used where no vector layer maps a pixel.</source>
        <translation>Un raster de classes produit par « Rastériser le guidage » (0 non cartographié, 1 bâtiment, 2 route, 3 eau, 4 végétation, 5 autre terrain), utilisé là où aucune couche vecteur ne cartographie un pixel.</translation>
    </message>
    <message>
        <source>A MAGC model folder (config.json and .safetensors files). Empty: the model shipped with the plugin. Decompress with the model that compressed.</source>
        <translation>Un dossier de modèle MAGC (config.json et fichiers .safetensors). Vide : le modèle livré avec l'extension. Décompressez avec le modèle qui a compressé.</translation>
    </message>
    <message>
        <source>Device</source>
        <translation>Périphérique</translation>
    </message>
    <message>
        <source>Where the networks run: 'auto' takes a CUDA GPU when PyTorch sees one, else the CPU. Give the name or the number. Default: the MAGC device in Processing &gt; Options.</source>
        <translation>Où tournent les réseaux : « auto » prend un GPU CUDA si PyTorch en voit un, sinon le CPU. Donnez le nom ou le numéro. Par défaut : le périphérique MAGC des options de Traitement.</translation>
    </message>
    <message>
        <source>Guidance layers classified by OSM tags</source>
        <translation>Couches de guidage classées par attributs OSM</translation>
    </message>
    <message>
        <source>Guidance class raster</source>
        <translation>Raster de classes de guidage</translation>
    </message>
    <message>
        <source>Model folder</source>
        <translation>Dossier du modèle</translation>
    </message>
    <message>
        <source>Canceled.</source>
        <translation>Annulé.</translation>
    </message>
    <message>
        <source>Out of memory: choose a smaller tile size.</source>
        <translation>Mémoire insuffisante : choisissez une taille de tuile plus petite.</translation>
    </message>
    <message>
        <source>The raster '{}' is not a GDAL file (provider '{}'): save it as a GeoTIFF first (Export &gt; Save As).</source>
        <translation>Le raster « {} » n'est pas un fichier GDAL (fournisseur « {} ») : enregistrez-le d'abord en GeoTIFF (Exporter &gt; Enregistrer sous).</translation>
    </message>
    <message>
        <source>Guidance '{}': {} features mapped, {} without a recognised class.</source>
        <translation>Guidage « {} » : {} entités cartographiées, {} sans classe reconnue.</translation>
    </message>
    <message>
        <source>The device ran out of memory: choose a smaller tile size or the CPU device.</source>
        <translation>Le périphérique manque de mémoire : choisissez une taille de tuile plus petite ou le CPU.</translation>
    </message>
    <message>
        <source>Guidance '{}' contributed nothing: it does not overlap the raster (check its CRS and extent) or none of its features has a known class.</source>
        <translation>Le guidage « {} » n'a rien apporté : il ne recouvre pas le raster (vérifiez son SCR et son emprise) ou aucune de ses entités n'a de classe connue.</translation>
    </message>
    <message>
        <source>MAGC needs the Python package '{}', which QGIS's Python cannot import ({}). {}</source>
        <translation>MAGC a besoin du paquet Python « {} », que le Python de QGIS ne peut pas importer ({}). {}</translation>
    </message>
    <message>
        <source>MAGC failed: {}</source>
        <translation>Échec de MAGC : {}</translation>
    </message>
    <message>
        <source>Cannot read or write a file: {}</source>
        <translation>Impossible de lire ou d'écrire un fichier : {}</translation>
    </message>
    <message>
        <source>Compression</source>
        <translation>Compression</translation>
    </message>
    <message>
        <source>Guidance</source>
        <translation>Guidage</translation>
    </message>
    <message>
        <source>Tools</source>
        <translation>Outils</translation>
    </message>
    <message>
        <source>Buildings (guidance layer)</source>
        <translation>Bâtiments (couche de guidage)</translation>
    </message>
    <message>
        <source>Roads (guidance layer)</source>
        <translation>Routes (couche de guidage)</translation>
    </message>
    <message>
        <source>Water (guidance layer)</source>
        <translation>Eau (couche de guidage)</translation>
    </message>
    <message>
        <source>Vegetation (guidance layer)</source>
        <translation>Végétation (couche de guidage)</translation>
    </message>
    <message>
        <source>Other land (guidance layer)</source>
        <translation>Autre terrain (couche de guidage)</translation>
    </message>
    <message>
        <source>Every feature of this layer is mapped as 'buildings', whatever its attributes. Any vector source and CRS; lines are buffered to a typical width.</source>
        <translation>Chaque entité de cette couche est cartographiée comme « bâtiment », quels que soient ses attributs. Toute source vecteur et tout SCR ; les lignes reçoivent une largeur typique.</translation>
    </message>
    <message>
        <source>Every feature of this layer is mapped as 'roads', whatever its attributes. Any vector source and CRS; lines are buffered to a typical width.</source>
        <translation>Chaque entité de cette couche est cartographiée comme « route », quels que soient ses attributs. Toute source vecteur et tout SCR ; les lignes reçoivent une largeur typique.</translation>
    </message>
    <message>
        <source>Every feature of this layer is mapped as 'water', whatever its attributes. Any vector source and CRS; lines are buffered to a typical width.</source>
        <translation>Chaque entité de cette couche est cartographiée comme « eau », quels que soient ses attributs. Toute source vecteur et tout SCR ; les lignes reçoivent une largeur typique.</translation>
    </message>
    <message>
        <source>Every feature of this layer is mapped as 'vegetation', whatever its attributes. Any vector source and CRS; lines are buffered to a typical width.</source>
        <translation>Chaque entité de cette couche est cartographiée comme « végétation », quels que soient ses attributs. Toute source vecteur et tout SCR ; les lignes reçoivent une largeur typique.</translation>
    </message>
    <message>
        <source>Every feature of this layer is mapped as 'other land', whatever its attributes. Any vector source and CRS; lines are buffered to a typical width.</source>
        <translation>Chaque entité de cette couche est cartographiée comme « autre terrain », quels que soient ses attributs. Toute source vecteur et tout SCR ; les lignes reçoivent une largeur typique.</translation>
    </message>
    <message>
        <source>Install the plugin's Python dependencies into QGIS's Python: run 'python3 build.py setup' in the plugin's source folder, or 'pip install -r requirements.txt' with QGIS's Python (see the README).</source>
        <translation>Installez les dépendances Python de l'extension dans le Python de QGIS : lancez « python3 build.py setup » dans le dossier source de l'extension, ou « pip install -r requirements.txt » avec le Python de QGIS (voir le README).</translation>
    </message>
    <message>
        <source>Use the project's vector layers when no guidance is given</source>
        <translation>Utiliser les couches vectorielles du projet quand aucun guidage n'est donné</translation>
    </message>
    <message>
        <source>When no guidance layer and no class raster is given, the project's vector layers over the raster are the map: each classified by its features' OSM tags or 'fclass', else by its name (buildings, roads, water, forest, landuse...); the others are left out. The log lists them, and the dialog opens with them filled in. Off: no map unless one is given.</source>
        <translation>Quand aucune couche de guidage ni aucun raster de classes n'est donné, les couches vectorielles du projet sur le raster forment la carte : chacune classée par les balises OSM ou le « fclass » de ses entités, sinon par son nom (buildings, roads, water, forest, landuse...) ; les autres sont écartées. Le journal les liste, et la boîte de dialogue s'ouvre avec elles déjà remplies. Désactivé : pas de carte sauf si une est donnée.</translation>
    </message>
    <message>
        <source>No guidance given: the project's vector layers are the map (advanced parameter 'Use the project's vector layers when no guidance is given').</source>
        <translation>Aucun guidage donné : les couches vectorielles du projet forment la carte (paramètre avancé « Utiliser les couches vectorielles du projet quand aucun guidage n'est donné »).</translation>
    </message>
    <message>
        <source>Project layer '{}' left out: its features have no OSM tag or 'fclass' of a guidance class and its name names none (buildings, roads, water, forest, landuse...).</source>
        <translation>Couche du projet « {} » écartée : ses entités n'ont ni balise OSM ni « fclass » d'une classe de guidage, et son nom n'en nomme aucune (buildings, roads, water, forest, landuse...).</translation>
    </message>
    <message>
        <source>Project layer '{}' left out: none of its features touches the raster.</source>
        <translation>Couche du projet « {} » écartée : aucune de ses entités ne touche le raster.</translation>
    </message>
    <message>
        <source>by its features' OSM tags</source>
        <translation>par les balises OSM de ses entités</translation>
    </message>
    <message>
        <source>as '{}' (its name)</source>
        <translation>comme « {} » (d'après son nom)</translation>
    </message>
    <message>
        <source>Project layer '{}' used, classified {}: {} features.</source>
        <translation>Couche du projet « {} » utilisée, classée {} : {} entités.</translation>
    </message>
</context>
<context>
    <name>MAGCProvider</name>
    <message>
        <source>MAGC map-assisted generative compression</source>
        <translation>MAGC : compression générative assistée par carte</translation>
    </message>
</context>
<context>
    <name>RasterizeGuidance</name>
    <message>
        <source>Rasterize guidance</source>
        <translation>Rastériser le guidage</translation>
    </message>
    <message>
        <source>Burns the guidance vector layers into the class raster the codec sees, on the grid of a raster: 0 not mapped, 1 building, 2 road, 3 water, 4 vegetation, 5 other land. Use it to check a map before compressing, or feed it to Compress and Decompress as a guidance class raster.</source>
        <translation>Rastérise les couches vecteur de guidage en raster de classes tel que le voit le codec, sur la grille d'un raster : 0 non cartographié, 1 bâtiment, 2 route, 3 eau, 4 végétation, 5 autre terrain. Utile pour vérifier une carte avant de compresser, ou à donner à Compresser et Décompresser comme raster de classes de guidage.</translation>
    </message>
    <message>
        <source>The class raster gets this raster's extent, pixel size and CRS.</source>
        <translation>Le raster de classes prend l'emprise, la taille de pixel et le SCR de ce raster.</translation>
    </message>
    <message>
        <source>A one-band uint8 GeoTIFF with a colour table, and a QGIS style with the class names beside it.</source>
        <translation>Un GeoTIFF uint8 à une bande avec table de couleurs, et à côté un style QGIS avec les noms des classes.</translation>
    </message>
    <message>
        <source>Raster giving the grid</source>
        <translation>Raster donnant la grille</translation>
    </message>
    <message>
        <source>Guidance class raster</source>
        <translation>Raster de classes de guidage</translation>
    </message>
    <message>
        <source>Mapped fraction</source>
        <translation>Part cartographiée</translation>
    </message>
    <message>
        <source>{:.1%} of the pixels are mapped.</source>
        <translation>{:.1%} des pixels sont cartographiés.</translation>
    </message>
    <message>
        <source>Cannot open {}: {}</source>
        <translation>Impossible d'ouvrir {} : {}</translation>
    </message>
</context>
</TS>
