"""Checkpoint -> bundle: int8 ONNX (and TFLite) ECG encoder plus precomputed label embeddings."""
