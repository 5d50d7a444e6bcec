"""CTC forced alignment of a LibriSpeech-layout corpus with a trained ASR model.

``speechedge align --exp-dir work/asr/teacher --librispeech DIR --out DIR/alignments`` writes one
``{speaker}-{chapter}.alignment.txt`` per chapter in the LibriSpeech MFA text format, so that
``speechedge prepare libriword`` can cut keyword clips from a corpus that came without alignments.
The Viterbi search is the Numba kernel :func:`speechedge.kernels.ctc_forced_align`.

Word times: encoder frame ``j`` (40 ms) covers input frames ``4j - 3 .. 4j + 3``; a word spans
``[0.04 * first, 0.04 * (last + 1))`` of its characters' frames. With ``--reference`` the word boundaries
are compared with another alignment of the same corpus (for example the synthesis ground truth).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

from speechedge.audio import AudioError, read_audio
from speechedge.data_prep.alignments import read_alignment_file
from speechedge.data_prep.librispeech import find_splits, iter_split
from speechedge.io import atomic_write_text
from speechedge.kernels.align import AlignmentError, ctc_forced_align
from speechedge.recipes.asr import load_model

log = logging.getLogger(__name__)

__all__ = ["align_corpus", "word_spans", "FRAME_S"]

FRAME_S = 0.04


def word_spans(first: np.ndarray, last: np.ndarray, tokens: list[int], space_id: int) -> list[tuple[int, int]]:
    """Per word: (first frame of its first character, last frame of its last character)."""
    spans, start, end = [], None, None
    for f, la, t in zip(first.tolist(), last.tolist(), tokens):
        if t == space_id:
            if start is not None:
                spans.append((start, end))
            start = None
            continue
        start = f if start is None else start
        end = la
    if start is not None:
        spans.append((start, end))
    return spans


def _mfa_line(utt_id: str, words: list[str], spans: list[tuple[float, float]], duration_s: float) -> str:
    labels, ends, t = [], [], 0.0
    for w, (s, e) in zip(words, spans):
        if s > t + 1e-9:
            labels.append("")
            ends.append(s)
        labels.append(w)
        ends.append(e)
        t = e
    if duration_s > t + 1e-9:
        labels.append("")
        ends.append(duration_s)
    return f'{utt_id} "{",".join(labels)}" "{",".join(f"{x:.3f}" for x in ends)}"'


@torch.no_grad()
def align_corpus(exp_dir: str | Path, librispeech: str | Path, out_dir: str | Path, *, splits: list[str] | None = None,
                 reference: str | Path | None = None, progress: bool = True) -> dict:
    """Align every utterance of ``splits``; returns counts and, with ``reference``, boundary errors (ms)."""
    from tqdm import tqdm

    model, cfg, tok = load_model(exp_dir)
    chunk, left = (cfg.chunk_frames, cfg.left_chunks) if cfg.causal else (0, -1)
    space = tok.tokens.index("|")
    librispeech, out_dir = Path(librispeech), Path(out_dir)
    counts: Counter = Counter()
    errors_ms: list[float] = []
    for split in splits or find_splits(librispeech):
        chapters: dict[tuple[str, str], list[str]] = defaultdict(list)
        rows = list(iter_split(librispeech, split, counts))
        for r in tqdm(rows, desc=f"align {split}", unit="utt", disable=not progress):
            try:
                audio, _ = read_audio(Path(r.path), sample_rate=cfg.frontend.sample_rate)
            except AudioError as e:
                log.warning("%s", e)
                counts["bad_audio"] += 1
                continue
            ids = tok.encode(r.transcript)
            x = torch.from_numpy(audio.astype(np.float32))[None]
            feats, flen = model.features(x, torch.tensor([len(audio)]))
            logits, olen, _ = model(feats, flen, chunk, left)
            lp = logits.log_softmax(-1)[0, : int(olen[0])].numpy()
            try:
                first, last, _ = ctc_forced_align(lp, ids)
            except AlignmentError as e:
                log.warning("%s: cannot align (%s); skipped", r.id, e)
                counts["unaligned"] += 1
                continue
            words = [w for w in r.transcript.upper().split() if tok.encode(w)]
            spans = [(s * FRAME_S, (e + 1) * FRAME_S) for s, e in word_spans(first, last, ids, space)]
            if len(spans) != len(words):
                counts["word_count_mismatch"] += 1
                continue
            chapters[(r.speaker, r.chapter)].append(_mfa_line(r.id, words, spans, r.duration_s))
            counts["aligned"] += 1
            if reference is not None:
                errors_ms.extend(_boundary_errors(Path(reference), split, r, words, spans))
        for (spk, chap), lines in chapters.items():
            atomic_write_text(out_dir / split / spk / chap / f"{spk}-{chap}.alignment.txt", "\n".join(lines) + "\n")
    stats: dict = {"aligned": counts.pop("aligned", 0), **counts}
    if errors_ms:
        signed = np.array(errors_ms)
        e = np.abs(signed)
        stats["boundary_error_ms"] = {"mean": float(e.mean()), "median": float(np.median(e)),
                                      "within_20ms": float((e <= 20).mean()), "within_50ms": float((e <= 50).mean()),
                                      "within_100ms": float((e <= 100).mean()),
                                      "start_bias": float(signed[0::2].mean()), "end_bias": float(signed[1::2].mean()),
                                      "boundaries": int(e.size)}
    log.info("alignment: %s", stats)
    return stats


_ref_cache: dict[Path, dict] = {}


def _boundary_errors(reference: Path, split: str, r, words: list[str], spans) -> list[float]:
    path = reference / split / r.speaker / r.chapter / f"{r.speaker}-{r.chapter}.alignment.txt"
    if path not in _ref_cache:
        _ref_cache.clear()  # one chapter at a time is enough: utterances come sorted
        _ref_cache[path] = read_alignment_file(path) if path.exists() else {}
    ref = _ref_cache[path].get(r.id)
    if not ref or [w.word for w in ref] != words:
        return []
    out = []
    for w, (s, e) in zip(ref, spans):
        out += [1000 * (s - w.start_s), 1000 * (e - w.end_s)]
    return out
