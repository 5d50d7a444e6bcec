"""Choose an exported few-shot model's detector operating point on development streams and write it into the
model's ``fewshot.json`` (``detector``: threshold, smooth, agree; ``detector_stream`` with ``--stream``, for the
streaming step model), which :class:`speechedge.runtime.StreamingKWS` then uses as its default.

    python benchmarks/kws_calibrate_detector.py MODEL_DIR WORK [--hours 2] [--target-fa 0.5] [--stream] [--write]

The development set is kept apart from the long-form test of ``benchmarks/kws_longform.py`` in everything:
other keywords (``lemonade``, ``november`` instead of ``pineapple``, ``jupiter``), other enrolment voices
(seed 505 vs 500), other stream voices and texts (seed 5 vs 0). The DET curve is measured and the chosen point is the one with the lowest false reject rate among those
at or below ``--target-fa`` false alarms per hour on the development streams (ties: the higher threshold).
Each ``agree`` in ``--agree`` (default 4, smooth = agree, the rule's shipped shape) is one pass over the streams.
The test streams are never looked at.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechedge.apps.longform import evaluate_streams, load_streams, synth_streams
from speechedge.audio import read_audio
from speechedge.io import atomic_write_text
from speechedge.runtime import KWSModel
from speechedge.synth.corpora import synth_speech_commands

DEV_KEYWORDS = ["lemonade", "november"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("work", type=Path)
    p.add_argument("--hours", type=float, default=2.0)
    p.add_argument("--target-fa", type=float, default=0.5, help="false alarms per hour allowed on the dev streams")
    p.add_argument("--agree", default="4", help="comma-separated window counts to try (smooth = agree; each is "
                   "one pass over the streams)")
    p.add_argument("--stream", action="store_true", help="the streaming step model's operating point")
    p.add_argument("--write", action="store_true", help="write the chosen point into MODEL_DIR/fewshot.json")
    args = p.parse_args(argv)
    try:
        agrees = [int(a) for a in args.agree.split(",")]
    except ValueError:
        raise SystemExit(f"--agree {args.agree!r}: expected comma-separated whole numbers, e.g. 3,4,5") from None
    mode = "stream" if args.stream else "window"
    m = KWSModel(args.model_dir, keywords_file=args.work / f"keywords_{mode}.json", mode=mode)
    if not m.calibrated:
        raise SystemExit(f"{args.model_dir}: not a few-shot model with a background set (background.npy)")
    enroll = args.work / "enroll"
    if not (enroll / "synth_report.json").exists():
        synth_speech_commands(enroll, words=DEV_KEYWORDS, per_word=3, seed=505, noise_seconds=1.0, progress=False,
                              engines=("espeak", "hibari", "pico"))
    m.forget()
    sr = m.frontend.sample_rate
    for w in DEV_KEYWORDS:
        m.enroll(w, [read_audio(f, sample_rate=sr)[0] for f in sorted((enroll / w).glob("*.wav"))])
    minutes = 60 * args.hours
    pos, neg = synth_streams(args.work / "streams", DEV_KEYWORDS, seed=5, speech_minutes=minutes * 5 / 6,
                             noise_minutes=minutes / 12, music_minutes=minutes / 12, progress=False)
    positives, negatives = load_streams(pos, positive=True), load_streams(neg, positive=False)
    rows, dets = [], {}
    for agree in agrees:
        r = evaluate_streams(m, positives, negatives, smooth=agree, agree=agree, fa_targets=(args.target_fa,),
                             progress=False)
        dets[agree] = r["det"]
        ok = [q for q in r["det"] if q["fa_per_hour"] <= args.target_fa]
        if ok:
            best = min(ok, key=lambda q: (q["frr"], -q["threshold"]))
            rows.append({"threshold": best["threshold"], "smooth": agree, "agree": agree, "dev_frr": best["frr"],
                         "dev_fa_per_hour": best["fa_per_hour"]})
        print(f"agree {agree}: " + (f"threshold {best['threshold']:.3f}, FRR {best['frr']:.3f}, "
                                    f"{best['fa_per_hour']:.2f} FA/h" if ok else "target not reached"))
    if not rows:
        raise SystemExit(f"no threshold reaches {args.target_fa} FA/h on the development streams")
    choice = min(rows, key=lambda q: (q["dev_frr"], -q["threshold"]))
    choice["mode"] = mode
    choice["chosen_on"] = (f"development streams ({r['hours']:.2f} h, {r['events']} events of {DEV_KEYWORDS}, "
                           f"seed 5), lowest FRR at <= {args.target_fa:g} FA/h")
    print(json.dumps(choice, indent=2))
    atomic_write_text(args.work / f"calibration_{mode}.json", json.dumps({"choice": choice, "candidates": rows, "det": dets},
                                                                   indent=2))
    if args.write:
        fs = args.model_dir / "fewshot.json"
        cfg = json.loads(fs.read_text())
        cfg[m.detector_key] = choice
        atomic_write_text(fs, json.dumps(cfg, indent=2) + "\n")
        print(f"wrote {fs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
