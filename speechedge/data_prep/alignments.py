"""Word alignment readers: the LibriSpeech MFA alignment text format and Montreal Forced Aligner TextGrids.

Text format, one utterance per line::

    84-121123-0000 ",GO,,DO,YOU,HEAR," "0.490,0.890,1.270,1.380,1.490,1.890,2.090"

The quoted word list and the quoted time list have the same number of comma-separated entries; an empty
word is a silence and each time is the *end* of its entry (the first entry starts at 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WordAlignment", "AlignmentFormatError", "parse_alignment_line", "read_alignment_file", "read_textgrid_words"]


class AlignmentFormatError(ValueError):
    """A line or file is not in the expected alignment format; the message names file and line."""


@dataclass(frozen=True)
class WordAlignment:
    """One aligned word: upper-case ``word`` from ``start_s`` to ``end_s`` in its utterance."""

    word: str
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


_LINE = re.compile(r'^(\S+)\s+"([^"]*)"\s+"([^"]*)"\s*$')


def parse_alignment_line(line: str, *, where: str = "<line>") -> tuple[str, list[WordAlignment]]:
    """Parse one line of the text format into ``(utt_id, words)``; silences are dropped.

    Raises:
        AlignmentFormatError: malformed line, entry counts that differ, or times that go backwards.
    """
    m = _LINE.match(line.strip())
    if not m:
        raise AlignmentFormatError(f"{where}: expected 'UTT \",W1,,W2,\" \"t1,t2,...\"', got {line.strip()[:80]!r}")
    utt_id, words_s, times_s = m.groups()
    labels = words_s.split(",")
    try:
        ends = [float(t) for t in times_s.split(",")]
    except ValueError as e:
        raise AlignmentFormatError(f"{where}: {utt_id}: bad time value ({e})") from e
    if len(labels) != len(ends):
        raise AlignmentFormatError(f"{where}: {utt_id}: {len(labels)} words but {len(ends)} times")
    words, start = [], 0.0
    for label, end in zip(labels, ends):
        if end < start - 1e-6:
            raise AlignmentFormatError(f"{where}: {utt_id}: end time {end} before start {start}")
        if label:
            words.append(WordAlignment(label.upper(), start, end))
        start = end
    return utt_id, words


def read_alignment_file(path: str | Path) -> dict[str, list[WordAlignment]]:
    """Read a ``*.alignment.txt`` file into ``{utt_id: words}`` (silences dropped)."""
    path = Path(path)
    out: dict[str, list[WordAlignment]] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            utt_id, words = parse_alignment_line(line, where=f"{path}:{i}")
            out[utt_id] = words
    return out


def read_textgrid_words(path: str | Path, tier: str = "words") -> list[WordAlignment]:
    """Read the word tier of a Praat TextGrid (long "ooTextFile" format, as MFA writes it).

    Empty intervals (and ``sil``/``sp``/``<eps>`` labels) are silences and dropped.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    if "ooTextFile" not in text[:200]:
        raise AlignmentFormatError(f"{path}: not a TextGrid (no 'ooTextFile' header)")
    tiers = re.split(r"\n\s*item \[\d+\]:\s*\n", text)
    for body in tiers[1:]:
        name = re.search(r'name = "([^"]*)"', body)
        if not name or name.group(1) != tier:
            continue
        words = []
        for xmin, xmax, label in re.findall(
                r'intervals \[\d+\]:\s*xmin = ([\d.eE+-]+)\s*xmax = ([\d.eE+-]+)\s*text = "((?:[^"]|"")*)"', body):
            label = label.replace('""', '"').strip()
            try:
                start, end = float(xmin), float(xmax)
            except ValueError:
                raise AlignmentFormatError(f"{path}: bad interval time {xmin!r} / {xmax!r}") from None
            if not (0 <= start <= end < float("inf")):
                raise AlignmentFormatError(f"{path}: interval {label!r} has xmin {xmin} / xmax {xmax} (need "
                                           "0 <= xmin <= xmax)")
            if label and label.lower() not in ("sil", "sp", "spn", "<eps>"):
                words.append(WordAlignment(label.upper(), start, end))
        return words
    raise AlignmentFormatError(f"{path}: no interval tier named {tier!r}")
