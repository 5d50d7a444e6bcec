"""A ctypes binding of libespeak-ng from the ``espeakng-loader`` wheel (no apt package needed).

Only what corpus synthesis needs: pick a voice, set rate / pitch / range, synthesize text to int16
samples at the native 22,050 Hz, and collect the word events (character position and audio position)
that espeak reports while it speaks. espeak-ng keeps global state, so one :class:`Espeak` per process.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass

import numpy as np

__all__ = ["Espeak", "EspeakError", "WordEvent", "Utterance", "espeak_available"]

# espeak_AUDIO_OUTPUT / espeak_EVENT_TYPE / espeak_PARAMETER from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 2, 3, 4, 7
# espeak-ng copies the data path into a fixed 160-byte buffer and exits the process when it does not fit.
_MAX_DATA_PATH = 150


class EspeakError(RuntimeError):
    """libespeak-ng could not be loaded or refused a request."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class WordEvent:
    """espeak's report that it starts speaking a word.

    ``char_start`` is the 0-based character offset in the text, ``num_chars`` its length, and
    ``start_sample`` the position in the output audio (from espeak's millisecond ``audio_position``).
    """

    char_start: int
    num_chars: int
    start_sample: int


@dataclass(frozen=True)
class Utterance:
    """Synthesized audio (int16, native rate) and its word events."""

    samples: np.ndarray
    sample_rate: int
    words: tuple[WordEvent, ...]


def espeak_available() -> bool:
    """True when the espeakng-loader wheel and its shared library can be found."""
    try:
        import espeakng_loader  # noqa: F401
    except ImportError:
        return False
    return True


def _short_data_path(data_path: str) -> str:
    if len(data_path.encode()) <= _MAX_DATA_PATH:
        return data_path
    short = os.path.join(tempfile.gettempdir(), "speechedge-espeak-ng-data")
    if not os.path.isdir(short):
        tmp = tempfile.mkdtemp(prefix="speechedge-espeak-")
        shutil.copytree(data_path, os.path.join(tmp, "d"))
        try:
            os.replace(os.path.join(tmp, "d"), short)
        except OSError:  # another process won the race
            pass
    return short


class Espeak:
    """One espeak-ng engine in synchronous mode.

    Example:
        >>> tts = Espeak()
        >>> utt = tts.synthesize("hello world", voice="en-us+m3", rate=170, pitch=50)
        >>> utt.sample_rate, len(utt.words)
        (22050, 2)
    """

    _lock = threading.Lock()
    _instance_lib: ctypes.CDLL | None = None
    _sample_rate: int = 0

    def __init__(self) -> None:
        with Espeak._lock:
            if Espeak._instance_lib is None:
                try:
                    import espeakng_loader
                except ImportError as e:
                    raise EspeakError(
                        "espeak-ng is not installed: pip install 'speechedge[data]' (the espeakng-loader wheel)"
                    ) from e
                lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
                lib.espeak_Initialize.restype = ctypes.c_int
                lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
                lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
                lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
                if hasattr(lib, "espeak_ng_SetRandSeed"):  # breathy variants add noise from espeak's RNG
                    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
                lib.espeak_Synth.argtypes = [
                    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                    ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
                ]
                data = _short_data_path(espeakng_loader.get_data_path())
                rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), 0)
                if rate <= 0:
                    raise EspeakError(f"espeak_Initialize failed (returned {rate}) with data path {data}")
                Espeak._instance_lib = lib
                Espeak._sample_rate = rate
        self._lib = Espeak._instance_lib
        self.sample_rate = Espeak._sample_rate
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int]] = []
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: ctypes does not
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, num_samples, events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_WORD:
                self._events.append((ev.text_position, ev.length, ev.audio_position))
            i += 1
        return 0  # 0 = continue synthesis

    def synthesize(
        self, text: str, *, voice: str = "en-us", rate: int = 175, pitch: int = 50, pitch_range: int = 50,
        word_gap: int = 0, seed: int | None = None,
    ) -> Utterance:
        """Speak ``text`` and return its audio and word events.

        Args:
            text: UTF-8 text; punctuation adds pauses.
            voice: an espeak voice name, optionally with a variant (``"en-us+f2"``).
            rate: words per minute (80..450).
            pitch, pitch_range: 0..100.
            word_gap: extra pause between words in units of 10 ms.
            seed: seeds espeak's noise generator (breathy / whispered variants) for this call.

        Note: libespeak-ng also carries state from one call to the next within a process (its pitch
        flutter position), so byte-identical output needs the same sequence of calls in a fresh process.
        """
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice {voice!r}; try 'en-us', 'en', 'en+m3', 'en-us+f2'")
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range),
                             (_PARAM_WORDGAP, word_gap), (_PARAM_VOLUME, 100)):
            lib.espeak_SetParameter(param, int(value), 0)
        if seed is not None and hasattr(lib, "espeak_ng_SetRandSeed"):
            lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
        self._chunks, self._events = [], []
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        err = lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise EspeakError(f"espeak_Synth failed with error {err} for text {text[:40]!r}")
        lib.espeak_Synchronize()
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        # espeak reports 1-based character positions and millisecond audio positions
        words = tuple(
            WordEvent(pos - 1, length, int(round(ms * self.sample_rate / 1000)))
            for pos, length, ms in self._events
        )
        return Utterance(samples.astype(np.int16, copy=False), self.sample_rate, words)
