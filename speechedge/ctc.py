"""Tokenizers, CTC decoding (greedy, prefix beam search) and error rates. NumPy only (no torch).

Token id 0 is always the CTC blank. Decoders take log-probabilities ``(frames, vocab)`` as NumPy arrays.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = ["Tokenizer", "CharTokenizer", "SubwordTokenizer", "make_tokenizer", "tokenizer_from_meta", "greedy_decode", "greedy_tokens", "GreedyCTC", "ids_to_text", "prefix_beam_search", "edit_distance",
           "error_rate", "ErrorCounts", "paired_bootstrap"]

BLANK = "<blk>"


class Tokenizer(Protocol):
    """What the recipes need from a tokenizer (:class:`CharTokenizer`, :class:`SubwordTokenizer`)."""

    tokens: list[str]  # id -> token; tokens[0] is the blank

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def save(self, path: str | Path) -> None: ...

    def meta(self) -> dict: ...  # what a checkpoint stores to rebuild it (:func:`tokenizer_from_meta`)


class CharTokenizer:
    """Characters: blank, space (``|`` in the token list), a-z and the apostrophe. Text is lower-cased;
    characters outside the set are dropped (:meth:`encode`) and counted by :meth:`unknown`."""

    def __init__(self, tokens: list[str] | None = None) -> None:
        self.tokens = tokens or [BLANK, "|", *"abcdefghijklmnopqrstuvwxyz", "'"]
        if self.tokens[0] != BLANK:
            raise ValueError(f"token 0 must be the blank {BLANK!r}, got {self.tokens[0]!r}")
        self._ids = {("|" if t == " " else t): i for i, t in enumerate(self.tokens)}

    def _norm(self, text: str) -> str:
        return " ".join(text.lower().split()).replace(" ", "|")

    def encode(self, text: str) -> list[int]:
        return [self._ids[ch] for ch in self._norm(text) if ch in self._ids]

    def unknown(self, text: str) -> int:
        return sum(ch not in self._ids for ch in self._norm(text))

    def decode(self, ids) -> str:
        return ids_to_text(self.tokens, ids)

    def normalize(self, text: str) -> str:
        """``text`` as this tokenizer sees it: lower case, only its characters, single spaces."""
        return self.decode(self.encode(text))

    def save(self, path: str | Path) -> None:
        _save_token_table(path, self.tokens)

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        rows = [line.rsplit(" ", 1) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        return cls([t for t, _ in sorted(rows, key=lambda r: int(r[1]))])

    def __len__(self) -> int:
        return len(self.tokens)

    def meta(self) -> dict:
        """What a checkpoint stores to rebuild this tokenizer (:func:`tokenizer_from_meta`)."""
        return {"tokens": self.tokens}


class SubwordTokenizer:
    """Subword units (BPE or unigram) from a SentencePiece model, trained on the training transcripts.

    Text is normalised as :class:`CharTokenizer` does (lower case; only a-z, apostrophe and spaces kept), so
    the two tokenizers score the same words. Id 0 is the CTC blank; SentencePiece id ``k`` is our id
    ``k + 1``. Pieces carry ``▁`` at the start of a word, so the token table alone turns ids back into text
    (:func:`ids_to_text`): the runtime needs ``tokens.txt`` only, never SentencePiece. Encoding needs the
    ``sentencepiece`` package (a ``train`` dependency).
    """

    def __init__(self, model_proto: bytes) -> None:
        import sentencepiece as spm

        self.model_proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self.model_proto)
        self.tokens = [BLANK] + [self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size())]
        self._chars = CharTokenizer()

    @classmethod
    def train(cls, texts, vocab_size: int, model_type: str = "bpe") -> SubwordTokenizer:
        """Train on ``texts`` (an iterable of transcripts); ``vocab_size`` counts the blank."""
        import io

        import sentencepiece as spm

        if model_type not in ("bpe", "unigram"):
            raise ValueError(f"model_type must be 'bpe' or 'unigram', got {model_type!r}")
        chars = CharTokenizer()
        lines = [x for x in map(chars.normalize, texts) if x]
        if not lines:
            raise ValueError("SubwordTokenizer.train: no text to train on")
        out = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=out, vocab_size=vocab_size - 1, model_type=model_type,
                character_coverage=1.0, bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0, num_threads=1,
                normalization_rule_name="identity", minloglevel=2)
        except RuntimeError as e:  # e.g. "Vocabulary size too high": name the setting to change
            raise ValueError(f"vocab_size={vocab_size}: SentencePiece cannot build it from {len(lines)} transcripts "
                             f"({str(e).splitlines()[-1]}); choose a smaller vocab_size") from None
        return cls(out.getvalue())

    def encode(self, text: str) -> list[int]:
        norm = self._chars.normalize(text)
        return [i + 1 for i in self._sp.encode(norm)] if norm else []

    def unknown(self, text: str) -> int:
        return self._chars.unknown(text)

    def decode(self, ids) -> str:
        return ids_to_text(self.tokens, ids)

    def save(self, path: str | Path) -> None:
        """The token table (``tokens.txt``, as :class:`CharTokenizer` writes it)."""
        _save_token_table(path, self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def meta(self) -> dict:
        import base64

        return {"tokens": self.tokens, "sentencepiece": base64.b64encode(self.model_proto).decode("ascii")}


def _save_token_table(path: str | Path, tokens: list[str]) -> None:
    """``tokens.txt``: one ``token id`` line per token (what export ships and the runtime reads)."""
    from speechedge.io import atomic_write_text

    atomic_write_text(path, "".join(f"{t} {i}\n" for i, t in enumerate(tokens)))


def make_tokenizer(kind: str, texts=(), vocab_size: int = 256) -> CharTokenizer | SubwordTokenizer:
    """``char`` (no training) or ``bpe`` / ``unigram`` trained on ``texts`` with ``vocab_size`` ids."""
    if kind == "char":
        return CharTokenizer()
    return SubwordTokenizer.train(texts, vocab_size, kind)


def tokenizer_from_meta(meta: dict) -> CharTokenizer | SubwordTokenizer:
    """The tokenizer a checkpoint's ``meta`` describes (:meth:`CharTokenizer.meta`, :meth:`SubwordTokenizer.meta`)."""
    if "sentencepiece" in meta:
        import base64

        return SubwordTokenizer(base64.b64decode(meta["sentencepiece"]))
    return CharTokenizer(meta["tokens"])


def greedy_tokens(log_probs: np.ndarray, prev: int = 0) -> list[tuple[int, int]]:
    """Best path, repeats merged, blanks dropped: ``[(token, frame), ...]`` (frame of first emission).

    ``prev`` is the best token of the frame before ``log_probs[0]`` (0 = blank or start), so a stream decoded
    chunk by chunk (:class:`GreedyCTC`) gives the same tokens as the whole sequence.
    """
    best = np.asarray(log_probs).argmax(-1)
    out = []
    for t, k in enumerate(best.tolist()):
        if k != prev and k != 0:
            out.append((k, t))
        prev = k
    return out


def greedy_decode(log_probs: np.ndarray) -> list[int]:
    """Token ids of the best path (the one greedy CTC decoder; see :func:`greedy_tokens`)."""
    return [k for k, _ in greedy_tokens(log_probs)]


class GreedyCTC:
    """Greedy CTC decoding of a stream, chunk by chunk: :meth:`push` log-probs ``(frames, vocab)``."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.frames: list[int] = []  # stream frame of each emitted token
        self._prev = 0
        self._t = 0

    def push(self, log_probs: np.ndarray) -> list[int]:
        """Returns the token ids this chunk emitted."""
        log_probs = np.asarray(log_probs)
        new = greedy_tokens(log_probs, self._prev)
        if len(log_probs):
            self._prev = int(log_probs[-1].argmax())
        self.ids += [k for k, _ in new]
        self.frames += [self._t + t for _, t in new]
        self._t += len(log_probs)
        return [k for k, _ in new]


def ids_to_text(tokens: list[str], ids) -> str:
    """Token ids -> text: ``|`` (or a leading ``▁`` of a subword) is a word boundary, the blank is dropped.

    The one ids -> text function of the toolkit (tokenizers, export checks and the runtime call it)."""
    text = "".join(tokens[i] for i in ids if i != 0)
    return " ".join(text.replace("|", " ").replace("\u2581", " ").split())


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def prefix_beam_search(log_probs: np.ndarray, beam: int = 8, token_prune: float = -12.0) -> list[int]:
    """CTC prefix beam search without a language model (Hannun et al. 2014).

    Tokens whose frame log-probability is below ``token_prune`` are not extended (speed; the blank and the
    best token always are). Returns the best prefix's token ids.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    beams: dict[tuple, tuple[float, float]] = {(): (0.0, -math.inf)}  # prefix -> (log p ending blank, non-blank)
    for t in range(lp.shape[0]):
        row = lp[t]
        cand = np.flatnonzero(row >= token_prune)
        cand = set(cand.tolist()) | {0, int(row.argmax())}
        nxt: dict[tuple, list[float]] = defaultdict(lambda: [-math.inf, -math.inf])
        for prefix, (pb, pnb) in beams.items():
            total = _logsumexp(pb, pnb)
            for k in cand:
                p = row[k]
                if k == 0:
                    e = nxt[prefix]
                    e[0] = _logsumexp(e[0], total + p)
                    continue
                new = prefix + (k,)
                e = nxt[new]
                if prefix and prefix[-1] == k:
                    e[1] = _logsumexp(e[1], pb + p)  # a repeat needs a blank between
                    same = nxt[prefix]
                    same[1] = _logsumexp(same[1], pnb + p)  # collapse into the same token
                else:
                    e[1] = _logsumexp(e[1], total + p)
        beams = dict(sorted(((k, (v[0], v[1])) for k, v in nxt.items()),
                            key=lambda kv: -_logsumexp(*kv[1]))[:beam])
    return list(max(beams.items(), key=lambda kv: _logsumexp(*kv[1]))[0])


def edit_distance(ref: list, hyp: list) -> int:
    """Levenshtein distance between two sequences (of any hashable items).

    One NumPy pass per reference item, O(len(hyp)) memory: within a row the insertion chain
    ``cur[j] = min(a[j], cur[j - 1] + 1)`` is ``j + cumulative min of (a[k] - k)``, so two 9,000-character
    transcripts (a 10-minute utterance) take a fraction of a second instead of a minute of Python loops.
    """
    codes: dict = {}
    r = np.array([codes.setdefault(x, len(codes)) for x in ref], dtype=np.int64)
    h = np.array([codes.setdefault(x, len(codes)) for x in hyp], dtype=np.int64)
    j = np.arange(len(h) + 1, dtype=np.int64)
    prev = j.copy()
    a = np.empty_like(prev)
    for i, x in enumerate(r, 1):
        a[0] = i
        np.minimum(prev[1:] + 1, prev[:-1] + (h != x), out=a[1:])  # deletion, substitution
        prev = np.minimum.accumulate(a - j) + j  # insertion chain
    return int(prev[-1])


class ErrorCounts:
    """Accumulates word and character errors over utterances (``wer``/``cer`` in percent)."""

    def __init__(self) -> None:
        self.word_err = self.words = self.char_err = self.chars = 0

    def add(self, ref: str, hyp: str) -> None:
        rw, hw = ref.split(), hyp.split()
        self.word_err += edit_distance(rw, hw)
        self.words += len(rw)
        rc, hc = list(" ".join(rw)), list(" ".join(hw))
        self.char_err += edit_distance(rc, hc)
        self.chars += len(rc)

    def __iadd__(self, other: ErrorCounts) -> ErrorCounts:
        self.word_err += other.word_err
        self.words += other.words
        self.char_err += other.char_err
        self.chars += other.chars
        return self

    @property
    def wer(self) -> float:
        return 100.0 * self.word_err / max(1, self.words)

    @property
    def cer(self) -> float:
        return 100.0 * self.char_err / max(1, self.chars)


def error_rate(refs: list[str], hyps: list[str]) -> tuple[float, float]:
    """``(wer, cer)`` in percent over a list of utterances."""
    counts = ErrorCounts()
    for r, h in zip(refs, hyps):
        counts.add(r, h)
    return counts.wer, counts.cer


def paired_bootstrap(a: list[dict], b: list[dict], unit: str = "char", samples: int = 10000, seed: int = 0,
                     by: str = "speaker") -> dict:
    """The difference in error rate (percent) between two systems on the same utterances, ``b - a``, with a 95%
    paired bootstrap interval (Bisani & Ney 2004: resample the test set, recompute both rates on each resample).

    ``a`` and ``b`` are per-utterance rows as ``speechedge eval asr --json`` writes them (``id``, ``ref``,
    ``{unit}_errors``, ``{unit}s``), matched by ``id``. ``by="speaker"`` (default) resamples whole speakers (the
    LibriSpeech id's first field), because one voice's errors go together and resampling its utterances one by
    one would make the interval too narrow; ``by="utterance"`` resamples utterances. The interval says how much
    the difference could move with other test speakers of the same kind, not with another training seed.
    ``p_b_not_better`` is the share of resamples in which B is not better (not a significance level).
    """
    if unit not in ("char", "word") or by not in ("speaker", "utterance"):
        raise ValueError(f"unit must be char or word and by speaker or utterance, got {unit!r}, {by!r}")
    by_id = {r["id"]: r for r in b}
    if len(b) != len(a) or len(by_id) != len(b) or {r["id"] for r in a} != set(by_id) or any(
            r.get("ref") != by_id[r["id"]].get("ref") or r[f"{unit}s"] != by_id[r["id"]][f"{unit}s"] for r in a):
        raise ValueError("the two result lists are not the same utterances (compare runs on the same test set)")
    keys = [r["id"].split("-")[0] if by == "speaker" else r["id"] for r in a]
    groups = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    g = np.array([groups[k] for k in keys])
    ea = np.bincount(g, [r[f"{unit}_errors"] for r in a])
    eb = np.bincount(g, [by_id[r["id"]][f"{unit}_errors"] for r in a])
    n = np.bincount(g, [r[f"{unit}s"] for r in a])
    rng, diff = np.random.default_rng(seed), []
    for start in range(0, samples, 500):  # in batches: bounded memory for large test sets
        idx = rng.integers(0, len(n), (min(500, samples - start), len(n)))
        diff.append(100 * (eb[idx].sum(1) - ea[idx].sum(1)) / n[idx].sum(1))
    diff = np.concatenate(diff)
    lo, hi = np.quantile(diff, [0.025, 0.975])
    return {"a": 100 * ea.sum() / n.sum(), "b": 100 * eb.sum() / n.sum(),
            "diff": 100 * (eb.sum() - ea.sum()) / n.sum(), "ci95": [float(lo), float(hi)],
            "p_b_not_better": float((diff >= 0).mean()), "utterances": len(a), "groups": len(n), "by": by,
            "samples": samples}
