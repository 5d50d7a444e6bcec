"""Numba kernels for the on-device path: feature frontends (and, later, alignment). No torch import."""

from .frontend import FrontendConstants, StreamingLogMel, constants, log_mel

__all__ = ["log_mel", "StreamingLogMel", "FrontendConstants", "constants"]
