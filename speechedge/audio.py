"""Audio reading, validation, resampling and atomic writing.

Everything in speechedge that touches an audio file goes through this module, so that every bad input
gets the same clear error naming the file. Audio in memory is always ``float32`` in ``[-1, 1]`` with
shape ``(num_samples,)`` (mono) or ``(channels, num_samples)``.

Mono policy: ``mono="mix"`` averages channels (the default, what librosa does), ``mono="first"`` keeps
channel 0, ``mono="error"`` refuses multi-channel input with :class:`ChannelError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

__all__ = [
    "AudioError",
    "AudioFormatError",
    "EmptyAudioError",
    "NonFiniteAudioError",
    "SampleRateError",
    "ChannelError",
    "AudioInfo",
    "info",
    "read_audio",
    "write_audio",
    "validate_audio",
    "resample",
    "to_int16",
    "fit_length",
    "trim_silence",
    "voiced_frames",
    "from_int16",
]

MonoPolicy = Literal["mix", "first", "error"]


class AudioError(ValueError):
    """Base class of every audio problem. The message names the file (or argument) and a fix."""


class AudioFormatError(AudioError):
    """The file is missing, truncated, or not audio that libsndfile can decode."""


class EmptyAudioError(AudioError):
    """The audio has zero samples, or fewer than the caller requires."""


class NonFiniteAudioError(AudioError):
    """The audio contains NaN or infinite values."""


class SampleRateError(AudioError):
    """The sample rate is not the expected one and resampling was not allowed."""


class ChannelError(AudioError):
    """The audio has more channels than the mono policy accepts."""


@dataclass(frozen=True)
class AudioInfo:
    """Header facts about an audio file, read without decoding the samples."""

    path: str
    sample_rate: int
    num_samples: int
    num_channels: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate


def _name(source: str | os.PathLike | None) -> str:
    return "<array>" if source is None else str(source)


def _wav_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file, compare the data chunk's declared size with the bytes present.

    libsndfile silently shortens a truncated WAV to what is there, so this is checked by hand.
    Returns a description of the problem, or None when the file is complete (or not a WAV).
    """
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                have = size - pos - 8
                if chunk_size not in (0, 0xFFFFFFFF) and have < chunk_size:
                    return f"data chunk declares {chunk_size} bytes but only {have} are present"
                return None
            pos += 8 + chunk_size + (chunk_size & 1)
    return "no data chunk"


def info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of ``path``.

    Raises:
        AudioFormatError: the file does not exist or is not decodable audio.
    """
    path = Path(path)
    if path.is_dir():
        raise AudioFormatError(f"{path}: is a folder, not an audio file; name the file (or the files) inside it")
    if not path.is_file():
        raise AudioFormatError(f"{path}: no such audio file")
    try:
        i = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioFormatError(
            f"{path}: not a readable audio file ({e}); check that it is a complete WAV/FLAC/OGG file"
        ) from e
    if i.format == "WAV" and (problem := _wav_truncation(path)):
        raise AudioFormatError(f"{path}: truncated WAV file ({problem}); re-copy or re-export it")
    return AudioInfo(str(path), int(i.samplerate), int(i.frames), int(i.channels), i.format, i.subtype)


def validate_audio(
    audio: np.ndarray,
    *,
    source: str | os.PathLike | None = None,
    min_samples: int = 1,
    max_abs: float | None = None,
) -> np.ndarray:
    """Check an in-memory signal and return it as C-contiguous ``float32``.

    Integer input is scaled to ``[-1, 1]`` (int16 by 1/32768, int32 by 1/2**31); float64 is cast.

    Args:
        audio: ``(num_samples,)`` or ``(channels, num_samples)``.
        source: the file (or argument name) the samples came from, used in error messages.
        min_samples: the shortest acceptable length.
        max_abs: if given, reject float input whose peak exceeds it (e.g. 1.0 for clipping checks).

    Raises:
        AudioError: wrong dtype or rank.
        EmptyAudioError: fewer than ``min_samples`` samples.
        NonFiniteAudioError: NaN or Inf present.
    """
    name = _name(source)
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2):
        raise AudioError(f"{name}: audio must have shape (num_samples,) or (channels, num_samples), got {audio.shape}")
    if audio.dtype == np.int16:
        audio = audio.astype(np.float32) / 32768.0
    elif audio.dtype == np.int32:
        audio = (audio.astype(np.float64) / 2**31).astype(np.float32)
    elif audio.dtype in (np.float32, np.float64):
        audio = audio.astype(np.float32, copy=False)
    else:
        raise AudioError(f"{name}: unsupported sample dtype {audio.dtype}; use int16, int32, float32 or float64")
    num_samples = audio.shape[-1]
    if num_samples < min_samples:
        what = "no samples" if num_samples == 0 else f"only {num_samples} samples"
        raise EmptyAudioError(f"{name}: audio has {what}, need at least {min_samples}")
    if not np.isfinite(audio).all():
        bad = int(np.size(audio) - np.isfinite(audio).sum())
        raise NonFiniteAudioError(f"{name}: audio contains {bad} NaN/Inf samples; re-export or drop the file")
    if max_abs is not None:
        peak = float(np.abs(audio).max())
        if peak > max_abs:
            raise AudioError(f"{name}: peak amplitude {peak:.3f} exceeds {max_abs}")
    return np.ascontiguousarray(audio)


def _to_mono(audio: np.ndarray, mono: MonoPolicy, name: str) -> np.ndarray:
    if audio.ndim == 1 or audio.shape[0] == 1:
        return audio.reshape(-1)
    if mono == "mix":
        return audio.mean(axis=0, dtype=np.float32)
    if mono == "first":
        return np.ascontiguousarray(audio[0])
    if mono == "error":
        raise ChannelError(f"{name}: expected mono audio, got {audio.shape[0]} channels; pass mono='mix' to average them")
    raise ValueError(f"mono must be 'mix', 'first' or 'error', got {mono!r}")


def resample(audio: np.ndarray, orig_sr: int, target_sr: int, *, quality: str = "HQ") -> np.ndarray:
    """Resample along the last axis with soxr (band-limited, the same library librosa uses).

    Shape: ``(..., num_samples)`` -> ``(..., round(num_samples * target_sr / orig_sr))``.
    """
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got orig_sr={orig_sr}, target_sr={target_sr}")
    audio = np.asarray(audio, dtype=np.float32)
    if orig_sr == target_sr:
        return audio
    import soxr

    if audio.ndim == 1:
        return soxr.resample(audio, orig_sr, target_sr, quality=quality).astype(np.float32, copy=False)
    # soxr wants (num_samples, channels)
    out = soxr.resample(audio.reshape(-1, audio.shape[-1]).T, orig_sr, target_sr, quality=quality)
    return np.ascontiguousarray(out.T.reshape(*audio.shape[:-1], -1), dtype=np.float32)


def read_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int | None = None,
    resample_ok: bool = True,
    mono: MonoPolicy | None = "mix",
    start_s: float = 0.0,
    duration_s: float | None = None,
    min_samples: int = 1,
) -> tuple[np.ndarray, int]:
    """Read, validate and (optionally) resample an audio file.

    Args:
        path: any file libsndfile decodes (WAV, FLAC, OGG, ...).
        sample_rate: the rate the caller wants; ``None`` keeps the file's rate.
        resample_ok: if False, a file at another rate raises :class:`SampleRateError` instead.
        mono: channel policy (see module docstring); ``None`` keeps all channels as ``(channels, num_samples)``.
        start_s, duration_s: read only this span (seconds, at the file's rate).
        min_samples: the shortest acceptable length after resampling.

    Returns:
        ``(audio, sample_rate)`` with ``audio`` float32.

    Raises:
        AudioFormatError, EmptyAudioError, NonFiniteAudioError, SampleRateError, ChannelError.
    """
    meta = info(path)
    name = str(path)
    start = int(round(start_s * meta.sample_rate))
    stop = None if duration_s is None else start + int(round(duration_s * meta.sample_rate))
    if meta.num_samples == 0:
        raise EmptyAudioError(f"{name}: audio file has no samples")
    try:
        data, sr = sf.read(name, start=start, stop=stop, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioFormatError(f"{name}: could not decode audio ({e}); the file may be truncated or corrupt") from e
    if stop is not None and data.shape[0] < stop - start and stop <= meta.num_samples:
        raise AudioFormatError(
            f"{name}: header says {meta.num_samples} samples but decoding stopped at {start + data.shape[0]}; "
            "the file is truncated"
        )
    if stop is None and data.shape[0] < meta.num_samples - start:
        raise AudioFormatError(
            f"{name}: header says {meta.num_samples} samples but only {start + data.shape[0]} decode; the file is truncated"
        )
    audio = validate_audio(data.T, source=name, min_samples=1)
    if mono is not None:
        audio = _to_mono(audio, mono, name)
    if sample_rate is not None and sr != sample_rate:
        if not resample_ok:
            raise SampleRateError(f"{name}: sample rate is {sr} Hz, expected {sample_rate} Hz; resample the file first")
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    if audio.shape[-1] < min_samples:
        raise EmptyAudioError(f"{name}: audio has {audio.shape[-1]} samples, need at least {min_samples}")
    return audio, int(sr)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16, rounding and clipping (values outside the range saturate)."""
    audio = np.asarray(audio, dtype=np.float32)
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def from_int16(audio: np.ndarray) -> np.ndarray:
    """int16 -> float32 in [-1, 1)."""
    audio = np.asarray(audio)
    if audio.dtype != np.int16:
        raise AudioError(f"from_int16 expects int16 samples, got {audio.dtype}")
    return audio.astype(np.float32) / 32768.0


def fit_length(audio: np.ndarray, num_samples: int) -> np.ndarray:
    """Centre-crop or centre-zero-pad a 1-D signal to exactly ``num_samples`` (same dtype).

    The one crop/pad rule of the toolkit: training data loading and the runtime both call it, so a clip
    is cut the same way in both (Speech Commands clips can be shorter than the model's window).
    """
    audio = np.asarray(audio).reshape(-1)
    if num_samples <= 0:
        raise ValueError(f"fit_length: num_samples must be positive, got {num_samples}")
    n = len(audio)
    if n >= num_samples:
        start = (n - num_samples) // 2
        return audio[start : start + num_samples]
    out = np.zeros(num_samples, audio.dtype)
    left = (num_samples - n) // 2
    out[left : left + n] = audio
    return out


def voiced_frames(rms: np.ndarray, rel: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The voiced-span rule on frame RMS values ``rms (B, n)``: per row, the first and last frame whose RMS
    exceeds ``rel`` of the row's loudest frame's, and whether there is one (a silent row has none). The one
    definition behind :func:`trim_silence` and the training batches' word spans
    (:func:`speechedge.recipes.kws_fewshot.voiced_spans`)."""
    rms = np.asarray(rms, np.float64)
    on = rms > rel * rms.max(axis=1, keepdims=True)
    return on.argmax(1), rms.shape[1] - 1 - on[:, ::-1].argmax(1), on.any(1)


def trim_silence(audio: np.ndarray, *, frame: int = 160, rel: float = 0.05) -> np.ndarray:
    """The voiced part of a word clip: from the first to the last ``frame``-sample frame whose RMS exceeds
    ``rel`` of the loudest frame's (:func:`voiced_frames`; the clip itself when it is silent)."""
    audio = np.asarray(audio).reshape(-1)
    n = len(audio) // frame
    if n == 0:
        return audio
    e = np.sqrt((audio[: n * frame].astype(np.float64).reshape(1, n, frame) ** 2).mean(2))
    first, last, voiced = voiced_frames(e, rel)
    return audio[first[0] * frame: (last[0] + 1) * frame] if voiced[0] else audio


def far_field_copies(audio: np.ndarray, sample_rate: int, *, rt60_s: tuple[float, ...] = (0.3, 0.5, 0.8),
                     drr_db: float = 0.0, seed: int = 0) -> list[np.ndarray]:
    """The clip as heard across a room, once per reverberation time in ``rt60_s``: convolved with a
    statistical room impulse response (the direct sound, then from 5 ms a diffuse tail of Gaussian noise
    decaying by 60 dB in RT60, whose energy is ``drr_db`` below the direct sound's: 0 dB is a talker a few
    metres away in a living room), trimmed to the clip's length and brought back to its RMS.

    Numpy only (the runtime's enrolment uses it; training simulates rooms with pyroomacoustics instead). The
    noise tail comes from ``seed``, so the same clip and seed give the same copies.
    """
    x = np.asarray(audio, np.float32).reshape(-1)
    if not rt60_s:
        return []
    rng = np.random.default_rng(seed)
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    pre = int(0.005 * sample_rate)
    out = []
    for rt60 in rt60_s:
        if not rt60 > 0:
            raise ValueError(f"far_field_copies: rt60_s must be positive, got {rt60}")
        n = int(rt60 * sample_rate)
        t = np.arange(n) / sample_rate
        tail = rng.standard_normal(n) * np.exp(-6.908 * t / rt60)  # 10^(-60/20) = e^-6.908 at t = rt60
        tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail ** 2))
        rir = np.zeros(pre + n)
        rir[0] = 1.0
        rir[pre:] += tail
        size = 1 << int(np.ceil(np.log2(len(x) + len(rir) - 1)))
        y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(rir, size), size)[: len(x)]
        y_rms = float(np.sqrt(np.mean(y ** 2)))
        out.append((y * (rms / y_rms if y_rms > 0 else 1.0)).astype(np.float32))
    return out


_SUBTYPES = {".wav": "PCM_16", ".flac": "PCM_16", ".ogg": "VORBIS"}


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, *, subtype: str | None = None) -> Path:
    """Write ``audio`` to ``path`` atomically (temporary file in the same folder, then rename).

    A reader never sees a half-written file, and an interrupted write leaves no file behind.
    The format follows the suffix (``.wav``, ``.flac``, ``.ogg``); samples are validated first.

    Returns:
        The path written.
    """
    path = Path(path)
    fmt = path.suffix.lower()
    if fmt not in _SUBTYPES:
        raise AudioError(f"{path}: unsupported audio suffix {fmt!r}; use one of {sorted(_SUBTYPES)}")
    audio = validate_audio(audio, source=path)
    data = audio.T if audio.ndim == 2 else audio
    path.parent.mkdir(parents=True, exist_ok=True)
    from speechedge.io import PartialFile

    pf = PartialFile(path)
    try:
        sf.write(pf.tmp, np.clip(data, -1.0, 1.0), sample_rate, subtype=subtype or _SUBTYPES[fmt],
                 format=fmt[1:].upper())
    except BaseException:
        pf.discard()
        raise
    pf.commit()
    return path
