"""Keyword-spotting data: clips from manifests or Speech Commands-layout folders, held in memory as int16,
and on-the-fly augmentation on batches (time shift, background noise at a random SNR, SpecAugment).

Augmentation runs on whole batches of tensors (on the training device), so a 2-core CPU spends its time
in the model, not in the data pipeline (``speechedge bench kws-data`` measures both).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import AudioError, read_audio
from .manifest import ClipRecord, read_manifest

log = logging.getLogger(__name__)

__all__ = ["ClipSet", "load_manifest_clips", "load_folder_clips", "load_noise_bank", "Augmenter", "spec_augment"]


@dataclass
class ClipSet:
    """``audio`` int16 ``(N, clip_samples)``, ``labels`` strings, ``speakers`` strings."""

    audio: np.ndarray
    labels: list[str]
    speakers: list[str]
    sample_rate: int = 16000

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx) -> torch.Tensor:
        """float32 ``(len(idx), clip_samples)`` in [-1, 1)."""
        return torch.from_numpy(self.audio[np.asarray(idx)].astype(np.float32) / 32768.0)

    def label_ids(self, vocab: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
        vocab = vocab or sorted(set(self.labels))
        index = {w: i for i, w in enumerate(vocab)}
        return np.array([index[w] for w in self.labels]), vocab


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    """Centre-crop or zero-pad to ``n`` samples (Speech Commands clips can be shorter than 1 s)."""
    if len(audio) >= n:
        start = (len(audio) - n) // 2
        return audio[start : start + n]
    out = np.zeros(n, np.float32)
    left = (n - len(audio)) // 2
    out[left : left + len(audio)] = audio
    return out


def _load_rows(rows: list[ClipRecord], base: Path, sample_rate: int, clip_samples: int, what: str) -> ClipSet:
    from tqdm import tqdm

    audio = np.zeros((len(rows), clip_samples), np.int16)
    keep = np.ones(len(rows), bool)
    for i, r in enumerate(tqdm(rows, desc=f"loading {what}", unit="clip", disable=len(rows) < 2000)):
        path = Path(r.path) if Path(r.path).is_absolute() else base / r.path
        try:
            if r.label == "_silence_" and r.source_start_s is not None:
                x, _ = read_audio(path, sample_rate=sample_rate, start_s=r.source_start_s,
                                  duration_s=r.source_end_s - r.source_start_s)
            else:
                x, _ = read_audio(path, sample_rate=sample_rate)
        except AudioError as e:
            keep[i] = False
            log.warning("skipped clip: %s", e)
            continue
        audio[i] = np.clip(np.round(_fit(x, clip_samples) * 32768.0), -32768, 32767).astype(np.int16)
    if not keep.all():
        log.warning("%s: %d unreadable clips skipped", what, int((~keep).sum()))
    return ClipSet(audio[keep], [r.label or r.word for r, k in zip(rows, keep) if k],
                   [r.speaker for r, k in zip(rows, keep) if k], sample_rate)


def load_manifest_clips(manifest: str | Path, *, sample_rate: int = 16000, clip_samples: int = 16000,
                        splits: tuple[str, ...] | None = None) -> ClipSet:
    """Clips of a ``ClipRecord`` manifest; relative paths are relative to the manifest's folder."""
    manifest = Path(manifest)
    rows = [r for r in read_manifest(manifest, ClipRecord) if splits is None or r.split in splits]
    if not rows:
        raise ValueError(f"{manifest}: no clips{f' in splits {splits}' if splits else ''}")
    return _load_rows(rows, manifest.parent, sample_rate, clip_samples, manifest.name)


def load_folder_clips(folder: str | Path, *, sample_rate: int = 16000, clip_samples: int = 16000) -> ClipSet:
    """Every ``{word}/*.wav`` of a Speech Commands-layout folder (folders starting with ``_`` skipped)."""
    folder = Path(folder)
    words = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("_")) \
        if folder.is_dir() else []
    if not words:
        raise FileNotFoundError(f"{folder}: no word folders with .wav clips (expected a Speech Commands layout)")
    rows = [ClipRecord(id=f"{w}/{p.stem}", word=w, speaker=p.name.split("_")[0], path=str(p), split="", label=w)
            for w in words for p in sorted((folder / w).glob("*.wav"))]
    return _load_rows(rows, folder, sample_rate, clip_samples, folder.name)


def load_noise_bank(noise_dir: str | Path | None, sample_rate: int = 16000) -> torch.Tensor | None:
    """Concatenated background noise (float32 1-D tensor), or None when no folder is given."""
    if not noise_dir:
        return None
    files = sorted(Path(noise_dir).glob("*.wav"))
    if not files:
        raise FileNotFoundError(f"{noise_dir}: no .wav noise files")
    return torch.from_numpy(np.concatenate([read_audio(f, sample_rate=sample_rate)[0] for f in files]))


def spec_augment(feats: torch.Tensor, generator: torch.Generator, freq_masks: int = 2, freq_width: int = 7,
                 time_masks: int = 2, time_width: int = 25) -> torch.Tensor:
    """Zero random frequency bands and time spans per example. ``(B, F, T)`` -> same (a new tensor)."""
    b, f, t = feats.shape
    out = feats.clone()
    fidx = torch.arange(f, device=feats.device)[None, :]
    tidx = torch.arange(t, device=feats.device)[None, :]
    for _ in range(freq_masks):
        w = torch.randint(0, freq_width + 1, (b, 1), generator=generator).to(feats.device)
        s = (torch.rand(b, 1, generator=generator).to(feats.device) * (f - w + 1)).long()
        out = out.masked_fill(((fidx >= s) & (fidx < s + w))[:, :, None], 0.0)
    for _ in range(time_masks):
        w = torch.randint(0, time_width + 1, (b, 1), generator=generator).to(feats.device)
        s = (torch.rand(b, 1, generator=generator).to(feats.device) * (t - w + 1)).long()
        out = out.masked_fill(((tidx >= s) & (tidx < s + w))[:, None, :], 0.0)
    return out


class Augmenter:
    """Batched waveform augmentation: random time shift (zero fill) and noise mixing at a random SNR."""

    def __init__(self, noise: torch.Tensor | None, *, shift_samples: int = 1600, noise_prob: float = 0.8,
                 snr_db: tuple[float, float] = (0.0, 20.0), seed: int = 0) -> None:
        self.noise = noise
        self.shift = shift_samples
        self.noise_prob = noise_prob if noise is not None else 0.0
        self.snr_db = snr_db
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape
        g = self.gen
        if self.shift:
            shifts = torch.randint(-self.shift, self.shift + 1, (b,), generator=g)
            idx = torch.arange(n)[None, :] - shifts[:, None]
            valid = (idx >= 0) & (idx < n)
            x = torch.where(valid, x.gather(1, idx.clamp(0, n - 1)), torch.zeros(()))
        if self.noise_prob > 0:
            starts = torch.randint(0, len(self.noise) - n, (b,), generator=g)
            seg = self.noise[starts[:, None] + torch.arange(n)[None, :]]
            snr = torch.empty(b).uniform_(*self.snr_db, generator=g)
            p_sig = x.pow(2).mean(1).clamp_min(1e-8)
            p_noise = seg.pow(2).mean(1).clamp_min(1e-8)
            scale = torch.sqrt(p_sig / (p_noise * 10 ** (snr / 10)))
            use = (torch.rand(b, generator=g) < self.noise_prob).float()
            x = x + (use * scale)[:, None] * seg
        return x
