"""speechedge: streaming speech recognition and few-shot keyword spotting for small devices.

Importing the package is cheap: torch, librosa and the TFLite runtime are imported by the modules
that need them, so the on-device path (``speechedge.kernels``, audio, features) runs without torch.
"""

__version__ = "0.1.0"
