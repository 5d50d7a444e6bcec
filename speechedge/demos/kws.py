"""Live keyword spotting: ``speechedge demo kws --model DIR [--enroll WAV ... --name WORD] [--input mic|FILE|-]``.

Runs an exported KWS folder (``speechedge export``) through :class:`speechedge.runtime.StreamingKWS`.
Few-shot models detect the keywords enrolled in the folder (``keywords.json``); ``--enroll`` adds one from
files, ``--enroll-mic N`` from N prompted takes on the microphone; ``--enroll-text`` adds renderings of the keyword's
name by synthetic voices to those recordings (:func:`speechedge.synth.engines.render_keyword`), ``--enroll-far-field``
copies of the recordings as heard across a room (:func:`speechedge.audio.far_field_copies`). Detections print as they happen (one JSON
object per line with ``--json``); on a terminal a status line shows the input level (and the gain the model's
input level normalization applies, when it boosts), the current scores and
the counters. Ctrl-C ends with a summary. Torch-free.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from speechedge.runtime import UNKNOWN, KWSModel, StreamingKWS

from .audio_input import AudioInputError, MicSource, open_source

__all__ = ["run_kws", "enroll_from_mic", "best_second"]


def best_second(audio: np.ndarray, samples: int = 16000) -> np.ndarray:
    """The ``samples``-long span of ``audio`` with the most energy (centres a spoken word in a take)."""
    if len(audio) <= samples:
        return audio
    e = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    win = e[samples:] - e[:-samples]
    s = int(win.argmax())
    return audio[s: s + samples]


def enroll_from_mic(model: KWSModel, name: str, takes: int, *, device=None, seconds: float = 1.5,
                    out=sys.stderr, max_seconds=None, extra: list[np.ndarray] = (), far_field: bool = False
                    ) -> np.ndarray:
    """Enrol ``name`` from ``takes`` prompted microphone takes (and ``extra`` synthetic renderings, or with
    ``far_field`` their copies as heard across a room: :meth:`KWSModel.enroll`)."""
    mic = MicSource(device=device)
    clips = []
    for i in range(takes):
        print(f"say '{name}' now ({i + 1}/{takes}) ...", file=out, flush=True)
        take = mic.record(seconds)
        level = float(np.sqrt(np.mean(take ** 2)))
        if level < 1e-3:
            print(f"  take {i + 1} is silent (RMS {level:.1e}); check the microphone level", file=out)
        clips.append(best_second(take, model.clip_samples))
    return model.enroll(name, clips, rendered=extra, far_field=far_field)


def _meter(level: float, width: int = 20) -> str:
    db = 20 * np.log10(max(level, 1e-5))  # -100 .. 0 dBFS
    n = int(np.clip((db + 60) / 60, 0, 1) * width)
    return "#" * n + "." * (width - n)


def run_kws(model_dir: str | None, *, enroll: list[str] | None = None, enroll_mic: int = 0, name: str | None = None,
            input_spec: str = "mic", threshold: float | None = None, realtime: bool = False, as_json: bool = False,
            device=None, max_seconds: float | None = None, precision: str = "auto", stride_ms: float = 100.0,
            smooth: int | None = None, agree: int | None = None, peak_margin: float | None = None,
            refractory_s: float = 1.0, keywords_file: str | None = None, mode: str = "window", enroll_text: bool = False, say: str | None = None,
            enroll_far_field: bool = False, out=None) -> int:
    """Enrol (optional) and detect; ``model_dir=None`` uses the shipped pretrained few-shot model."""
    from speechedge.pretrained import resolve_model

    out = out or sys.stdout
    model = KWSModel(resolve_model(model_dir), precision=precision, keywords_file=keywords_file, mode=mode)
    source = None
    if input_spec != "mic":  # check a file / stdin input before anything is enrolled and saved
        try:
            source = open_source(input_spec, realtime=realtime, device=device, max_seconds=max_seconds)
        except AudioInputError as e:
            print(f"speechedge demo kws: {e}", file=sys.stderr)
            return 2
    if say and not enroll_text:
        raise ValueError("--say TEXT goes with --enroll-text (how the synthesizers should say the keyword)")
    if enroll_far_field and not (enroll or enroll_mic):
        raise ValueError("--enroll-far-field adds room copies of recordings: give --enroll WAV ... or --enroll-mic N")
    if enroll_far_field and enroll_text:
        raise ValueError("--enroll-far-field and --enroll-text each have their own operating point; use one")
    if enroll_text and not (enroll or enroll_mic):
        raise ValueError("--enroll-text adds to recordings: give --enroll WAV ... or --enroll-mic N as well "
                         "(synthetic renderings alone detect other voices poorly)")
    if enroll or enroll_mic:
        if not name:
            raise ValueError("--enroll/--enroll-mic need --name WORD (the keyword being enrolled)")
        rendered = []
        if enroll_text:
            from speechedge.synth.engines import EngineError, render_keyword

            text = say or name.replace("_", " ")
            try:
                rendered = render_keyword(text)
            except EngineError as e:  # no synthesizer installed, or one failed: nothing is enrolled
                raise ValueError(f"--enroll-text: {e}") from None
            print(f"text enrolment: {len(rendered)} synthetic renderings of {text!r}", file=sys.stderr)
        if name in model.exemplars:
            print(f"replacing the enrolled keyword {name!r} ({len(model.exemplars[name])} clips) in "
                  f"{model.keywords_file}", file=sys.stderr)
        if enroll:
            from speechedge.audio import read_audio

            sr = model.frontend.sample_rate
            model.enroll(name, [best_second(read_audio(p, sample_rate=sr)[0], model.clip_samples) for p in enroll],
                         rendered=rendered, far_field=enroll_far_field)
        else:
            enroll_from_mic(model, name, enroll_mic, device=device, extra=rendered, far_field=enroll_far_field)
        if enroll_far_field:
            takes = len(enroll) if enroll else enroll_mic
            print(f"far-field enrolment: {len(model.exemplars[name]) - takes} room copies of the takes of {name!r}",
                  file=sys.stderr)
        print(f"enrolled {name!r} in {model.keywords_file}; keywords: {', '.join(model.keywords)}",
              file=sys.stderr)
    try:
        detector = StreamingKWS(model, threshold=threshold, stride_ms=stride_ms, smooth=smooth, agree=agree,
                                peak_margin=peak_margin, refractory_s=refractory_s)
        if source is None:
            source = open_source(input_spec, realtime=realtime, device=device, max_seconds=max_seconds)
    except AudioInputError as e:
        print(f"speechedge demo kws: {e}", file=sys.stderr)
        return 2
    tty = out.isatty() and not as_json
    if not as_json:
        what = ", ".join(model.keywords) if model.kind == "embedding" else f"{len(model.labels)} classes"
        print(f"listening on {source.device_name} for {what} (threshold {detector.threshold:g}, {detector.agree} windows agree"
              + (f" or one at +{detector.peak_margin:g}" if detector.peak_margin is not None else "")
              + (" (above 1: no calibrated score reaches it)" if detector.peak_margin is not None and model.calibrated
                 and detector.threshold + detector.peak_margin > 1 else "")
              + f", {model.precision}); "
              "Ctrl-C to stop", file=sys.stderr)
    blocks = late = 0
    detections: list = []
    t0 = time.perf_counter()
    try:
        for block in source:
            blocks += 1
            if getattr(source, "backlog", 0) > 5:  # more than half a second behind the microphone
                late += 1
            for d in detector.push(block):
                detections.append(d)
                if as_json:
                    print(d.to_json(), file=out, flush=True)
                else:
                    print(("\r" if tty else "") + f"{d.time_s:9.2f} s  {d.keyword:<16} score {d.score:.3f}" +
                          (" " * 30 if tty else ""), file=out, flush=True)
            if tty and blocks % 2 == 0:
                level = float(np.sqrt(np.mean(block ** 2))) if len(block) else 0.0
                top = sorted(((v, k) for k, v in detector.last_scores.items() if k != UNKNOWN), reverse=True)[:3]
                scores = " ".join(f"{k} {v:.2f}" for v, k in top)
                boost = f" +{10 * np.log10(detector.level_gain):.0f} dB" if detector.level_gain > 1 else ""
                print(f"\r[{_meter(level)}]{boost} {detector.time_s:7.1f} s | {scores:<40} | blocks {blocks} late "
                      f"{late} dropped {source.dropped} | detections {len(detections)}", end="", file=out, flush=True)
    except KeyboardInterrupt:
        source.stop()
    wall = time.perf_counter() - t0
    audio_s = detector.time_s
    summary = {"audio_s": round(audio_s, 2), "wall_s": round(wall, 2), "blocks": blocks, "late_blocks": late,
               "dropped_blocks": source.dropped, "overflows": source.overflows, "detections": len(detections),
               "by_keyword": {k: sum(d.keyword == k for d in detections) for k in sorted({d.keyword for d in detections})},
               "model_ms_per_window": round(1000 * detector.invoke_s / max(1, detector.windows), 3),
               "real_time_factor": round(wall / max(audio_s, 1e-9), 4)}
    window_s = model.clip_samples / model.frontend.sample_rate
    if audio_s < window_s / 2:  # the detector evaluates once half a window of audio has arrived
        summary["note"] = (f"input ({audio_s:.2f} s) shorter than half the model's {window_s:g} s window: "
                           "nothing was evaluated")
        print(f"speechedge demo kws: {summary['note']}", file=sys.stderr)
    if as_json:
        print(json.dumps({"summary": summary}), file=out, flush=True)
    else:
        print(("\n" if tty else "") + "summary: " + ", ".join(f"{k} {v}" for k, v in summary.items()), file=out)
    return 0
