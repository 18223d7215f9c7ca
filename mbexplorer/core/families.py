"""What the builder can build: the plain constants, without numpy or onnx.

The CLI's argument parser and the GUI's build dialog need these choices at start-up; importing the builder
itself pulls in onnx and numpy (about a second), so the constants live here and ``builder.py`` imports them.
"""

FAMILIES = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")
ROUNDINGS = ("torchvision", "paddle", "tfslim")  # channel rounding; see builder.py's docstring
WIDTH_RANGE = (0.25, 2.0)
RESOLUTION_RANGE = (96, 320)
