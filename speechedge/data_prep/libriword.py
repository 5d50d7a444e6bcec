"""LibriWord: a keyword-like dataset cut automatically from read speech with word alignments.

The reference setup is the 1,000 most frequent LibriSpeech words x 300 one-second 16 kHz clips each, cut
around Montreal Forced Aligner word alignments, with near-duplicate forms (plurals, past tenses) merged.

    speechedge prepare libriword --librispeech /data/LibriSpeech --alignments /data/librispeech_alignments \\
        --out data/libriword [--num-words 1000] [--clips-per-word 300] [--workers 2]

Steps:

1. **Scan** the corpus (audio headers only) and the alignments (``*.alignment.txt`` in the LibriSpeech
   MFA text format, or ``{utt}.TextGrid`` files from Montreal Forced Aligner). Each alignment is checked
   against its transcript; mismatches and utterances without an alignment are counted in ``stats.json``
   and never used.
2. **Count** usable occurrences per word key: normalised (:func:`normalize_word`), inflected forms merged
   (:func:`merge_forms`), at least ``min_chars`` letters, aligned duration within
   ``[min_word_seconds, max_word_seconds]``, stop words dropped if asked.
3. **Select** the top ``num_words`` keys by count among those with at least ``clips_per_word`` usable
   occurrences, and for each key ``clips_per_word`` occurrences with speaker diversity: speakers are visited
   round-robin in a seeded order, each speaker's occurrences in a seeded order, at most
   ``max_clips_per_speaker`` per speaker. Everything is decided by hashes of ``seed`` and names, so the
   result does not depend on file order, workers or shards.
4. **Cut** a ``clip_seconds`` window centred on the word from the source audio (real surrounding audio;
   zeros are padded only where the window runs past the start or end of the utterance), resampled to
   ``sample_rate`` through :mod:`speechedge.audio`, written atomically as FLAC to
   ``clips/{word}/{clip_id}.flac``. Clips already on disk are reused, so an interrupted run resumes and
   a re-run gives the same manifest. A source that cannot be decoded is skipped, logged and counted.
5. **Write** ``manifest.jsonl`` (:class:`~speechedge.manifest.ClipRecord` rows), ``stats.json`` and
   ``stats.png``. Speakers are split into train / val (``val_fraction`` of the speakers, by hash).

Memory is bounded by the selection (``num_words x speakers x max_clips_per_speaker`` candidates) and the
utterance table, not by the number of word occurrences in the corpus.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import os
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..audio import AudioError, read_audio, write_audio
from ..io import atomic_savefig, atomic_write_text
from ..manifest import ClipRecord, ManifestWriter, read_manifest
from .alignments import AlignmentFormatError, WordAlignment, read_alignment_file, read_textgrid_words
from .librispeech import find_splits, iter_split
from .words import STOP_WORDS, merge_forms, normalize_word

log = logging.getLogger(__name__)

__all__ = ["LibriWordConfig", "build_libriword", "merge_shards", "load_alignments", "clip_window"]


@dataclass(frozen=True)
class LibriWordConfig:
    """Options of the builder (CLI flags in brackets)."""

    splits: tuple[str, ...] | None = None  # [--splits] None = all found
    num_words: int = 1000  # [--num-words]
    clips_per_word: int = 300  # [--clips-per-word]
    clip_seconds: float = 1.0  # [--clip-seconds]
    min_word_seconds: float = 0.2  # [--min-word-seconds]
    max_word_seconds: float | None = None  # [--max-word-seconds] None = clip_seconds
    min_chars: int = 3  # [--min-chars]
    merge_forms: bool = True  # [--merge-forms on|off]
    stop_words: str = "keep"  # [--stop-words keep|drop]
    max_clips_per_speaker: int = 10  # [--max-clips-per-speaker] per word
    val_fraction: float = 0.1  # [--val-fraction] of the speakers
    sample_rate: int = 16000
    seed: int = 0  # [--seed]

    def __post_init__(self) -> None:
        checks = [
            (self.num_words >= 1, "num_words", "must be >= 1"),
            (self.clips_per_word >= 1, "clips_per_word", "must be >= 1"),
            (self.clip_seconds > 0, "clip_seconds", "must be > 0"),
            (0 <= self.min_word_seconds < self.max_word_s, "min_word_seconds",
             "must be >= 0 and below max_word_seconds"),
            (self.max_word_s <= self.clip_seconds, "max_word_seconds", "cannot exceed clip_seconds"),
            (self.stop_words in ("keep", "drop"), "stop_words", "must be 'keep' or 'drop'"),
            (self.max_clips_per_speaker >= 1, "max_clips_per_speaker", "must be >= 1"),
            (0 <= self.val_fraction < 1, "val_fraction", "must be in [0, 1)"),
            (self.min_chars >= 1, "min_chars", "must be >= 1"),
        ]
        for ok, name, why in checks:
            if not ok:
                raise ValueError(f"libriword option {name}={getattr(self, name)!r}: {why}")

    @property
    def max_word_s(self) -> float:
        return self.clip_seconds if self.max_word_seconds is None else self.max_word_seconds


def _hash(*parts) -> int:
    return int.from_bytes(hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


def clip_window(word_start_s: float, word_end_s: float, source_duration_s: float, clip_seconds: float,
                sample_rate: int) -> dict:
    """Sample-exact window of ``clip_seconds`` centred on a word.

    Returns the source span (clipped to the utterance), the zero padding on each side (samples), and the
    word's span inside the clip (seconds from the clip's first sample).
    """
    clip_n = int(round(clip_seconds * sample_rate))
    src_n = int(round(source_duration_s * sample_rate))
    centre = int(round((word_start_s + word_end_s) / 2 * sample_rate))
    start = centre - clip_n // 2
    end = start + clip_n
    return {
        "src_start": max(0, start), "src_end": min(src_n, end),
        "pad_left": max(0, -start), "pad_right": max(0, end - src_n),
        "word_start_s": round(word_start_s - start / sample_rate, 4),
        "word_end_s": round(word_end_s - start / sample_rate, 4),
    }


def load_alignments(alignments_dir: str | Path, counts: Counter) -> dict[str, list[WordAlignment]]:
    """All alignments under ``alignments_dir``: ``*.alignment.txt`` files and ``{utt}.TextGrid`` files.

    Malformed files or lines are counted (``bad_alignment_files``) and logged, never fatal.
    """
    alignments_dir = Path(alignments_dir)
    if not alignments_dir.is_dir():
        raise FileNotFoundError(f"{alignments_dir}: alignments folder not found")
    out: dict[str, list[WordAlignment]] = {}
    for path in sorted(alignments_dir.rglob("*")):
        try:
            if path.name.endswith(".alignment.txt"):
                out.update(read_alignment_file(path))
            elif path.suffix.lower() == ".textgrid":
                out[path.stem] = read_textgrid_words(path)
        except (AlignmentFormatError, UnicodeDecodeError) as e:
            counts["bad_alignment_files"] += 1
            log.warning("skipped alignment file: %s", e)
    return out


@dataclass
class _Scan:
    utts: dict = field(default_factory=dict)  # utt_id -> (path, speaker, duration_s)
    words: dict = field(default_factory=dict)  # utt_id -> list[(key, start, end, word index)] of usable words
    key_counts: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)


def _scan(librispeech_dir: Path, alignments: dict, cfg: LibriWordConfig, splits: list[str]) -> _Scan:
    scan = _Scan()
    raw: dict[str, list[tuple[str, float, float]]] = {}
    for split in splits:
        for utt in iter_split(librispeech_dir, split, scan.counts):
            words = alignments.get(utt.id)
            if words is None:
                scan.counts["missing_alignment"] += 1
                continue
            if [w.word.upper() for w in words] != utt.transcript.upper().split():
                scan.counts["alignment_transcript_mismatch"] += 1
                log.debug("%s: alignment words differ from the transcript; utterance not used", utt.id)
                continue
            scan.counts["aligned_utterances"] += 1
            scan.utts[utt.id] = (utt.path, utt.speaker, utt.duration_s)
            raw[utt.id] = [(normalize_word(w.word), w.start_s, w.end_s) for w in words]
    vocab = {w for ws in raw.values() for w, _, _ in ws if w}
    forms = merge_forms(vocab) if cfg.merge_forms else {}
    scan.counts["merged_forms"] = len(forms)
    for utt_id, ws in raw.items():
        usable = []  # (key, start, end, index of the word in the utterance)
        for index, (w, s, e) in enumerate(ws):
            scan.counts["word_occurrences"] += 1
            key = forms.get(w, w)
            if not key or len(key.replace("'", "")) < cfg.min_chars:
                scan.counts["dropped_short_word"] += 1
            elif cfg.stop_words == "drop" and key in STOP_WORDS:
                scan.counts["dropped_stop_word"] += 1
            elif not cfg.min_word_seconds <= e - s <= cfg.max_word_s:
                scan.counts["dropped_duration"] += 1
            elif e > scan.utts[utt_id][2] + 0.01:  # the alignment says more audio than the file holds
                scan.counts["dropped_word_beyond_audio"] += 1
            else:
                usable.append((key, s, e, index))
                scan.key_counts[key] += 1
        scan.words[utt_id] = usable
    return scan


def _select(scan: _Scan, cfg: LibriWordConfig) -> dict[str, list[tuple[str, int, float, float]]]:
    """Keys and their occurrences ``(utt_id, word_index, start, end)`` in clip order."""
    eligible = [(k, c) for k, c in scan.key_counts.items() if c >= cfg.clips_per_word]
    eligible.sort(key=lambda kc: (-kc[1], kc[0]))
    keys = [k for k, _ in eligible[: cfg.num_words]]
    wanted = set(keys)
    # per (key, speaker): the max_clips_per_speaker occurrences with the smallest seeded priority
    heaps: dict[tuple[str, str], list] = defaultdict(list)
    for utt_id in sorted(scan.words):
        speaker = scan.utts[utt_id][1]
        for key, s, e, i in scan.words[utt_id]:
            if key not in wanted:
                continue
            h = heaps[(key, speaker)]
            item = (-_hash(cfg.seed, "occ", utt_id, i), utt_id, i, s, e)
            if len(h) < cfg.max_clips_per_speaker:
                heapq.heappush(h, item)
            elif item > h[0]:
                heapq.heapreplace(h, item)
    by_key: dict[str, list] = defaultdict(list)
    for (key, speaker), h in heaps.items():
        ranked = sorted(h, reverse=True)  # smallest priority first
        spk_priority = _hash(cfg.seed, "spk", key, speaker)
        for rank, (_, utt_id, i, s, e) in enumerate(ranked):
            by_key[key].append(((rank, spk_priority), (utt_id, i, s, e)))
    selected = {}
    for key in keys:
        chosen = sorted(by_key[key])[: cfg.clips_per_word]
        selected[key] = [occ for _, occ in chosen]
    return selected


def _is_val(speaker: str, cfg: LibriWordConfig) -> bool:
    return (_hash(cfg.seed, "split", speaker) % 10_000) < cfg.val_fraction * 10_000


def _cut_source(job: tuple) -> tuple[str, int, int, str]:
    """Worker: cut every clip of one source utterance. Returns (source, written, reused, error)."""
    source_path, sample_rate, clip_seconds, clips = job
    todo = [c for c in clips if not Path(c["out"]).is_file()]
    if not todo:
        return source_path, 0, len(clips), ""
    try:
        audio, _ = read_audio(source_path, sample_rate=sample_rate)
    except AudioError as e:
        return source_path, 0, len(clips) - len(todo), str(e)
    clip_n = int(round(clip_seconds * sample_rate))
    short = max(0, max(c["window"]["src_end"] for c in todo) - len(audio))
    if short > sample_rate // 100:  # decoded audio shorter than the header by more than 10 ms
        return source_path, 0, len(clips) - len(todo), (
            f"{source_path}: decoded {len(audio)} samples, {short} fewer than its header says; re-encode the file")
    for c in todo:
        w = c["window"]
        seg = audio[w["src_start"] : w["src_end"]]  # resampling can leave the last sample or so out: zeros
        clip = np.concatenate([np.zeros(w["pad_left"], np.float32), seg,
                               np.zeros(clip_n - w["pad_left"] - len(seg), np.float32)])
        assert len(clip) == clip_n, (source_path, w)
        write_audio(c["out"], clip, sample_rate)
    return source_path, len(todo), len(clips) - len(todo), ""


def build_libriword(
    librispeech_dir: str | Path,
    alignments_dir: str | Path,
    out_dir: str | Path,
    config: LibriWordConfig = LibriWordConfig(),
    *,
    workers: int | None = None,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> dict:
    """Build LibriWord (or one shard of it) under ``out_dir``; returns the stats.

    With ``shard=(i, n)`` only the source utterances whose hash falls in shard ``i`` are cut, and the rows
    go to ``manifest.shard-{i}-of-{n}.jsonl``; run :func:`merge_shards` after all shards. The default
    single shard merges by itself.
    """
    from tqdm import tqdm

    i_shard, n_shards = shard
    if not (n_shards >= 1 and 0 <= i_shard < n_shards):
        raise ValueError(f"shard must be I/N with 0 <= I < N, got {i_shard}/{n_shards}")
    librispeech_dir, out_dir = Path(librispeech_dir), Path(out_dir)
    cfg = config
    t0 = time.perf_counter()
    splits = list(cfg.splits or find_splits(librispeech_dir))
    available = find_splits(librispeech_dir)
    if not splits or any(s not in available for s in splits):
        raise FileNotFoundError(f"{librispeech_dir}: splits {splits} not all found (available: {available})")
    counts: Counter = Counter()
    alignments = load_alignments(alignments_dir, counts)
    scan = _scan(librispeech_dir, alignments, cfg, splits)
    scan.counts.update(counts)
    selected = _select(scan, cfg)
    if not selected:
        best = scan.key_counts.most_common(1)
        raise ValueError(
            f"no word has {cfg.clips_per_word} usable occurrences (most frequent: {best}); lower --clips-per-word "
            "or add data")

    rows: list[ClipRecord] = []
    jobs: dict[str, list] = defaultdict(list)
    for key in sorted(selected):
        for utt_id, i, s, e in selected[key]:
            path, speaker, duration = scan.utts[utt_id]
            if _hash("shard", utt_id) % n_shards != i_shard:
                continue
            w = clip_window(s, e, duration, cfg.clip_seconds, cfg.sample_rate)
            clip_id = f"{utt_id}_{i:03d}"
            rel = f"clips/{key}/{clip_id}.flac"
            rows.append(ClipRecord(
                id=clip_id, word=key, speaker=speaker, path=rel, split="val" if _is_val(speaker, cfg) else "train",
                label=key, source_id=utt_id, source_start_s=round(w["src_start"] / cfg.sample_rate, 4),
                source_end_s=round(w["src_end"] / cfg.sample_rate, 4), word_start_s=w["word_start_s"],
                word_end_s=w["word_end_s"], duration_s=cfg.clip_seconds))
            jobs[path].append({"out": str(out_dir / rel), "window": w, "id": clip_id})

    workers = workers or os.cpu_count() or 1
    job_list = [(p, cfg.sample_rate, cfg.clip_seconds, jobs[p]) for p in sorted(jobs)]
    written = reused = 0
    failed: dict[str, str] = {}
    t_cut = time.perf_counter()
    bar = tqdm(total=sum(len(j[3]) for j in job_list), unit="clip", desc="libriword clips", disable=not progress)
    if workers > 1 and len(job_list) > 1:
        from speechedge.io import pool_worker_init, spawn_pool_context

        with spawn_pool_context().Pool(workers, initializer=pool_worker_init, initargs=(os.getpid(),)) as pool:
            for src, n_new, n_old, err in pool.imap_unordered(_cut_source, job_list, chunksize=4):
                written, reused = written + n_new, reused + n_old
                bar.update(len(jobs[src]))
                if err:
                    failed[src] = err
    else:
        for job in job_list:
            src, n_new, n_old, err = _cut_source(job)
            written, reused = written + n_new, reused + n_old
            bar.update(len(jobs[src]))
            if err:
                failed[src] = err
    bar.close()
    cut_s = time.perf_counter() - t_cut
    for src, err in sorted(failed.items()):
        log.warning("skipped source (its clips are left out): %s", err)
    failed_ids = {c["id"] for src in failed for c in jobs[src]}
    rows = [r for r in rows if r.id not in failed_ids]
    rows.sort(key=lambda r: (r.word, r.id))

    shard_manifest = out_dir / f"manifest.shard-{i_shard}-of-{n_shards}.jsonl"
    with ManifestWriter(shard_manifest) as w:
        for r in rows:
            w.write(r)
    shard_stats = {
        "shard": f"{i_shard}/{n_shards}", "config": asdict(cfg), "corpus": {**scan.counts},
        "eligible_words": sum(1 for c in scan.key_counts.values() if c >= cfg.clips_per_word),
        "selected_words": len(selected),
        "usable_occurrences": {k: scan.key_counts[k] for k in sorted(selected, key=lambda k: -scan.key_counts[k])},
        "clips_written": written, "clips_reused": reused,
        "bad_sources": len(failed), "clips_lost_to_bad_sources": len(failed_ids),
        "bad_source_files": sorted(failed), "cut_wall_s": round(cut_s, 2),
        "clips_per_s": round(written / cut_s, 1) if written and cut_s > 0 else None, "workers": workers,
        "wall_s": round(time.perf_counter() - t0, 2),
    }
    atomic_write_text(out_dir / f"stats.shard-{i_shard}-of-{n_shards}.json", json.dumps(shard_stats, indent=2))
    log.info("libriword shard %d/%d: %d clips (%d new, %d reused), %d bad sources", i_shard, n_shards, len(rows),
             written, reused, len(failed))
    if n_shards == 1:
        return merge_shards(out_dir)
    return shard_stats


def merge_shards(out_dir: str | Path) -> dict:
    """Combine ``manifest.shard-*`` files into ``manifest.jsonl``, ``stats.json`` and ``stats.png``."""
    out_dir = Path(out_dir)
    shard_files = sorted(out_dir.glob("manifest.shard-*-of-*.jsonl"))
    if not shard_files:
        raise FileNotFoundError(f"{out_dir}: no manifest.shard-*-of-*.jsonl files to merge")
    ns = {p.name.rsplit("-of-", 1)[1].split(".")[0] for p in shard_files}
    if len(ns) != 1:
        raise ValueError(f"{out_dir}: shard files from different shard counts {sorted(ns)}; remove the stale ones")
    n = int(ns.pop())
    have = {int(p.name.split("shard-")[1].split("-of-")[0]) for p in shard_files}
    if have != set(range(n)):
        raise ValueError(f"{out_dir}: shards {sorted(set(range(n)) - have)} of {n} are missing; run them first")
    rows = sorted((r for p in shard_files for r in read_manifest(p, ClipRecord)), key=lambda r: (r.word, r.id))
    with ManifestWriter(out_dir / "manifest.jsonl") as w:
        for r in rows:
            w.write(r)
    shard_stats = [json.loads((out_dir / f"stats.shard-{i}-of-{n}.json").read_text()) for i in range(n)]
    per_word = Counter(r.word for r in rows)
    splits = Counter(r.split for r in rows)
    durations = [r.word_end_s - r.word_start_s for r in rows]
    stats = {
        "clips": len(rows), "words": len(per_word), "splits": dict(splits),
        "speakers": {s: len({r.speaker for r in rows if r.split == s}) for s in splits},
        "clips_per_word": {"min": min(per_word.values()), "max": max(per_word.values())},
        "word_duration_s": {"mean": round(float(np.mean(durations)), 3), "p5": round(float(np.percentile(durations, 5)), 3),
                            "p95": round(float(np.percentile(durations, 95)), 3)},
        "bad_sources": sum(s["bad_sources"] for s in shard_stats),
        "bad_source_files": sorted(f for s in shard_stats for f in s["bad_source_files"]),
        "clips_written": sum(s["clips_written"] for s in shard_stats),
        "clips_reused": sum(s["clips_reused"] for s in shard_stats),
        "corpus": shard_stats[0]["corpus"], "config": shard_stats[0]["config"],
        "eligible_words": shard_stats[0]["eligible_words"],
        "top_words": per_word.most_common(20),
        "usable_occurrences": shard_stats[0]["usable_occurrences"],
    }
    atomic_write_text(out_dir / "stats.json", json.dumps(stats, indent=2))
    _plot(out_dir / "stats.png", stats["usable_occurrences"], per_word, durations)
    return stats


def _plot(path: Path, occurrences: dict[str, int], per_word: Counter, durations: list[float]) -> None:
    """Left: usable occurrences in the corpus of the selected words (the frequency curve the selection cut
    from) with the clips kept; right: aligned word durations of the clips."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    words = list(occurrences)[:40]
    a.bar(range(len(words)), [occurrences[w] for w in words], label="usable occurrences in the corpus")
    a.bar(range(len(words)), [per_word[w] for w in words], label="clips kept")
    a.set_yscale("log")
    a.set_xticks(range(len(words)), words, rotation=90, fontsize=7)
    a.set_ylabel("count (log)")
    a.legend(fontsize=8)
    a.set_title(f"selected words ({len(occurrences)}, most frequent {len(words)} shown)")
    b.hist(durations, bins=40)
    b.set_xlabel("aligned word duration (s)")
    b.set_ylabel("clips")
    b.set_title("word durations of the clips")
    fig.tight_layout()
    atomic_savefig(fig, path)
