"""Checkpoint -> bundle: int8 ONNX (and TFLite) ECG encoder plus precomputed label embeddings.

``ecg-export`` (:mod:`export.cli`) runs :func:`export.pipeline.export_bundle`. One module per step:
:mod:`~export.onnx_export` (fp32 ONNX, checked against torch), :mod:`~export.quantize` (onnxruntime
static int8), :mod:`~export.gate` (int8 vs fp32 agreement), :mod:`~export.labels` (label embedding
matrix, extra labels), :mod:`~export.thresholds`, :mod:`~export.data` (real windows by fold),
:mod:`~export.tflite` (LiteRT full int8), :mod:`~export.latency` and :mod:`~export.bundle_writer`.
Nothing is imported here, so ``import export`` stays cheap.
"""
