"""Long-form evaluation of the streaming keyword detector: false rejects vs false alarms per hour, latency, DET.

Stream folders (what ``--positives`` / ``--negatives`` take, and what :func:`synth_streams` writes): audio
files (WAV/FLAC, 16 kHz) of any length; a positive file ``x.wav`` has ``x.json`` beside it::

    {"events": [{"keyword": "pineapple", "start_s": 12.31, "end_s": 12.95}, ...]}

Negative folders hold recordings without the keywords (speech, noise, music; any long recording works).

The detector runs once per stream at its normal settings and records the smoothed keyword scores of every
window; the detections at each threshold then follow from the same firing rule as :class:`StreamingKWS`
(:func:`fire`), so the whole DET curve costs one pass. A detection is a hit when its keyword is the
event's and it fires between the event's start and ``tolerance_s`` after its end; every other detection is a
false alarm. False alarms per hour are counted over all audio (positives included).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from speechedge.audio import read_audio, trim_silence, write_audio
from speechedge.io import atomic_write_text
from speechedge.runtime import UNKNOWN, Detection, KWSModel, StreamingKWS
from speechedge.runtime.kws import agreement_streak

log = logging.getLogger(__name__)

__all__ = ["Stream", "load_streams", "synth_streams", "score_trace", "fire", "evaluate_streams", "pooled_det", "operating_point"]

AUDIO_EXT = (".wav", ".flac", ".ogg")


@dataclass
class Stream:
    name: str
    audio: np.ndarray  # float32 16 kHz
    events: list[dict] = field(default_factory=list)  # {"keyword", "start_s", "end_s"}

    @property
    def duration_s(self) -> float:
        return len(self.audio) / 16000


def load_streams(folder: str | Path, *, positive: bool) -> list[Stream]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of recordings")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXT)
    if not files:
        raise FileNotFoundError(f"{folder}: no audio files ({', '.join(AUDIO_EXT)})")
    out = []
    for p in files:
        audio, _ = read_audio(p, sample_rate=16000)
        events = []
        if positive:
            label = p.with_suffix(".json")
            if not label.exists():
                raise FileNotFoundError(f"{label}: positive recordings need a JSON of events beside them "
                                        '({"events": [{"keyword": ..., "start_s": ..., "end_s": ...}]})')
            events = json.loads(label.read_text())["events"]
        out.append(Stream(p.stem, audio.astype(np.float32), events))
    return out


def synth_streams(out_dir: str | Path, keywords: list[str], *, positive_streams: int = 10, per_stream: int = 6,
                  speech_minutes: float = 20.0, noise_minutes: float = 5.0, music_minutes: float = 5.0,
                  seed: int = 0, engines: tuple[str, ...] = ("espeak", "hibari", "pico"),
                  progress: bool = True) -> tuple[Path, Path]:
    """Synthesize ``positives/`` (filler speech with the keywords inserted at known times, said by voices
    not used for enrolment, drawn in turn from ``engines``) and ``negatives/`` (speech without the keywords,
    noise, music) under ``out_dir``. Resumable: an existing ``done.json`` with the same arguments returns at
    once."""
    from speechedge.synth.corpora import music_signal, noise_signal, synth_librispeech, synth_speech_commands

    out_dir = Path(out_dir)
    args = {"keywords": keywords, "positive_streams": positive_streams, "per_stream": per_stream,
            "speech_minutes": speech_minutes, "noise_minutes": noise_minutes, "music_minutes": music_minutes,
            "seed": seed, "engines": list(engines)}
    done = out_dir / "done.json"
    if done.exists() and json.loads(done.read_text()) == args:
        return out_dir / "positives", out_dir / "negatives"
    rng = np.random.default_rng(seed)
    n_clips = positive_streams * per_stream
    kw_dir = out_dir / "_keywords"
    synth_speech_commands(kw_dir, words=keywords, per_word=n_clips, seed=seed + 1000, noise_seconds=1.0,
                          engines=tuple(engines), progress=progress)
    paths = {w: sorted((kw_dir / w).glob("*.wav")) for w in keywords}
    clips = {w: [trim_silence(read_audio(p, sample_rate=16000)[0]) for p in paths[w]] for w in keywords}
    voices = {v["speaker"]: v for v in map(json.loads, (kw_dir / "voices.jsonl").read_text().splitlines())}
    speech_dir = out_dir / "_speech"
    rep = synth_librispeech(speech_dir, hours=(speech_minutes + positive_streams * per_stream * 0.2) / 60,
                            num_speakers=12, seed=seed + 2000, progress=progress)
    del rep
    kw_set = {w.upper() for w in keywords}
    utts = []
    for trans in sorted(speech_dir.glob("*/*/*/*.trans.txt")):
        for line in trans.read_text().splitlines():
            uid, text = line.split(" ", 1)
            if kw_set & set(text.split()):
                continue  # filler speech must not contain the keywords
            utts.append(read_audio(trans.parent / f"{uid}.flac", sample_rate=16000)[0])
    if not utts:
        raise RuntimeError("speech synthesis produced no filler utterances")
    pos_dir, neg_dir = out_dir / "positives", out_dir / "negatives"
    k = 0
    for s in range(positive_streams):
        parts, events, t = [], [], 0.0
        for _ in range(per_stream):
            u = utts[k % len(utts)]
            k += 1
            gap = np.zeros(int(16000 * rng.uniform(0.3, 1.0)), np.float32)
            word = keywords[int(rng.integers(len(keywords)))]
            c = int(rng.integers(len(clips[word])))
            clip, speaker = clips[word][c], paths[word][c].name.split("_")[0]
            start = t + (len(u) + len(gap)) / 16000
            events.append({"keyword": word, "start_s": round(start, 3), "end_s": round(start + len(clip) / 16000, 3),
                           "speaker": speaker, "engine": voices[speaker]["engine"]})
            parts += [u, gap, clip, np.zeros(int(16000 * rng.uniform(0.3, 1.0)), np.float32)]
            t = sum(len(p) for p in parts) / 16000
        write_audio(pos_dir / f"positive_{s:02d}.wav", np.concatenate(parts), 16000)
        atomic_write_text(pos_dir / f"positive_{s:02d}.json", json.dumps({"events": events}, indent=1))
    speech = np.concatenate(utts[k:] or utts)
    write_audio(neg_dir / "speech.wav", speech[: int(speech_minutes * 60 * 16000)], 16000)
    for kind in ("white_noise", "pink_noise", "hum"):
        write_audio(neg_dir / f"{kind}.wav", noise_signal(kind, int(noise_minutes * 60 * 16000 / 3), rng), 16000)
    write_audio(neg_dir / "music.wav", music_signal(int(music_minutes * 60 * 16000), rng), 16000)
    atomic_write_text(done, json.dumps(args))
    return pos_dir, neg_dir


def score_trace(detector: StreamingKWS, audio: np.ndarray, block: int = 1600
                ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run the detector over ``audio``; returns window end times, the smoothed and the raw score of each keyword."""
    detector.reset()
    detector.trace = []
    for i in range(0, len(audio), block):
        detector.push(audio[i: i + block])
    rows, detector.trace = detector.trace, None
    keys = sorted({k for _, r, _ in rows for k in r} - detector.ignore)
    return (np.array([t for t, _, _ in rows]), {k: np.array([r.get(k, 0.0) for _, r, _ in rows]) for k in keys},
            {k: np.array([r.get(k, 0.0) for _, _, r in rows]) for k in keys})


def fire(times: np.ndarray, scores: dict[str, np.ndarray], threshold: float, refractory_s: float,
         agree: int = 1, raw: dict[str, np.ndarray] | None = None, peak_margin: float | None = None
         ) -> list[Detection]:
    """The detector's firing rule over a recorded trace (equal to :class:`StreamingKWS`'s detections, tested):
    ``agree`` windows of the smoothed ``scores`` above ``threshold``, or (with ``peak_margin``) one window of the
    ``raw`` scores at ``threshold + peak_margin``."""
    if not scores or len(times) == 0:
        return []
    names = list(scores)
    s = np.stack([scores[k] for k in names], 1)
    best, val = s.argmax(1), s.max(1)
    peak = peak_margin is not None and not math.isinf(peak_margin)
    if peak and (raw is None or not peak_margin >= 0):
        raise ValueError(f"fire: the peak rule needs the raw scores and a margin >= 0 (got margin {peak_margin}, "
                         f"raw {'given' if raw is not None else 'None'})")
    if peak:
        r = np.stack([raw[k] for k in names], 1)
        rbest, rval = r.argmax(1), r.max(1)
    out, last, streak = [], -math.inf, (None, 0)
    for i in range(len(times)):
        streak = agreement_streak(streak, best[i], val[i] >= threshold)
        if streak[1] >= agree:
            k, v = best[i], val[i]
        elif peak and rval[i] >= threshold + peak_margin:
            k, v = rbest[i], rval[i]
        else:
            continue
        if times[i] - last >= refractory_s:
            out.append(Detection(names[k], round(float(times[i]), 3), round(float(v), 4)))
            last = times[i]
    return out


def _match_events(dets: list[Detection], events: list[dict], tolerance_s: float
                  ) -> tuple[list[bool], int, list[float]]:
    """(whether each event was detected, false alarms, latencies after the keyword's end)."""
    used = [False] * len(events)
    fa, lat = 0, []
    for d in dets:
        for j, e in enumerate(events):
            if not used[j] and d.keyword == e["keyword"] and e["start_s"] <= d.time_s <= e["end_s"] + tolerance_s:
                used[j] = True
                lat.append(d.time_s - e["end_s"])
                break
        else:
            fa += 1
    return used, fa, lat


def replay(traces: list, threshold: float, *, refractory_s: float, agree: int, peak_margin: float | None,
           tolerance_s: float) -> tuple[list[tuple[dict, bool]], int, list[float]]:
    """One firing rule over recorded ``(stream, times, smoothed, raw)`` traces (:func:`evaluate_streams`'s
    ``traces``): ``(event, detected)`` for every keyword event, the false alarms, and the latencies after each
    detected keyword's end."""
    flags: list[tuple[dict, bool]] = []
    fas, lats = 0, []
    for s, times, scores, raw in traces:
        dets = fire(times, scores, threshold, refractory_s, agree, raw, peak_margin)
        used, f, lat = _match_events(dets, s.events, tolerance_s)
        fas, lats = fas + f, lats + lat
        flags += list(zip(s.events, used))
    return flags, fas, lats


def _match(dets: list[Detection], events: list[dict], tolerance_s: float) -> tuple[int, int, list[float]]:
    """(hits, false alarms, latencies after the keyword's end)."""
    used, fa, lat = _match_events(dets, events, tolerance_s)
    return sum(used), fa, lat


def pooled_det(dets: list[list[dict]], events: list[int], hours: list[float]) -> list[dict]:
    """DET points of several stream sets (:func:`evaluate_streams` ``det``) pooled at each threshold they share:
    misses and false alarms summed, then divided by all events and all hours (one threshold for every keyword,
    as a user gets it)."""
    shared = set.intersection(*({q["threshold"] for q in d} for d in dets))
    out = []
    for t in sorted(shared):
        qs = [next(q for q in d if q["threshold"] == t) for d in dets]
        out.append({"threshold": t, "frr": sum(q["frr"] * n for q, n in zip(qs, events)) / sum(events),
                    "fa_per_hour": sum(q["fa_per_hour"] * h for q, h in zip(qs, hours)) / sum(hours)})
    return out


def operating_point(det: list[dict], max_fa_per_hour: float) -> dict | None:
    """The DET point with the lowest false reject rate at or below ``max_fa_per_hour`` (ties: the higher
    threshold, the one that fires less); None when no threshold gets that low."""
    ok = [q for q in det if q["fa_per_hour"] <= max_fa_per_hour]
    return min(ok, key=lambda q: (q["frr"], -q["threshold"])) if ok else None


def evaluate_streams(model: KWSModel, positives: list[Stream], negatives: list[Stream], *, stride_ms: float = 100.0,
                     smooth: int | None = None, agree: int | None = None, peak_margin: float | None = None,
                     refractory_s: float = 1.0, tolerance_s: float = 1.0, fa_targets=(0.5, 1.0, 2.0),
                     progress: bool = True, traces: list | None = None) -> dict:
    """False reject rate at ``fa_targets`` false alarms per hour, latency, and the DET points (the detector's
    default ``smooth``/``agree``/``peak_margin`` for the model unless given; every threshold keeps the peak
    rule's margin above it). ``traces``: a list to receive ``(stream, times, smoothed, raw)`` of every stream
    (:func:`fire` replays other rules on them without running the model again)."""
    from tqdm import tqdm

    det = StreamingKWS(model, threshold=1.0, stride_ms=stride_ms, smooth=smooth, agree=agree,
                       peak_margin=peak_margin, refractory_s=refractory_s)
    out, traces = traces, []
    for s in tqdm(positives + negatives, desc="streams", unit="stream", disable=not progress):
        traces.append((s, *score_trace(det, s.audio)))
    if out is not None:  # the caller's list gets this call's traces (whatever it held is not scored)
        out.extend(traces)
    hours = sum(s.duration_s for s in positives + negatives) / 3600
    n_events = sum(len(s.events) for s in positives)
    if n_events == 0:
        raise ValueError("the positive streams hold no keyword events")
    thresholds = np.round(np.concatenate([np.linspace(0.05, 0.5, 46), np.linspace(0.505, 0.95, 90),
                                          [0.96, 0.97, 0.98, 0.99, 0.995, 0.999]]), 4)
    # streams written by synth_streams name the engine of each keyword's voice: FRR per engine too
    engines = sorted({e["engine"] for s in positives for e in s.events if "engine" in e})
    per_engine = {g: sum(e.get("engine") == g for s in positives for e in s.events) for g in engines}
    points = []
    for th in thresholds:
        # a streaming model's decisions come det.lag_s later (its look-ahead): the same tolerance after it
        hit_flags, fas, lats = replay(traces, float(th), refractory_s=refractory_s, agree=det.agree,
                                      peak_margin=det.peak_margin, tolerance_s=tolerance_s + det.lag_s)
        hits = sum(u for _, u in hit_flags)
        point = {"threshold": float(th), "frr": 1 - hits / n_events, "fa_per_hour": fas / hours,
                 "false_alarms": fas, "hits": hits, "median_latency_s": float(np.median(lats)) if lats else None}
        if engines:
            point["frr_by_engine"] = {g: 1 - sum(u for e, u in hit_flags if e.get("engine") == g) / per_engine[g]
                                      for g in engines}
        points.append(point)
    operating = {}
    for target in fa_targets:
        ok = [p for p in points if p["fa_per_hour"] <= target]
        best = min(ok, key=lambda p: (p["frr"], p["threshold"])) if ok else None
        operating[f"{target:g}"] = best
    return {"hours": hours, "events": n_events, "events_by_engine": per_engine,
            "positive_streams": len(positives), "negative_streams": len(negatives),
            "fa_resolution_per_hour": 1 / hours, "operating_points": operating, "det": points,
            "windows_per_s": 1000 / stride_ms, "smooth": det.smooth, "agree": det.agree,
            "peak_margin": det.peak_margin,
            "mode": model.mode, "lag_s": det.lag_s,
            "rule": "calibrated nearest exemplar" if model.calibrated else "softmax",
            "model_invoke_ms": 1000 * det.invoke_s / max(1, det.windows)}


def det_png(result: dict, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speechedge.io import atomic_savefig

    pts = sorted(result["det"], key=lambda p: p["fa_per_hour"])
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([max(p["fa_per_hour"], 1e-2) for p in pts], [p["frr"] for p in pts], marker=".", ms=3)
    for target, p in result["operating_points"].items():
        if p is not None:
            ax.axvline(float(target), color="grey", lw=0.5, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel(f"false alarms per hour ({result['hours']:.2f} h of audio; 0 is drawn at 0.01)")
    ax.set_ylabel("false reject rate")
    ax.set_title(f"DET: {result['events']} keyword events")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, path)


def format_summary(result: dict) -> str:
    lines = [f"{result['events']} keyword events in {result['positive_streams']} positive streams, "
             f"{result['negative_streams']} negative streams, {result['hours']:.2f} h in all "
             f"(1 false alarm = {result['fa_resolution_per_hour']:.2f} FA/h)",
             "| FA/h target | threshold | false reject rate | FA/h | median latency after keyword end |"
             + (" FRR by engine of the keyword's voice |" if result.get("events_by_engine") else ""),
             "|---|---|---|---|---|" + ("---|" if result.get("events_by_engine") else "")]
    for target, p in result["operating_points"].items():
        if p is None:
            lines.append(f"| {target} | - | not reached (even the highest threshold fires more often) | - | - |")
        else:
            lat = f"{p['median_latency_s']:.2f} s" if p["median_latency_s"] is not None else "-"
            by = (" " + ", ".join(f"{g} {v:.2f} ({result['events_by_engine'][g]})"
                                  for g, v in p["frr_by_engine"].items()) + " |") if "frr_by_engine" in p else ""
            lines.append(f"| {target} | {p['threshold']:.3f} | {p['frr']:.3f} | {p['fa_per_hour']:.2f} | {lat} |{by}")
    return "\n".join(lines)


def keywords_of(model: KWSModel) -> list[str]:
    if model.kind == "embedding":
        return list(model.keywords)
    return [w for w in model.labels if w not in (UNKNOWN, "_silence_", "_unknown_", "_background_noise_")]


def evaluate_cli(model_dir: str | None, *, positives: str | None, negatives: str | None, synth_dir: str,
                 json_path: str | None, png_path: str | None, precision: str = "auto", seed: int = 0,
                 keywords_file: str | None = None, negative_hours: float = 2.0, mode: str = "window") -> int:
    from speechedge.pretrained import resolve_model

    if negative_hours <= 0:
        raise ValueError(f"--negative-hours must be positive, got {negative_hours}")
    model_dir = str(resolve_model(model_dir))
    model = KWSModel(model_dir, precision=precision, keywords_file=keywords_file, mode=mode)
    keywords = keywords_of(model)
    if not keywords:
        raise ValueError(f"{model_dir}: no keywords to detect; enrol some first (speechedge demo kws --model "
                         f"{model_dir} --enroll a.wav b.wav c.wav --name WORD)")
    if positives is None or negatives is None:
        minutes = 60 * negative_hours
        pos, neg = synth_streams(synth_dir, keywords, seed=seed, speech_minutes=minutes * 5 / 6,
                                 noise_minutes=minutes / 12, music_minutes=minutes / 12)
        positives, negatives = positives or str(pos), negatives or str(neg)
    result = evaluate_streams(model, load_streams(positives, positive=True), load_streams(negatives, positive=False))
    print(format_summary(result))
    png = Path(png_path) if png_path else Path(synth_dir) / "det.png"  # never into a (shipped) model folder
    det_png(result, png)
    print(f"DET curve: {png}")
    if json_path:
        atomic_write_text(json_path, json.dumps(result, indent=2))
    return 0
