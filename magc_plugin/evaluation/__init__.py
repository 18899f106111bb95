"""Evaluation of MAGC: metrics (:mod:`.metrics`), classical baselines (:mod:`.baselines`),
a land-cover segmentation net for mIoU (:mod:`.segmentation`) and the benchmark
(``python -m magc_plugin.evaluation.bench``). Nothing here is imported by the plugin
until the Evaluate tool or the benchmark runs.
"""
