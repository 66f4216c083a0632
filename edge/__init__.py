"""Bedside runtime: signal contract, label catalogue, bundle loading, inference and the serial stream.

Runs on a Raspberry-Pi-class board with numpy, pyserial and onnxruntime (or ai-edge-litert);
it never imports torch. Importing this package does no work: submodules are imported on use.
"""

__version__ = "0.1.0"
