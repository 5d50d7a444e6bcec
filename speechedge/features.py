"""The feature frontend: one frozen config, the constants it implies, and the torch implementation.

Two implementations compute the same numbers for the same :class:`FrontendConfig` (checked by parity
tests): :class:`speechedge.models.frontend.TorchFrontend` (training, batched, GPU) and the Numba kernels in
:mod:`speechedge.kernels` (devices and demos, no torch). The config is part of every recipe config and
checkpoint, and is written beside every exported model (``frontend.json``).

The math, for a signal ``x`` framed every ``hop_length`` samples:

1. frame ``t`` is ``x[t*hop : t*hop + n_fft]`` (with ``center=True`` the signal is first zero-padded by
   ``n_fft // 2`` on both sides, like ``librosa`` with ``pad_mode="constant"``);
2. multiply by a periodic Hann window of ``win_length`` samples, zero-padded to ``n_fft`` and centred;
3. power spectrum ``|rfft(frame)|**2`` (``n_fft // 2 + 1`` bins);
4. mel energies ``M = fb.T @ power`` with the triangular filterbank of :func:`mel_filterbank`;
5. ``log(M + log_floor)``; with ``n_mfcc`` set, an orthonormal DCT-II of the log-mel keeps ``n_mfcc`` rows.

At inference an exported model may add one step after these (:class:`InputLevel`, its ``level.json``):
quiet input is brought up to the level the model was trained at, in the log-mel domain.

This module is NumPy only.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np

__all__ = ["FrontendConfig", "InputLevel", "LevelTracker", "LEVEL_WINDOW_S", "mel_filterbank", "analysis_window",
           "dct_matrix", "num_frames"]


@dataclass(frozen=True)
class FrontendConfig:
    """Log-mel (optionally MFCC) frontend parameters. Units: samples and Hz.

    Use the presets :meth:`kws` and :meth:`asr`, and :func:`dataclasses.replace` to change a field.
    """

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 480
    hop_length: int = 160
    n_mels: int = 40
    f_min: float = 0.0
    f_max: float | None = None  # None = sample_rate / 2
    mel_scale: Literal["htk", "slaney"] = "htk"
    mel_norm: Literal["slaney"] | None = None
    center: bool = True
    log_floor: float = 1e-6
    n_mfcc: int | None = None

    def __post_init__(self) -> None:
        def bad(field: str, why: str) -> ValueError:
            return ValueError(f"FrontendConfig.{field}={getattr(self, field)!r}: {why}")

        if self.sample_rate <= 0:
            raise bad("sample_rate", "must be positive")
        if self.n_fft <= 0 or self.n_fft % 2:
            raise bad("n_fft", "must be a positive even number")
        if not 0 < self.win_length <= self.n_fft:
            raise bad("win_length", f"must be in 1..n_fft ({self.n_fft})")
        if self.hop_length <= 0:
            raise bad("hop_length", "must be positive")
        if self.n_mels <= 0:
            raise bad("n_mels", "must be positive")
        if not 0 <= self.f_min < self.f_max_hz <= self.sample_rate / 2:
            raise bad("f_max", f"need 0 <= f_min < f_max <= sample_rate/2 ({self.sample_rate / 2})")
        if self.mel_scale not in ("htk", "slaney"):
            raise bad("mel_scale", "must be 'htk' or 'slaney'")
        if self.mel_norm not in (None, "slaney"):
            raise bad("mel_norm", "must be None or 'slaney'")
        if not self.log_floor > 0:
            raise bad("log_floor", "must be > 0 (it keeps log() finite on silence)")
        if self.n_mfcc is not None and not 0 < self.n_mfcc <= self.n_mels:
            raise bad("n_mfcc", f"must be in 1..n_mels ({self.n_mels})")

    @classmethod
    def kws(cls, **overrides) -> FrontendConfig:
        """BC-ResNet reference: 16 kHz, 40 log-mels, n_fft 512, window 480, hop 160 (40 x 101 per second)."""
        return replace(cls(), **overrides)

    @classmethod
    def asr(cls, **overrides) -> FrontendConfig:
        """ASR: 80 log-mels, 25 ms window (400), 10 ms hop (160), n_fft 512."""
        return replace(cls(n_mels=80, win_length=400), **overrides)

    @property
    def f_max_hz(self) -> float:
        return self.sample_rate / 2 if self.f_max is None else float(self.f_max)

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def num_features(self) -> int:
        return self.n_mfcc or self.n_mels

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> FrontendConfig:
        return _from_dict(cls, d)

    def save(self, path) -> None:
        """Write ``frontend.json`` (atomically)."""
        from speechedge.io import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path) -> FrontendConfig:
        """Read a ``frontend.json``; errors name the file."""
        from pathlib import Path

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; is {path.parent} a folder written by `speechedge export`?")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a valid frontend config ({e}); re-run `speechedge export`") from None

    @property
    def frame_s(self) -> float:
        """Seconds between frames (the hop)."""
        return self.hop_length / self.sample_rate


def _from_dict(cls, d):
    """``cls(**d)`` for a JSON/TOML object ``d`` of the dataclass's fields; a ValueError naming the class for
    anything else or for unknown keys."""
    if not isinstance(d, dict):
        raise ValueError(f"a {cls.__name__} is a JSON/TOML object, got {type(d).__name__}")
    unknown = set(d) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}")
    return cls(**d)


def num_frames(num_samples: int, config: FrontendConfig) -> int:
    """Frames produced for a signal of ``num_samples`` samples (0 when it is shorter than a frame)."""
    if config.center:
        return 1 + num_samples // config.hop_length
    return max(0, 1 + (num_samples - config.n_fft) // config.hop_length) if num_samples >= config.n_fft else 0


def _hz_to_mel(f: np.ndarray, scale: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    # Slaney: linear below 1 kHz, logarithmic above (Auditory Toolbox)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray, scale: str) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(config: FrontendConfig) -> np.ndarray:
    """Triangular mel filterbank, shape ``(n_freqs, n_mels)``, float64.

    Centres are equally spaced on the chosen mel scale between ``f_min`` and ``f_max``; each filter rises
    linearly from the previous centre and falls to the next (the same construction as librosa's
    ``filters.mel``). ``mel_norm="slaney"`` scales each filter to unit area (2 / bandwidth).
    """
    fft_freqs = np.linspace(0.0, config.sample_rate / 2, config.n_freqs)
    mel_pts = np.linspace(_hz_to_mel(config.f_min, config.mel_scale), _hz_to_mel(config.f_max_hz, config.mel_scale),
                          config.n_mels + 2)
    hz_pts = _mel_to_hz(mel_pts, config.mel_scale)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))  # (n_mels, n_freqs)
    if config.mel_norm == "slaney":
        weights *= (2.0 / (hz_pts[2:] - hz_pts[:-2]))[:, None]
    return np.ascontiguousarray(weights.T)


def analysis_window(config: FrontendConfig) -> np.ndarray:
    """Periodic Hann window of ``win_length`` zero-padded (centred) to ``n_fft``, float64."""
    n = np.arange(config.win_length)
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / config.win_length)
    out = np.zeros(config.n_fft)
    left = (config.n_fft - config.win_length) // 2
    out[left : left + config.win_length] = win
    return out


def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II matrix, shape ``(n_mfcc, n_mels)`` (``scipy.fft.dct(norm="ortho")`` rows)."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * math.sqrt(2.0 / n_mels)
    m[0] /= math.sqrt(2.0)
    return m


#: the window a streaming host takes the input level's peak over (``InputLevel.window_s`` as exports write it): long
#: enough to hold the gain through the pauses between words and utterances (with the model's own 1-second window
#: the onset of a word after a pause got the gain of its own quiet first chunk), short enough to follow a new talker
LEVEL_WINDOW_S = 2.0


@dataclass(frozen=True)
class InputLevel:
    """Boost-only input level normalization of log-mel features (the runtime's automatic gain control).

    A model trained on synthesized clips has seen one range of levels; a quiet microphone puts speech 20-40 dB
    below it, where the log-mel floor swallows the quieter bands and the network's normalization layers (fixed at
    inference) see shifted inputs: the shipped few-shot model's 5-way accuracy falls from 0.94 to 0.70 at
    -30 dB (0.60 enrolled at 0 dB; ``benchmarks/kws_level.py``). A window's level is its peak frame energy
    ``E = max_t sum_m M[m, t]`` (mel power, ``M = exp(F) - log_floor``); when ``E`` is below
    ``10 ** (target_db / 10)`` every mel power of
    the window is multiplied by ``g = min(10 ** (target_db / 10) / E, 10 ** (max_gain_db / 10))``:
    ``F' = log(g * M + log_floor)``, which equals the features of the audio amplified by ``sqrt(g)`` (up to the
    float32 rounding of ``M`` near the floor). Louder windows are left exactly as they are (``g = 1``): the
    network was trained with gain augmentation above the target, and attenuating would only move them.
    ``target_db`` is the 10th percentile of the held-out clips' peak frame energy (set by ``speechedge export``;
    for streaming ASR 6 dB below it, :data:`speechedge.export.asr.LEVEL_MARGIN_DB`);
    ``max_gain_db`` bounds the gain for windows of near-silence; ``window_s`` is the window a streaming host
    takes the peak over (the last ``window_s`` of frames, the new chunk included, at least the model's window;
    a host that re-runs a window model on every window uses that window's own peak). Log-mel features only (not
    MFCC).

    Only speech sets the gain (:meth:`window_gain`): a window whose peak is less than ``min_range_db`` above its
    floor (the 10th percentile of its frame energies) holds no speech, only steady noise, and keeps the gain the
    host last used (1 at the start of a stream). Without this rule the noise before the first word was brought
    up to the level of speech (up to +40 dB), and models transcribed and detected words in it.
    """

    target_db: float
    max_gain_db: float = 40.0
    window_s: float | None = None
    min_range_db: float = 10.0

    def __post_init__(self) -> None:
        for name in ("target_db", "max_gain_db", "min_range_db"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)):
                raise ValueError(f"InputLevel.{name}={v!r}: must be a finite number")
        if self.max_gain_db < 0:
            raise ValueError(f"InputLevel.max_gain_db={self.max_gain_db!r}: must be >= 0 (the gain only boosts)")
        w = self.window_s
        if w is not None and not (isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w)
                                  and w > 0):
            raise ValueError(f"InputLevel.window_s={w!r}: must be a positive number of seconds or null")

    @staticmethod
    def frame_energy(feats: np.ndarray, log_floor: float) -> np.ndarray:
        """Mel power summed per frame, ``(..., F, T) -> (..., T)`` float64."""
        return np.maximum(np.exp(np.asarray(feats, np.float64)) - log_floor, 0.0).sum(-2)

    @staticmethod
    def peak_db(features, log_floor: float, quantile: float = 0.1) -> float:
        """The ``quantile`` over windows (an iterable of ``(F, T)`` log-mel features) of their peak frame energy, in
        dB: what an export sets ``target_db`` from."""
        peaks = [InputLevel.frame_energy(f, log_floor).max() for f in features]
        return float(10 * np.log10(np.quantile(peaks, quantile)))

    def gain(self, peak_energy: float) -> float:
        """The power gain (>= 1) for a window whose peak frame energy is ``peak_energy``."""
        target, most = 10.0 ** (self.target_db / 10), 10.0 ** (self.max_gain_db / 10)
        if peak_energy >= target:
            return 1.0
        return most if peak_energy <= target / most else target / peak_energy

    def window_gain(self, energies: np.ndarray, held: float = 1.0) -> float:
        """The gain for a window of frame energies (NaN = a frame not seen yet, ignored): :meth:`gain` of its
        peak when the window holds speech (peak at least ``min_range_db`` above its 10th-percentile frame),
        else ``held``, the gain the host used last."""
        e = energies[np.isfinite(energies)]
        if e.size == 0 or e.max() <= 0:
            return held
        peak, floor = float(e.max()), float(np.quantile(e, 0.1))
        if floor > 0 and peak < floor * 10.0 ** (self.min_range_db / 10):
            return held
        return self.gain(peak)

    def apply(self, feats: np.ndarray, log_floor: float, gain: float | None = None) -> np.ndarray:
        """``feats (F, T)`` at power gain ``gain`` (default: this window's own, :meth:`window_gain` with nothing
        held); the same array when the gain is 1."""
        if gain is None:
            gain = self.window_gain(self.frame_energy(feats, log_floor))
        if gain == 1.0:
            return feats
        power = np.maximum(np.exp(np.asarray(feats, np.float64)) - log_floor, 0.0)
        return np.log(gain * power + log_floor).astype(np.float32)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def save(self, path) -> None:
        """Write ``level.json`` (atomically)."""
        from speechedge.io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), sort_keys=True) + "\n")

    @classmethod
    def load(cls, path) -> InputLevel:
        """Read a ``level.json``; errors name the file."""
        from pathlib import Path

        path = Path(path)
        try:
            return _from_dict(cls, json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a valid input level config ({e}); re-run `speechedge export` or delete "
                             "it (no level normalization)") from None


class LevelTracker:
    """An :class:`InputLevel` in a streaming host: the frame energies of its window (NaN until seen) and the gain
    last used, held through windows without speech.

    ``min_frames``: the window is the level's ``window_s`` of frames but never shorter than this (the model's own
    window or chunk).
    """

    def __init__(self, level: InputLevel, frontend: FrontendConfig, min_frames: int) -> None:
        self.level, self.log_floor = level, frontend.log_floor
        self.frames = max(min_frames, round(level.window_s / frontend.frame_s)) if level.window_s else min_frames
        self.reset()

    def reset(self) -> None:
        self.energy = np.full(self.frames, np.nan)
        self.gain = 1.0

    def push(self, feats: np.ndarray) -> np.ndarray:
        """New frames ``(F, T)`` at the gain of the window that ends with them (causal)."""
        self.energy = np.concatenate([self.energy, InputLevel.frame_energy(feats, self.log_floor)])[-self.frames:]
        self.gain = self.level.window_gain(self.energy, self.gain)
        return self.level.apply(feats, self.log_floor, self.gain)

    def window(self, window: np.ndarray, seen: int) -> np.ndarray:
        """A window model's input ``(F, T)`` at the window's own gain, taken from its last ``seen`` frames (the
        others precede the stream)."""
        self.gain = self.level.window_gain(InputLevel.frame_energy(window[:, -seen:], self.log_floor), self.gain)
        return self.level.apply(window, self.log_floor, self.gain)
