"""Keyword-spotting data: clips from manifests or Speech Commands-layout folders, held in memory as int16
(augmentation is in :mod:`speechedge.training.augment`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from speechedge.audio import AudioError, fit_length, from_int16, read_audio, to_int16
from speechedge.manifest import ClipRecord, read_manifest

log = logging.getLogger(__name__)

__all__ = ["ClipSet", "load_manifest_clips", "load_folder_clips", "load_noise_bank"]


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
        return torch.from_numpy(from_int16(self.audio[np.asarray(idx)]))

    def label_ids(self, vocab: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
        vocab = vocab or sorted(set(self.labels))
        index = {w: i for i, w in enumerate(vocab)}
        return np.array([index[w] for w in self.labels]), vocab


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
        audio[i] = to_int16(fit_length(x, clip_samples))
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
    # absolute paths: _load_rows joins relative ones onto the folder, which would double a relative folder
    rows = [ClipRecord(id=f"{w}/{p.stem}", word=w, speaker=p.name.split("_")[0], path=str(p.resolve()), split="",
                       label=w)
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
