"""Wire protocol v1 between ECG acquisition firmware and the host runtime (see PROTOCOL.md).

Pure byte functions (COBS, CRC) at the bottom, frame packing on top of them, one stateful stream
decoder above that, and the serial port outside. Knows nothing of machine learning.
"""

__version__ = "0.1.0"
