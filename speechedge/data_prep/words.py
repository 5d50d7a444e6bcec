"""Word normalisation for keyword datasets: case, apostrophes, inflected forms, stop words.

Form merging is rule-based and conservative: an inflected form is mapped to a base form only when that
base form is itself a word of the corpus (so "walked" -> "walk" needs "walk" to occur). Rules, tried in
order, for words of at least 4 letters:

- plural / 3rd person ``-s``: ``-ies`` -> ``-y`` (cities -> city), ``-s`` -> ``""`` (dogs -> dog),
  ``-es`` -> ``""`` (boxes -> box); never for ``-ss``, ``-us``, ``-is``, ``-ous`` endings (less, thus, this);
- past tense ``-ed``: ``-ied`` -> ``-y`` (tried -> try), ``-ed`` -> ``-e`` (used -> use), ``-ed`` -> ``""``
  (walked -> walk), doubled consonant (stopped -> stop); never for short ``-eed`` words (seed, need).

A few ``-s`` words that are not plurals (news, series, ...) are listed as exceptions. Mistakes remain
possible (a rule cannot know every word); ``--merge-forms off`` disables merging.

Apostrophe forms ("don't", "man's") are kept as words of their own; the key drops nothing else.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["normalize_word", "merge_forms", "STOP_WORDS", "write_word_list"]

# A compact English stop-word list (function words), for --stop-words drop.
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves
""".split())

_WORD = re.compile(r"^[a-z][a-z']*$")


def normalize_word(word: str) -> str:
    """Lower-case, strip surrounding punctuation; returns "" for tokens that are not words."""
    w = word.strip().lower().strip("'\".,;:!?-")
    return w if _WORD.match(w) else ""


# -s words that are not plurals of a shorter corpus word
_NOT_PLURAL = frozenset({"news", "series", "species", "lens", "physics", "politics", "always", "means"})


def _candidates(w: str) -> list[str]:
    out: list[str] = []
    if len(w) < 4 or "'" in w or w in _NOT_PLURAL:
        return out
    if w.endswith("eed") and len(w) < 6:  # seed, feed, need, speed are not past tenses
        return out
    if w.endswith("s") and not w.endswith(("ss", "us", "is", "ous")):
        if w.endswith("ies"):
            out.append(w[:-3] + "y")
        out.append(w[:-1])
        if w.endswith("es"):
            out.append(w[:-2])
    elif w.endswith("ed"):
        if w.endswith("ied"):
            out.append(w[:-3] + "y")
        out.append(w[:-1])
        out.append(w[:-2])
        if len(w) >= 5 and w[-3] == w[-4] and w[-3] not in "aeiouls":
            out.append(w[:-3])
    return [c for c in out if len(c) >= 2]


def merge_forms(vocabulary: Iterable[str]) -> dict[str, str]:
    """Map each inflected form in ``vocabulary`` to its base form (only forms that merge are listed)."""
    vocab = set(vocabulary)
    mapping = {}
    for w in vocab:
        for c in _candidates(w):
            if c in vocab:
                mapping[w] = c
                break
    return mapping  # one step only: a base form is never merged further


def write_word_list(out: str | Path, size: int = 20000, extra: Iterable[str | Path] = ()) -> dict:
    """Write the word list of the streaming ASR lexicon decoder (:mod:`speechedge.runtime.lexicon`): the ``size``
    most frequent English words (wordfreq's list, lower-case letters with at most one inner apostrophe) with their
    frequencies (3 significant digits), then the words of each ``extra`` file (``word [weight]`` per line: a
    given weight replaces the word's; a new word without one gets the weight of the list's median word, a
    listed word without one keeps its own). ``out`` ending in ``.gz`` is gzip-compressed. Atomic; returns counts."""
    import wordfreq

    from speechedge.io import atomic_write_bytes
    from speechedge.runtime.lexicon import parse_word_list

    if size < 1:
        raise ValueError(f"--size must be >= 1, got {size}")
    weights: dict[str, float] = {}
    for w, f in wordfreq.get_frequency_dict("en").items():
        if len(weights) == size:
            break
        if re.fullmatch(r"[a-z]+(?:'[a-z]+)?", w):
            weights[w] = f
    median = sorted(weights.values())[len(weights) // 2]
    added = 0
    for path in extra:
        for word, weight in parse_word_list(path):
            w = normalize_word(word)
            if not w:
                raise ValueError(f"{path}: {word!r} is not a word (letters and apostrophes)")
            added += w not in weights
            weights[w] = weight if weight is not None else weights.get(w, median)
    lines = [(f"# speechedge word list: {len(weights)} words with weights (relative frequencies); "
              "`speechedge prepare words` wrote it")]
    lines += [f"{w} {f:.3g}" for w, f in weights.items()]
    data = ("\n".join(lines) + "\n").encode()
    atomic_write_bytes(out, gzip.compress(data, mtime=0) if str(out).endswith(".gz") else data)
    return {"out": str(out), "words": len(weights), "from_wordfreq": size, "added": added}
