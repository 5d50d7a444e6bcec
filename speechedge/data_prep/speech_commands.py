"""Google Speech Commands v2: official split manifests (35- and 12-class) and the few-shot split splitGSC.

    speechedge prepare speech-commands --corpus /data/speech_commands_v0.02 --out data/gsc

Layout read: ``{word}/{hash}_nohash_{n}.wav``, ``validation_list.txt``, ``testing_list.txt``,
``_background_noise_/*.wav``. Files in neither list are training files (the official rule).

Outputs (``ClipRecord`` rows, absolute paths):

- ``gsc35_{train,val,test}.jsonl``: all 35 words, ``label`` = the word.
- ``gsc12_{train,val,test}.jsonl``: the 10 commands (yes, no, up, down, left, right, on, off, stop, go),
  the other 25 words as ``_unknown_``, and ``_silence_`` clips: one-second windows of the background
  noise files (``path`` = the noise file, ``source_start_s`` / ``source_end_s`` = the window; train uses the
  first 80% of each noise file, val the next 10%, test the last 10%, so they never overlap); as many
  silence clips as a twelfth of the split's clips, the usual proportion.
- ``splitgsc_{train,val,test}.jsonl``: the few-shot keyword classes (:data:`SPLIT_GSC`), every clip of each
  class (the classes are disjoint, so the official file split does not matter there); ``splitgsc.json``
  lists the classes and, for each split, its open-set "unknown" pool: the words of the other splits.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from pathlib import Path

from ..audio import AudioError, info
from ..io import atomic_write_text
from ..manifest import ClipRecord, write_manifest

log = logging.getLogger(__name__)

__all__ = ["GSC_V2_WORDS", "GSC12_COMMANDS", "SPLIT_GSC", "prepare_speech_commands", "scan_speech_commands"]

GSC_V2_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
    "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)
GSC12_COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")

# splitGSC: 15 training, 10 validation and 10 test keyword classes. Test = the 10 standard commands
# (what a user would enrol), validation = the ten digits, training = the remaining 15 words.
SPLIT_GSC = {
    "train": ("backward", "bed", "bird", "cat", "dog", "follow", "forward", "happy", "house", "learn", "marvin",
              "sheila", "tree", "visual", "wow"),
    "val": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "test": GSC12_COMMANDS,
}

_NAME = re.compile(r"^([0-9a-f]+)_nohash_(\d+)\.wav$")


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; a Speech Commands v2 folder has validation_list.txt and "
                                "testing_list.txt beside the word folders")
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def scan_speech_commands(corpus_dir: str | Path, *, words=GSC_V2_WORDS, check_audio: bool = True
                         ) -> tuple[list[ClipRecord], Counter]:
    """All keyword clips with their official split; returns ``(rows, problem counts)``.

    Raises:
        FileNotFoundError: the folder, a word folder, or a list file is missing (named in the message).
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"{corpus_dir}: Speech Commands folder not found")
    missing = [w for w in words if not (corpus_dir / w).is_dir()]
    if missing:
        raise FileNotFoundError(f"{corpus_dir}: word folders {missing} are missing; is this Speech Commands v2?")
    val, test = _read_list(corpus_dir / "validation_list.txt"), _read_list(corpus_dir / "testing_list.txt")
    counts: Counter = Counter()
    rows = []
    for word in words:
        for wav in sorted((corpus_dir / word).glob("*.wav")):
            m = _NAME.match(wav.name)
            if not m:
                counts["bad_file_name"] += 1
                log.warning("%s: not {hash}_nohash_{n}.wav; skipped", wav)
                continue
            rel = f"{word}/{wav.name}"
            duration = None
            if check_audio:
                try:
                    duration = round(info(wav).duration_s, 4)
                except AudioError as e:
                    counts["bad_audio"] += 1
                    log.warning("skipped: %s", e)
                    continue
            split = "val" if rel in val else "test" if rel in test else "train"
            counts[split] += 1
            rows.append(ClipRecord(id=f"{word}/{wav.stem}", word=word, speaker=m.group(1), path=str(wav.resolve()),
                                   split=split, label=word, duration_s=duration))
    listed = {r.id + ".wav" for r in rows}
    counts["listed_but_missing"] = len((val | test) - listed)
    return rows, counts


def _silence_rows(corpus_dir: Path, split: str, count: int, counts: Counter | None = None) -> list[ClipRecord]:
    """``count`` one-second windows of the split's part of the noise files; unreadable files are skipped
    and counted (``unreadable_noise_files``)."""
    noise_dir = corpus_dir / "_background_noise_"
    files = sorted(noise_dir.glob("*.wav")) if noise_dir.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{noise_dir}: no background noise files; the 12-class task needs them")
    lo, hi = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}[split]
    spans: list = []
    for f in files:
        try:
            d = info(f).duration_s
        except AudioError as e:
            if counts is not None and split == "train":  # count each file once
                counts["unreadable_noise_files"] += 1
            log.warning("skipped noise file: %s", e)
            continue
        a, b = lo * d, hi * d - 1.0
        if b > a:
            spans.append((f, a, b))
    if not spans:
        raise ValueError(f"{noise_dir}: no usable background noise file (unreadable, or too short to cut "
                         f"one-second {split} silence clips); the 12-class task needs them")
    rows = []
    for i in range(count):  # evenly spread, deterministic windows, cycling over the files
        f, a, b = spans[i % len(spans)]
        k = i // len(spans)
        per_file = max(1, -(-count // len(spans)))
        start = a + (b - a) * (k + 0.5) / per_file
        rows.append(ClipRecord(id=f"_silence_/{f.stem}_{split}_{k:04d}", word="_silence_", speaker="_noise_",
                               path=str(f.resolve()), split=split, label="_silence_", source_id=f.stem,
                               source_start_s=round(start, 4), source_end_s=round(start + 1.0, 4), duration_s=1.0))
    return rows


def prepare_speech_commands(corpus_dir: str | Path, out_dir: str | Path) -> dict:
    """Write the 35-class, 12-class and splitGSC manifests; returns the stats (also ``gsc_stats.json``)."""
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    rows, counts = scan_speech_commands(corpus_dir)
    stats: dict = {"corpus": str(corpus_dir.resolve()), "problems": {k: v for k, v in counts.items()
                                                                    if k not in ("train", "val", "test")}}
    # everything is computed before anything is written: an error leaves the folder as it was
    outputs: dict[str, list[ClipRecord]] = {}
    for split in ("train", "val", "test"):
        part = [r for r in rows if r.split == split]
        outputs[f"gsc35_{split}.jsonl"] = part
        twelve = [r if r.word in GSC12_COMMANDS else
                  ClipRecord(**{**r.__dict__, "label": "_unknown_"}) for r in part]
        twelve += _silence_rows(corpus_dir, split, max(1, len(part) // 11), counts)
        outputs[f"gsc12_{split}.jsonl"] = twelve
        stats[f"gsc35_{split}"] = len(part)
        stats[f"gsc12_{split}"] = dict(Counter(r.label if r.label.startswith("_") else "command" for r in twelve))
    for split, classes in SPLIT_GSC.items():
        part = [r for r in rows if r.word in classes]
        outputs[f"splitgsc_{split}.jsonl"] = part
        stats[f"splitgsc_{split}"] = {"classes": len(classes), "clips": len(part)}
    stats["problems"] = {k: v for k, v in counts.items() if k not in ("train", "val", "test")}
    # all outputs are staged first, then a commit record names them and they are renamed into place; a kill
    # during the renames is rolled forward by the next run, so the folder never keeps new and old mixed
    _finish_commit(out_dir)
    names = [*outputs, "splitgsc.json", "gsc_stats.json"]
    for name, part in outputs.items():
        write_manifest(out_dir / _staged(name), part)
    atomic_write_text(out_dir / _staged("splitgsc.json"), json.dumps({
        "classes": {k: list(v) for k, v in SPLIT_GSC.items()},
        "unknown_pool": {k: sorted(w for s, ws in SPLIT_GSC.items() if s != k for w in ws) for k in SPLIT_GSC},
    }, indent=2))
    atomic_write_text(out_dir / _staged("gsc_stats.json"), json.dumps(stats, indent=2))
    atomic_write_text(out_dir / _COMMIT, json.dumps(names))
    _finish_commit(out_dir)
    log.info("speech commands: %d clips (%s)", len(rows), dict(counts))
    return stats


_COMMIT = ".prepare-speech-commands.commit.json"


def _staged(name: str) -> str:
    return f".{name}.staged"


def _finish_commit(out_dir: Path) -> None:
    """Rename the staged outputs a commit record names into place, then drop the record (a no-op without one:
    then any staged files are from a run killed before its commit, and are left for that run's next write)."""
    record = out_dir / _COMMIT
    if not record.exists():
        return
    for name in json.loads(record.read_text()):
        if (out_dir / _staged(name)).exists():
            os.replace(out_dir / _staged(name), out_dir / name)
    record.unlink()
