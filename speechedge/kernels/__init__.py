"""Numba kernels for the on-device path: feature frontends and CTC forced alignment. No torch import."""

from .align import AlignmentError, ctc_forced_align
from .frontend import FrontendConstants, StreamingLogMel, constants, log_mel

__all__ = ["log_mel", "StreamingLogMel", "FrontendConstants", "constants", "ctc_forced_align", "AlignmentError"]
