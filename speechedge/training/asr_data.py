"""ASR data: the utterances of a LibriSpeech manifest with their token ids, duration-sorted batches, batches of
short aligned word spans (the curriculum that gets CTC off its blank plateau: :meth:`UttSet.span_batch`), and
the training batches of a run as a dataset that worker processes can fill (:class:`TrainBatches`).

Audio at scale: a manifest's utterances are decoded once (by worker processes) into an utterance store in the
cache folder (one flat int16 file of every utterance's samples back to back plus their offsets, written to a
temporary name and renamed into place) and memory-mapped from then on, as the keyword clips are
(:mod:`speechedge.training.kws_data`). A run holds the store's index (ids, offsets, transcripts, token ids) in
memory, not the audio: the process's own memory stays flat from 1 h to 1,000 h, and the kernel's page cache
keeps what fits (``benchmarks/bench_asr_data.py``). The key is the manifest's path, size and modification time
and the sample rate; ``load_utterances(..., cache=False)`` decodes into memory instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from speechedge.audio import AudioError, from_int16, read_audio, to_int16
from speechedge.ctc import Tokenizer
from speechedge.manifest import UtteranceRecord, read_manifest

log = logging.getLogger(__name__)

__all__ = ["UttSet", "TrainBatches", "BatchStream", "load_utterances", "build_utterance_store"]

STORE_VERSION = 1  # part of the store's key: bump when decoding (reader, resampler) changes what it holds


class Ragged(Sequence):
    """Rows ``flat[starts[i]:ends[i]]`` of a flat array, which may be a memory-mapped file given by path (opened
    lazily in each process, so that pickling to a worker process sends the path, not the data)."""

    def __init__(self, flat: np.ndarray | None, starts: np.ndarray, ends: np.ndarray, *, path: str | None = None,
                 dtype=np.int16) -> None:
        self._flat, self._path, self._dtype = flat, path, np.dtype(dtype)
        self.starts, self.ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)

    @classmethod
    def from_arrays(cls, arrays: list, dtype) -> Ragged:
        n = np.array([len(a) for a in arrays], np.int64)
        ends = np.cumsum(n)
        flat = np.concatenate([np.asarray(a, dtype) for a in arrays]) if arrays else np.zeros(0, dtype)
        return cls(flat, ends - n, ends, dtype=dtype)

    @property
    def flat(self) -> np.ndarray:
        if self._flat is None:
            self._flat = np.memmap(self._path, dtype=self._dtype, mode="r") if os.path.getsize(self._path) \
                else np.zeros(0, self._dtype)
        return self._flat

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.flat[self.starts[i]: self.ends[i]]

    def lengths(self) -> np.ndarray:
        return self.ends - self.starts

    def select(self, idx) -> Ragged:
        idx = np.asarray(idx, np.int64)
        return Ragged(self._flat, self.starts[idx], self.ends[idx], path=self._path, dtype=self._dtype)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self._path is not None:
            state["_flat"] = None  # a worker re-opens the file
        return state


@dataclass
class UttSet:
    """Utterances: int16 audio (in memory or memory-mapped from the utterance store), normalised transcripts and
    their token ids (``audio[i]`` and ``tokens[i]`` are 1-D arrays)."""

    ids: list[str]
    audio: Ragged
    texts: list[str]
    tokens: Ragged
    hop_length: int = 160
    sample_rate: int = 16000

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 ``(B, max_samples)`` zero-padded audio and ``(B,)`` lengths."""
        return _pad([self.audio[i] for i in idx])

    def batches(self, batch_frames: int, rng: np.random.Generator | None) -> list[list[int]]:
        """Length-sorted batches of at most ``batch_frames`` padded 10 ms frames, in random order if ``rng``."""
        lengths = self.audio.lengths()
        out, cur = [], []
        for i in np.argsort(lengths, kind="stable").tolist():
            frames = int(lengths[i]) // self.hop_length + 1
            if cur and frames * (len(cur) + 1) > batch_frames:
                out.append(cur)
                cur = []
            cur.append(i)
        if cur:
            out.append(cur)
        if rng is not None:
            rng.shuffle(out)
        return out

    def span_batch(self, words: dict[str, list], tokenizer: Tokenizer, batch_frames: int, max_words: int,
                   rng: np.random.Generator, margin_s: float = 0.05
                   ) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:
        """A batch of random spans of ``k`` consecutive words cut from aligned utterances, ``k`` drawn in
        1..``max_words`` once per batch (so that the spans of a batch have similar lengths).

        ``words`` maps utterance ids to their word alignments (``WordAlignment``: ``word``, ``start_s``,
        ``end_s``; utterances without one are never drawn). A span is cut ``margin_s`` before its first word
        and after its last; its transcript is the span's words. Spans are drawn while the batch stays within
        ``batch_frames`` padded 10 ms frames (as :meth:`batches` counts). Returns float32 ``(B, max_samples)``
        audio, ``(B,)`` lengths and the token ids.
        """
        if getattr(self, "_pool_of", None) is not words:  # the aligned utterances, once per alignment dict
            self._pool_of, self._pool = words, [i for i, u in enumerate(self.ids) if words.get(u)]
        pool = self._pool
        if not pool:
            raise ValueError("span_batch: no utterance of this set has a word alignment")
        k = int(rng.integers(1, max_words + 1))
        clips, toks, longest = [], [], 0
        while True:
            i = pool[int(rng.integers(len(pool)))]
            ws = words[self.ids[i]]
            s = int(rng.integers(0, max(1, len(ws) - k + 1)))
            span = ws[s: s + k]
            a = self.audio[i][max(0, int((span[0].start_s - margin_s) * self.sample_rate)):
                              int((span[-1].end_s + margin_s) * self.sample_rate)]
            t = tokenizer.encode(" ".join(w.word for w in span))
            if not len(a) or not t:
                continue
            frames = len(a) // self.hop_length + 1
            if clips and (len(clips) + 1) * max(longest, frames) > batch_frames:
                break
            clips.append(a)
            toks.append(t)
            longest = max(longest, frames)
        x, n = _pad(clips)
        return x, n, toks


def _pad(clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """int16 clips -> float32 ``(B, max_samples)`` zero-padded audio and ``(B,)`` lengths."""
    n = [len(a) for a in clips]
    out = np.zeros((len(clips), max(n)), np.float32)
    for r, a in enumerate(clips):
        out[r, : n[r]] = from_int16(a)
    return torch.from_numpy(out), torch.tensor(n)


def _decode_utterance(task: tuple[str, int]) -> np.ndarray | str:
    """int16 samples of one file, or the one-line error (a worker must not die on a bad file)."""
    path, sample_rate = task
    try:
        return to_int16(read_audio(Path(path), sample_rate=sample_rate)[0])
    except AudioError as e:
        return str(e)


def _store_paths(manifest: Path, sample_rate: int) -> tuple[Path, Path, Path]:
    from speechedge.training.kws_data import cache_dir

    st = manifest.stat()
    key = hashlib.sha1(json.dumps({"manifest": str(manifest.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                   "sample_rate": sample_rate, "kind": "utterances", "version": STORE_VERSION},
                                  sort_keys=True).encode()).hexdigest()[:16]
    stem = manifest.name.split(".")[0]
    base = cache_dir() / f"{stem}-{key}"
    return base.with_suffix(".utts.i16"), base.with_suffix(".utts.offsets.npy"), base.with_suffix(".utts.json")


def build_utterance_store(manifest: str | Path, *, sample_rate: int = 16000, workers: int = 0,
                          progress: bool = True) -> tuple[Ragged, list[str], dict]:
    """The memory-mapped audio of every readable utterance of ``manifest`` (built on first use: decoded by
    ``workers`` processes, ``0`` = one per core up to 8, in manifest order, unreadable files skipped and
    counted), their ids, and the store's record (``skipped``: id -> error). Atomic: the samples and offsets are
    renamed into place before the record, whose presence marks a complete store."""
    manifest = Path(manifest)
    data, offsets_path, meta_path = _store_paths(manifest, sample_rate)
    if not (data.exists() and offsets_path.exists() and meta_path.exists()):
        # one builder at a time (the ranks of a torchrun job all ask for it): the others wait, then read it
        from speechedge.io import file_lock

        with file_lock(data.with_suffix(".lock")):
            if not (data.exists() and offsets_path.exists() and meta_path.exists()):
                _build_store(manifest, sample_rate, workers, progress, data, offsets_path, meta_path)
    meta = json.loads(meta_path.read_text())
    ends = np.load(offsets_path)
    if len(ends) != len(meta["ids"]) or (int(ends[-1]) if len(ends) else 0) * 2 != data.stat().st_size:
        raise ValueError(f"{meta_path}: utterance store does not match its samples or offsets; delete "
                         f"{data.parent / data.name.split('.')[0]}.utts.* and re-run")
    starts = np.concatenate([[0], ends])[:-1].astype(np.int64)
    return Ragged(None, starts, ends, path=str(data)), meta["ids"], meta


def _build_store(manifest: Path, sample_rate: int, workers: int, progress: bool, data: Path, offsets_path: Path,
                 meta_path: Path) -> None:
    """Decode ``manifest`` into the store's three files (see :func:`build_utterance_store`), then remove the
    stores of earlier versions of the same manifest."""
    from tqdm import tqdm

    from speechedge.io import PartialFile, atomic_write_text, pool_worker_init, spawn_pool_context

    rows = [(r.id, r.path) for r in read_manifest(manifest, UtteranceRecord)]
    workers = workers or min(8, os.cpu_count() or 1)
    ids, ends, skipped, total = [], [], {}, 0
    tasks = [(p, sample_rate) for _, p in rows]
    samples, offsets = PartialFile(data), PartialFile(offsets_path)
    try:
        with open(samples.tmp, "wb") as f:
            if workers > 1 and len(rows) >= 200:  # a pool's start-up costs more than a small set
                pool = spawn_pool_context().Pool(workers, initializer=pool_worker_init, initargs=(os.getpid(),))
                results = pool.imap(_decode_utterance, tasks, chunksize=8)
            else:
                pool, results = None, map(_decode_utterance, tasks)
            try:
                for (uid, _), a in tqdm(zip(rows, results), total=len(rows), unit="utt", disable=not progress,
                                        desc=f"utterance store {manifest.name}", leave=False):
                    if isinstance(a, str):
                        skipped[uid] = a
                        continue
                    f.write(a.tobytes())
                    total += len(a)
                    ids.append(uid)
                    ends.append(total)
            finally:
                if pool is not None:
                    pool.terminate()
        with open(offsets.tmp, "wb") as f:
            np.save(f, np.array(ends, np.int64))
    except BaseException:
        samples.discard()
        offsets.discard()
        raise
    samples.commit()
    offsets.commit()
    atomic_write_text(meta_path, json.dumps({"manifest": str(manifest.resolve()), "sample_rate": sample_rate,
                                             "ids": ids, "skipped": skipped}))
    if skipped:
        log.warning("%s: %d unreadable utterances skipped (first: %s)", manifest, len(skipped),
                    next(iter(skipped.values())))
    # stores of earlier versions of this manifest (edited, re-prepared) are never read again
    for old in data.parent.glob(f"{manifest.name.split('.')[0]}-*.utts.json"):
        if old != meta_path and json.loads(old.read_text()).get("manifest") == str(manifest.resolve()):
            for f in data.parent.glob(old.name.replace(".utts.json", ".utts.*")):
                f.unlink(missing_ok=True)


def load_utterances(manifest: str | Path, tokenizer: Tokenizer, *, max_duration_s: float = math.inf,
                    limit: int | None = None, sample_rate: int = 16000, hop_length: int = 160,
                    cache: bool = True, workers: int = 0) -> UttSet:
    """Read a LibriSpeech utterance manifest, its transcripts' token ids and its audio (at ``sample_rate``):
    memory-mapped from the utterance store (:func:`build_utterance_store`) unless ``cache=False`` or ``limit``
    (the first ``limit`` rows, decoded into memory). Long, untokenisable and unreadable utterances are skipped
    and counted; a repeated utterance id is refused (``ValueError``). ``hop_length`` sets how
    :meth:`UttSet.batches` counts frames."""
    rows = list(read_manifest(manifest, UtteranceRecord))
    if limit:
        rows = rows[:limit]
    seen: dict[str, int] = {}
    for k, r in enumerate(rows):  # the store is matched by id: a repeated id would pair audio with another text
        if seen.setdefault(r.id, k) != k:
            raise ValueError(f"{manifest}: utterance id {r.id!r} appears twice (rows {seen[r.id] + 1} and {k + 1}); "
                             "ids must be unique: give corpora you merge distinct speaker ids, or drop the repeats")
    ids, texts, tokens, keep = [], [], [], []
    skipped = {"too_long": 0, "no_tokens": 0, "unreadable": 0}
    for k, r in enumerate(rows):
        if r.duration_s > max_duration_s:
            skipped["too_long"] += 1
            continue
        tok = tokenizer.encode(r.transcript)
        if not tok:
            skipped["no_tokens"] += 1
            continue
        ids.append(r.id)
        texts.append(tokenizer.decode(tok))
        tokens.append(tok)
        keep.append(k)
    if cache and not limit:
        store, store_ids, _ = build_utterance_store(manifest, sample_rate=sample_rate, workers=workers)
        where = {u: i for i, u in enumerate(store_ids)}
        sel = [j for j, u in enumerate(ids) if u in where]
        skipped["unreadable"] = len(ids) - len(sel)
        audio = store.select([where[ids[j]] for j in sel])
    else:
        from tqdm import tqdm

        arrays, sel = [], []
        for j, k in enumerate(tqdm(keep, desc=f"loading {Path(manifest).name}", unit="utt", leave=False,
                                   disable=len(keep) < 200)):
            a = _decode_utterance((rows[k].path, sample_rate))
            if isinstance(a, str):
                log.warning("skipped utterance: %s", a)
                continue
            arrays.append(a)
            sel.append(j)
        skipped["unreadable"] = len(ids) - len(sel)
        audio = Ragged.from_arrays(arrays, np.int16)
    ids, texts = [ids[j] for j in sel], [texts[j] for j in sel]
    tokens = Ragged.from_arrays([tokens[j] for j in sel], np.int32)
    if any(skipped.values()):
        log.info("%s: skipped %s", manifest, {k: v for k, v in skipped.items() if v})
    if not ids:
        raise ValueError(f"{manifest}: no usable utterances ({len(rows)} rows, skipped {skipped})")
    return UttSet(ids, audio, texts, tokens, hop_length, sample_rate)


class TrainBatches(torch.utils.data.Dataset):
    """The batch of every training step of a run, as a function of ``(seed, rank, step)`` only (so that worker
    processes can build them ahead and a resumed run gets the batches an uninterrupted one would):
    ``step <= crop_steps``: a word-span batch (:meth:`UttSet.span_batch`, its generator seeded by the step);
    after: the step's batch of the epoch's shuffled duration-sorted batches (:meth:`UttSet.batches`).
    Item: ``(audio (B, samples) float32, lengths (B,), token id lists)``."""

    def __init__(self, data: UttSet, tokenizer: Tokenizer, *, batch_frames: int, seed: int, rank: int = 0,
                 crop_steps: int = 0, words: dict | None = None, crop_max_words: int = 4) -> None:
        self.data, self.tokenizer, self.batch_frames = data, tokenizer, batch_frames
        self.seed, self.rank, self.crop_steps = seed, rank, crop_steps
        self.words, self.crop_max_words = words or {}, crop_max_words
        self.n_batches = len(data.batches(batch_frames, None))
        self._plan: dict[int, list[list[int]]] = {}

    def indices(self, step: int) -> list[int]:
        """The utterances of a whole-utterance step (``step > crop_steps``)."""
        epoch, b = divmod(step - self.crop_steps - 1, self.n_batches)
        if epoch not in self._plan:
            self._plan.clear()
            self._plan[epoch] = self.data.batches(self.batch_frames,
                                                  np.random.default_rng([self.seed, self.rank, epoch]))
        return self._plan[epoch][b]

    def __getitem__(self, step: int):
        if step <= self.crop_steps:
            rng = np.random.default_rng([self.seed, self.rank, step, 1])
            return self.data.span_batch(self.words, self.tokenizer, self.batch_frames, self.crop_max_words, rng)
        idx = self.indices(step)
        x, n = self.data.batch(idx)
        return x, n, [self.data.tokens[i].tolist() for i in idx]


class BatchStream:
    """``next_for(step)``: the batch of ``step`` from :class:`TrainBatches`, built ahead by ``workers`` processes
    (``0``: in this process). A step out of sequence (the first one, or a resume) starts a new stream there."""

    def __init__(self, batches: TrainBatches, last_step: int, workers: int = 0, prefetch: int = 4) -> None:
        self.batches, self.last_step, self.workers, self.prefetch = batches, last_step, workers, prefetch
        self._it, self._next = None, None

    def next_for(self, step: int):
        if self._it is None or step != self._next:
            # its own generator: a DataLoader otherwise draws its base seed from torch's global RNG, which
            # a resumed run restores from the checkpoint (dropout draws from it) and must find untouched
            loader = torch.utils.data.DataLoader(
                self.batches, batch_size=None, sampler=range(step, self.last_step + 1), num_workers=self.workers,
                prefetch_factor=self.prefetch if self.workers else None, persistent_workers=False,
                generator=torch.Generator().manual_seed(step))
            self._it = iter(loader)
        self._next = step + 1
        return next(self._it)
