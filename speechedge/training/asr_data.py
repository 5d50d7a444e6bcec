"""ASR data: utterances of a LibriSpeech manifest held in memory (int16) with their token ids,
duration-sorted batches, and batches of short aligned word spans (the curriculum that gets CTC off its blank
plateau: see :meth:`UttSet.span_batch`)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from speechedge.audio import from_int16, read_audio, to_int16
from speechedge.ctc import Tokenizer
from speechedge.manifest import UtteranceRecord, read_manifest

log = logging.getLogger(__name__)

__all__ = ["UttSet", "load_utterances"]


@dataclass
class UttSet:
    """Utterances held in memory: int16 audio, normalised transcripts and their token ids."""

    ids: list[str]
    audio: list[np.ndarray]
    texts: list[str]
    tokens: list[list[int]]
    hop_length: int = 160
    sample_rate: int = 16000

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 ``(B, max_samples)`` zero-padded audio and ``(B,)`` lengths."""
        return _pad([self.audio[i] for i in idx])

    def batches(self, batch_frames: int, rng: np.random.Generator | None) -> list[list[int]]:
        """Length-sorted batches of at most ``batch_frames`` padded 10 ms frames, in random order if ``rng``."""
        order = sorted(range(len(self)), key=lambda i: len(self.audio[i]))
        out, cur = [], []
        for i in order:
            frames = len(self.audio[i]) // self.hop_length + 1
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
        pool = [i for i, u in enumerate(self.ids) if words.get(u)]
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


def load_utterances(manifest: str | Path, tokenizer: Tokenizer, *, max_duration_s: float = math.inf,
                    limit: int | None = None, sample_rate: int = 16000, hop_length: int = 160) -> UttSet:
    """Read a LibriSpeech utterance manifest and its audio (at ``sample_rate``); skips and counts long or
    empty ones. ``hop_length`` sets how :meth:`UttSet.batches` counts frames."""
    from tqdm import tqdm

    rows = list(read_manifest(manifest, UtteranceRecord))
    if limit:
        rows = rows[:limit]
    ids, audio, texts, tokens, skipped = [], [], [], [], {"too_long": 0, "no_tokens": 0}
    for r in tqdm(rows, desc=f"loading {Path(manifest).name}", unit="utt", leave=False):
        if r.duration_s > max_duration_s:
            skipped["too_long"] += 1
            continue
        tok = tokenizer.encode(r.transcript)
        if not tok:
            skipped["no_tokens"] += 1
            continue
        a, _ = read_audio(Path(r.path), sample_rate=sample_rate)
        ids.append(r.id)
        audio.append(to_int16(a))
        texts.append(tokenizer.decode(tok))
        tokens.append(tok)
    if any(skipped.values()):
        log.info("%s: skipped %s", manifest, skipped)
    if not ids:
        raise ValueError(f"{manifest}: no usable utterances ({len(rows)} rows, skipped {skipped})")
    return UttSet(ids, audio, texts, tokens, hop_length, sample_rate)


