"""LibriSpeech: per-split utterance manifests, streamed from the corpus in bounded memory.

Layout read: ``{corpus}/{split}/{speaker}/{chapter}/{speaker}-{chapter}.trans.txt`` and
``{speaker}-{chapter}-{utt}.flac`` beside it. Only audio headers are read (no decoding), so a 960-hour
corpus is scanned in minutes and memory holds one chapter at a time.

    speechedge prepare librispeech --corpus /data/LibriSpeech --out data/manifests [--splits dev-clean ...]
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ..audio import AudioError, info
from ..io import atomic_write_text
from ..manifest import ManifestWriter, UtteranceRecord

log = logging.getLogger(__name__)

__all__ = ["find_splits", "iter_split", "prepare_librispeech", "manifest_path"]

_SPLIT_RE = re.compile(r"^(train-clean-100|train-clean-360|train-other-500|dev-clean|dev-other|test-clean|test-other)$")


def find_splits(corpus_dir: str | Path) -> list[str]:
    """Split folders present under ``corpus_dir`` (official names first, then any other folder with
    the ``speaker/chapter/*.trans.txt`` structure)."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"{corpus_dir}: LibriSpeech folder not found; pass the folder that holds "
                                "dev-clean/, train-clean-100/, ...")
    out = []
    for d in sorted(p for p in corpus_dir.iterdir() if p.is_dir()):
        if _SPLIT_RE.match(d.name) or next(d.glob("*/*/*.trans.txt"), None) is not None:
            out.append(d.name)
    return [s for s in out if s != "alignments"]


def iter_split(corpus_dir: str | Path, split: str, counts: Counter | None = None) -> Iterator[UtteranceRecord]:
    """Yield the utterances of one split in sorted order; problems are counted in ``counts`` and logged.

    Counted problems: ``missing_audio`` (transcript line without a file), ``bad_audio`` (unreadable
    header), ``bad_transcript_line``, ``bad_utterance_id`` (not ``SPEAKER-CHAPTER-NUMBER``: refused, it would
    name a path outside the corpus), ``audio_without_transcript``.
    """
    counts = counts if counts is not None else Counter()
    split_dir = Path(corpus_dir) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir}: no such split folder")
    for trans in sorted(split_dir.glob("*/*/*.trans.txt")):
        speaker, chapter = trans.parent.parent.name, trans.parent.name
        seen = set()
        for i, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.strip().split(" ", 1)
            if len(parts) != 2 or not parts[0].startswith(f"{speaker}-{chapter}-"):
                counts["bad_transcript_line"] += 1
                log.warning("%s:%d: not 'UTT-ID TRANSCRIPT' for this chapter; skipped", trans, i)
                continue
            # the ID becomes a file name (audio here, clips in LibriWord): only the corpus pattern is accepted,
            # so an ID such as "1-2-x/../../elsewhere" can neither read nor write outside the corpus / output
            if not re.fullmatch(rf"{re.escape(speaker)}-{re.escape(chapter)}-\d{{1,8}}", parts[0]):
                counts["bad_utterance_id"] += 1
                log.warning("%s:%d: utterance ID %r is not SPEAKER-CHAPTER-NUMBER; skipped", trans, i, parts[0][:80])
                continue
            utt_id, text = parts
            seen.add(utt_id)
            audio = trans.parent / f"{utt_id}.flac"
            if not audio.is_file():
                counts["missing_audio"] += 1
                log.warning("%s: listed in %s but missing; skipped", audio, trans.name)
                continue
            try:
                meta = info(audio)
            except AudioError as e:
                counts["bad_audio"] += 1
                log.warning("skipped: %s", e)
                continue
            counts["utterances"] += 1
            yield UtteranceRecord(id=utt_id, path=str(audio.resolve()), speaker=speaker, chapter=chapter, split=split,
                                  sample_rate=meta.sample_rate, num_samples=meta.num_samples,
                                  duration_s=round(meta.duration_s, 4), transcript=text.strip())
        extra = {p.stem for p in trans.parent.glob("*.flac")} - seen
        counts["audio_without_transcript"] += len(extra)


def manifest_path(out_dir: str | Path, split: str) -> Path:
    return Path(out_dir) / f"librispeech_{split}.jsonl.gz"


def prepare_librispeech(corpus_dir: str | Path, out_dir: str | Path, splits: list[str] | None = None) -> dict:
    """Write ``librispeech_{split}.jsonl.gz`` for each split and ``librispeech_stats.json``.

    Idempotent: re-running rewrites the same manifests (atomically). Returns the stats dict.
    """
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    available = find_splits(corpus_dir)
    splits = list(splits or available)
    missing = [s for s in splits if s not in available]
    if missing:
        raise FileNotFoundError(f"{corpus_dir}: split(s) {missing} not found; available: {available}")
    if not splits:
        raise FileNotFoundError(f"{corpus_dir}: no LibriSpeech split folders found")
    stats: dict = {"corpus": str(corpus_dir.resolve()), "splits": {}}
    t0 = time.perf_counter()
    for split in splits:
        counts: Counter = Counter()
        hours = 0.0
        with ManifestWriter(manifest_path(out_dir, split)) as w:
            for rec in iter_split(corpus_dir, split, counts):
                w.write(rec)
                hours += rec.duration_s / 3600
        stats["splits"][split] = {**counts, "hours": round(hours, 4), "speakers": None}
        log.info("%s: %d utterances, %.2f h (%s)", split, counts["utterances"], hours,
                 ", ".join(f"{k}={v}" for k, v in counts.items() if k != "utterances") or "no problems")
    stats["wall_s"] = round(time.perf_counter() - t0, 2)
    for split in splits:  # speakers per split, from the directory names (cheap)
        stats["splits"][split]["speakers"] = sum(1 for p in (corpus_dir / split).iterdir() if p.is_dir())
    atomic_write_text(out_dir / "librispeech_stats.json", json.dumps(stats, indent=2))
    return stats
