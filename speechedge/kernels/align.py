"""CTC forced alignment (Viterbi over the blank-interleaved label sequence), a Numba kernel.

Given frame log-probabilities ``(frames, vocab)`` and a target token sequence, finds the single best CTC
path that spells the target and returns, for every target token, the first and last frame where the path
sits on it. The recursion is the CTC forward algorithm (Graves et al. 2006) with max in place of sum:
state ``s`` of the extended sequence ``[blank, y1, blank, y2, ..., yN, blank]`` can be reached from
``s``, ``s - 1`` and, when ``y_s`` is not blank and differs from ``y_{s-2}``, from ``s - 2``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["ctc_forced_align", "AlignmentError"]


class AlignmentError(ValueError):
    """The targets cannot be aligned to the frames (too few frames for the tokens and required blanks)."""


@nb.njit(cache=True, nogil=True)
def _viterbi(log_probs, ext, back, score):
    n_frames = log_probs.shape[0]
    n_states = ext.shape[0]
    neg = -np.inf
    for s in range(n_states):
        score[s] = neg
    score[0] = log_probs[0, ext[0]]
    if n_states > 1:
        score[1] = log_probs[0, ext[1]]
    prev = np.empty(n_states, dtype=np.float64)
    for t in range(1, n_frames):
        for s in range(n_states):
            prev[s] = score[s]
        for s in range(n_states):
            best = prev[s]
            arg = 0
            if s >= 1 and prev[s - 1] > best:
                best = prev[s - 1]
                arg = 1
            if s >= 2 and ext[s] != 0 and ext[s] != ext[s - 2] and prev[s - 2] > best:
                best = prev[s - 2]
                arg = 2
            back[t, s] = arg
            score[s] = best + log_probs[t, ext[s]] if best > neg else neg


def ctc_forced_align(log_probs: np.ndarray, targets, blank: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Best CTC path through ``targets``.

    Args:
        log_probs: ``(frames, vocab)`` log-probabilities (log-softmax output).
        targets: token ids (no blanks), length ``N``.
    Returns:
        ``(first, last, score)``: ``(N,)`` first and last frame of each target token and the path's
        log-probability.
    Raises:
        AlignmentError: too few frames (``frames < N + repeats``) or no finite path.
    """
    lp = np.ascontiguousarray(log_probs, dtype=np.float32)
    if lp.ndim != 2:
        raise ValueError(f"log_probs must be (frames, vocab), got shape {lp.shape}")
    tg = np.asarray(targets, dtype=np.int64)
    if tg.size == 0:
        raise AlignmentError("no target tokens to align")
    if (tg == blank).any() or tg.min() < 0 or tg.max() >= lp.shape[1]:
        raise ValueError(f"targets must be non-blank ids in [1, {lp.shape[1]}), got {tg.tolist()[:10]}...")
    repeats = int((tg[1:] == tg[:-1]).sum())
    if lp.shape[0] < tg.size + repeats:
        raise AlignmentError(f"{lp.shape[0]} frames cannot hold {tg.size} tokens ({repeats} repeats need blanks "
                             "between them)")
    ext = np.full(2 * tg.size + 1, blank, dtype=np.int64)
    ext[1::2] = tg
    back = np.zeros((lp.shape[0], ext.size), dtype=np.int8)
    score = np.empty(ext.size, dtype=np.float64)
    _viterbi(lp, ext, back, score)
    s = ext.size - 1 if score[-1] >= score[-2] else ext.size - 2
    total = float(score[s])
    if not np.isfinite(total):
        raise AlignmentError("no CTC path spells the targets in these frames")
    first = np.full(tg.size, -1, dtype=np.int64)
    last = np.full(tg.size, -1, dtype=np.int64)
    for t in range(lp.shape[0] - 1, -1, -1):
        if s % 2 == 1:
            k = s // 2
            if last[k] < 0:
                last[k] = t
            first[k] = t
        s -= int(back[t, s])
    return first, last, total
