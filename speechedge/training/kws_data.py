"""Keyword-spotting data: clips from manifests or Speech Commands-layout folders as int16 arrays
(augmentation is in :mod:`speechedge.training.augment`).

A manifest's clips are decoded once into a cache file (``.npy``, int16 ``(N, clip_samples)``, written row by
row, then renamed into place) and memory-mapped from then on: a training run touches only the rows of its
batches, so memory stays bounded at 100k+ clips (``benchmarks/bench_kws_data.py``) and a second run skips the
decoding. The cache key is what the clips are made of, not the manifest's name: every selected row's audio
file (absolute path, size, modification time), span, class and speaker, the sample rate and the clip length. Two
manifests that select the same clips (a copy, or a variant written per experiment tag) share one cache file; an
audio file re-synthesized in place gets a new one. The folder is ``$SPEECHEDGE_CACHE`` or
``~/.cache/speechedge/clips``; files are named ``{manifest stem}-{key}`` after the manifest that built them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from speechedge.audio import AudioError, fit_length, from_int16, read_audio, to_int16
from speechedge.manifest import ClipRecord, read_manifest

log = logging.getLogger(__name__)

__all__ = ["ClipSet", "load_manifest_clips", "load_folder_clips", "cache_dir"]


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


def _decode(r: ClipRecord, base: Path, sample_rate: int, clip_samples: int) -> np.ndarray:
    path = Path(r.path) if Path(r.path).is_absolute() else base / r.path
    if r.label == "_silence_" and r.source_start_s is not None:
        x, _ = read_audio(path, sample_rate=sample_rate, start_s=r.source_start_s,
                          duration_s=r.source_end_s - r.source_start_s)
    else:
        x, _ = read_audio(path, sample_rate=sample_rate)
    return to_int16(fit_length(x, clip_samples))


def _load_rows(rows: list[ClipRecord], base: Path, sample_rate: int, clip_samples: int, what: str,
               out: np.ndarray | None = None) -> ClipSet:
    """Decode ``rows`` into ``out`` (or a new array); unreadable clips are skipped, counted and logged, and the
    readable ones are packed at the front (so ``out`` may be a memory-mapped file written row by row)."""
    from tqdm import tqdm

    audio = np.zeros((len(rows), clip_samples), np.int16) if out is None else out
    kept: list[ClipRecord] = []
    for r in tqdm(rows, desc=f"loading {what}", unit="clip", disable=len(rows) < 2000):
        try:
            audio[len(kept)] = _decode(r, base, sample_rate, clip_samples)
        except AudioError as e:
            log.warning("skipped clip: %s", e)
            continue
        kept.append(r)
    if len(kept) < len(rows):
        log.warning("%s: %d unreadable clips skipped", what, len(rows) - len(kept))
    return ClipSet(audio[: len(kept)], [r.label or r.word for r in kept], [r.speaker for r in kept], sample_rate)


def cache_dir() -> Path:
    return Path(os.environ.get("SPEECHEDGE_CACHE") or Path.home() / ".cache" / "speechedge" / "clips")


def _cached(manifest: Path, rows: list[ClipRecord], key_parts: dict, sample_rate: int, clip_samples: int) -> ClipSet:
    """The clips of ``rows`` from the memory-mapped cache, building it first when missing."""
    key = _content_key(rows, manifest.parent, key_parts)
    folder = cache_dir()
    found = sorted(folder.glob(f"*-{key}.json")) if folder.is_dir() else []  # built by any manifest of these rows
    stem = found[0].name[: -len(f"-{key}.json")] if found else manifest.stem
    data, meta = folder / f"{stem}-{key}.npy", folder / f"{stem}-{key}.json"
    if not (data.exists() and meta.exists()):
        from speechedge.io import PartialFile, atomic_write_text, file_lock

        with file_lock(data.with_suffix(".lock")):  # one builder; a concurrent run waits, then reads it
            if not (data.exists() and meta.exists()):
                pf = PartialFile(data)
                try:
                    arr = np.lib.format.open_memmap(pf.tmp, mode="w+", dtype=np.int16, shape=(len(rows), clip_samples))
                    clips = _load_rows(rows, manifest.parent, sample_rate, clip_samples, manifest.name, out=arr)
                    arr.flush()
                    del arr
                except BaseException:
                    pf.discard()
                    raise
                pf.commit()
                atomic_write_text(meta, json.dumps({"n": len(clips), "labels": clips.labels,
                                                    "speakers": clips.speakers}))
    info = json.loads(meta.read_text())
    audio = np.load(data, mmap_mode="r")[: info["n"]]
    return ClipSet(audio, info["labels"], info["speakers"], sample_rate)


def _content_key(rows: list[ClipRecord], base: Path, key_parts: dict) -> str:
    """A hash of what decoding ``rows`` depends on (see the module docstring); a missing file hashes as such,
    so it is skipped and counted again when it reappears."""
    h = hashlib.sha1(json.dumps(key_parts, sort_keys=True).encode())
    stats: dict[str, str] = {}
    for r in rows:
        path = str(Path(r.path) if Path(r.path).is_absolute() else (base / r.path).absolute())
        if path not in stats:
            try:
                st = os.stat(path)
                stats[path] = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                stats[path] = "missing"
        span = (r.source_start_s, r.source_end_s) if r.label == "_silence_" else None  # as _decode reads it
        h.update(f"{path}\0{stats[path]}\0{span}\0{r.label or r.word}\0{r.speaker}\n".encode())
    return h.hexdigest()[:16]


def load_manifest_clips(manifest: str | Path, *, sample_rate: int = 16000, clip_samples: int = 16000,
                        splits: tuple[str, ...] | None = None, cache: bool = True) -> ClipSet:
    """Clips of a ``ClipRecord`` manifest (relative paths are relative to the manifest's folder), memory-mapped
    from the clip cache (built on first use; ``cache=False`` decodes into memory instead)."""
    manifest = Path(manifest)
    rows = [r for r in read_manifest(manifest, ClipRecord) if splits is None or r.split in splits]
    if not rows:
        raise ValueError(f"{manifest}: no clips{f' in splits {splits}' if splits else ''}")
    if not cache:
        return _load_rows(rows, manifest.parent, sample_rate, clip_samples, manifest.name)
    return _cached(manifest, rows, {"splits": list(splits) if splits else None, "sample_rate": sample_rate,
                                    "clip_samples": clip_samples}, sample_rate, clip_samples)


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
