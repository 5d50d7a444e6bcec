"""The on-device runtime: exported models run with the Numba frontend and a TFLite interpreter only.

Imports numpy, numba and a TFLite interpreter (ai-edge-litert, else tflite_runtime) -- never torch, librosa
or anything from export, recipes, data_prep or demos (tested) -- so it runs on a Raspberry Pi-class device
with the "device" requirements.

- :mod:`.tflite`: the interpreter wrapper (:class:`TFLiteModel`, float in/out, binding by name).
- :mod:`.kws`: :class:`KWSModel` (exported KWS folder, enrolment, open-set scores), :class:`StreamingKWS`.
- :mod:`.asr`: :class:`StreamingASR` (exported streaming step model with named state).
"""

from .asr import StreamingASR
from .kws import UNKNOWN, Detection, KWSModel, StreamingKWS, detect_file
from .tflite import TFLiteModel, make_interpreter

__all__ = ["TFLiteModel", "make_interpreter", "KWSModel", "StreamingKWS", "Detection", "detect_file",
           "StreamingASR", "UNKNOWN"]
