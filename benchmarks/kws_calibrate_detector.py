"""Choose an exported few-shot model's detector operating point on development streams and write it into the
model's ``fewshot.json`` (``detector``: threshold, smooth, agree; ``detector_stream`` with ``--stream``, for the
streaming step model), which :class:`speechedge.runtime.StreamingKWS` then uses as its default.

    python benchmarks/kws_calibrate_detector.py MODEL_DIR WORK [--hours 2] [--pairs 3] [--target-fa 0.5] [--stream] [--peak] [--write]

The development set is kept apart from the long-form tests of ``benchmarks/kws_longform.py`` in everything:
other keywords (:data:`DEV_PAIRS`: ``lemonade`` / ``november``, ``butterfly`` / ``kangaroo``, ``sunflower`` /
``volcano``, ``elephant`` / ``umbrella``, ``dinosaur`` / ``helicopter``, ``giraffe`` / ``lighthouse``; the tests use
``pineapple`` / ``jupiter``, ``avocado`` / ``saturday``, ``marshmallow`` / ``octopus``, ``penguin`` / ``telescope``),
other enrolment voices (seeds 505-555 vs 500-530), other stream voices and texts (seeds 5, 7, 11, 19, 23, 29 vs
0, 9, 13, 17). Until 2026-12-07 there were the first three pairs (6.3 h, 180 events): at <= 0.5 FA/h that allows
3 false alarms, and the chosen threshold moved with which pairs were used; ``--pairs 3`` is that set. Each pair is enrolled and detected on its own (``WORK/<kw1>_<kw2>/``, ``--hours`` of streams each);
the DET curves are pooled at each threshold (one threshold for every keyword, as a user gets it), and the chosen
point is the one with the lowest pooled false reject rate among those at or below ``--target-fa`` false alarms
per hour (ties: the higher threshold). Several pairs because how near ordinary speech comes depends on the
keyword as much as on the model: with one pair the threshold fits that pair's keywords (README, "Long-form
detection"). Each ``agree`` in ``--agree`` (default 4, smooth = agree, the rule's shipped shape) is one pass over
the streams. The test streams are never looked at. The candidates and pooled DET curves go to
``WORK/calibration_{window|stream}_{MODEL_DIR name}.json`` (one file per model).

``--enroll-text`` chooses the point for keywords enrolled with 24 synthetic renderings added to the recordings
(``demo kws --enroll-text``) from their raw scores, written as ``detector_text`` / ``detector_stream_text``: the
runtime subtracts the difference to the plain point from such a keyword's score (``KWSModel.text_offset``), so
one threshold serves every keyword. Calibrate the plain point first. ``--enroll-far-field`` does the same for keywords
enrolled with far-field copies of their recordings (``demo kws --enroll-far-field``; ``detector_far`` /
``detector_stream_far``, stop 38).

``--peak`` adds the peak rule to the chosen point (2026-12-07): one window whose raw score reaches ``threshold +
peak_margin`` fires on its own, without smoothing or agreement (a keyword followed by more speech, a wake word
with its command, has only a window or two with the keyword clean). The margin is the smallest of 0.05-0.40
(steps of 0.01) that adds no false alarm on the development streams at the chosen threshold; the threshold stays
the one chosen without it (replayed on the same traces: no second pass). The development streams hold keywords
said alone, where the rule adds few detections: it is chosen for what it does not cost there; its gain is on
the first-word test (``benchmarks/kws_own_voice.py ... --in-sentence --first-word``), which does not choose it.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from speechedge.apps.longform import (evaluate_streams, load_streams, operating_point, pooled_det, replay,
                                     synth_streams)
from speechedge.audio import read_audio
from speechedge.io import atomic_write_text
from speechedge.runtime import KWSModel
from speechedge.synth.corpora import synth_speech_commands

#: (keywords, enrolment seed, stream seed) of each development pair
DEV_PAIRS = [(("lemonade", "november"), 505, 5), (("butterfly", "kangaroo"), 515, 7),
             (("sunflower", "volcano"), 525, 11), (("elephant", "umbrella"), 535, 19),
             (("dinosaur", "helicopter"), 545, 23), (("giraffe", "lighthouse"), 555, 29)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("work", type=Path)
    p.add_argument("--hours", type=float, default=2.0, help="hours of streams per keyword pair")
    p.add_argument("--pairs", type=int, default=len(DEV_PAIRS), help=f"keyword pairs (1-{len(DEV_PAIRS)})")
    p.add_argument("--target-fa", type=float, default=0.5, help="false alarms per hour allowed on the dev streams")
    p.add_argument("--agree", default="4", help="comma-separated window counts to try (smooth = agree; each is "
                   "one pass over the streams)")
    p.add_argument("--stream", action="store_true", help="the streaming step model's operating point")
    p.add_argument("--peak", action="store_true",
                   help="also the peak rule: the smallest margin (0.05-0.40, steps of 0.01) at which one window "
                        "above threshold + margin firing on its own adds no false alarm on the development streams "
                        "at the chosen threshold (written as the operating point's peak_margin)")
    p.add_argument("--write", action="store_true", help="write the chosen point into MODEL_DIR/fewshot.json")
    p.add_argument("--enroll-text", action="store_true",
                   help="enrol each keyword with 24 synthetic renderings of its name added to the recordings "
                        "(`demo kws --enroll-text`) and choose the text enrolment operating point (--write: "
                        "fewshot.json detector_text / detector_stream_text)")
    p.add_argument("--enroll-far-field", action="store_true",
                   help="enrol each keyword with far-field copies of its recordings (`demo kws --enroll-far-field`) "
                        "and choose that enrolment's operating point (--write: fewshot.json detector_far / "
                        "detector_stream_far)")
    args = p.parse_args(argv)
    if args.enroll_text and args.enroll_far_field:
        raise SystemExit("--enroll-text and --enroll-far-field are calibrated one at a time")
    variant = "_text" if args.enroll_text else "_far" if args.enroll_far_field else ""
    if variant:  # the raw scores are what this run calibrates: the runtime's "no text point" warning is moot
        import logging

        logging.getLogger("speechedge.runtime.kws").setLevel(logging.ERROR)
    try:
        agrees = [int(a) for a in args.agree.split(",")]
    except ValueError:
        raise SystemExit(f"--agree {args.agree!r}: expected comma-separated whole numbers, e.g. 3,4,5") from None
    if args.peak and variant:
        raise SystemExit("--peak goes with the plain point (the runtime reads the peak margin of `detector` / "
                         "`detector_stream`, and it applies to text- and far-field-enrolled keywords too); run it "
                         "without --enroll-text / --enroll-far-field")
    if not 1 <= args.pairs <= len(DEV_PAIRS):
        raise SystemExit(f"--pairs must be 1-{len(DEV_PAIRS)}, got {args.pairs}")
    mode = "stream" if args.stream else "window"
    m = KWSModel(args.model_dir, keywords_file=args.work / f"keywords_{mode}.json", mode=mode)
    if not m.calibrated:
        raise SystemExit(f"{args.model_dir}: not a few-shot model with a background set (background.npy)")
    sr = m.frontend.sample_rate
    minutes = 60 * args.hours
    sets = []  # (name, positives, negatives, enrolment clips) per pair
    for words, enroll_seed, stream_seed in DEV_PAIRS[: args.pairs]:
        work = args.work / "_".join(words)
        enroll = work / "enroll"
        if not (enroll / "synth_report.json").exists():
            synth_speech_commands(enroll, words=list(words), per_word=3, seed=enroll_seed, noise_seconds=1.0,
                                  progress=False, engines=("espeak", "hibari", "pico"))
        pos, neg = synth_streams(work / "streams", list(words), seed=stream_seed, speech_minutes=minutes * 5 / 6,
                                 noise_minutes=minutes / 12, music_minutes=minutes / 12, progress=False)
        if args.enroll_text:
            from speechedge.synth.engines import render_keyword
        clips = {w: ([read_audio(f, sample_rate=sr)[0] for f in sorted((enroll / w).glob("*.wav"))],
                     render_keyword(w) if args.enroll_text else []) for w in words}
        sets.append(("_".join(words), load_streams(pos, positive=True), load_streams(neg, positive=False), clips))
    hours = sum(s.duration_s for _, pos, neg, _ in sets for s in pos + neg) / 3600
    rows, dets, traces = [], {}, {}
    for agree in agrees:
        per_pair = {}
        for name, positives, negatives, clips in sets:
            m.forget()
            for w, (c, rendered) in clips.items():
                m.enroll(w, c, rendered=rendered, save=False, far_field=args.enroll_far_field)
                m.score_offset[w] = 0.0  # the raw score: this run chooses the (text / far-field) threshold
            traces[agree, name] = []
            per_pair[name] = evaluate_streams(m, positives, negatives, smooth=agree, agree=agree, peak_margin=math.inf,
                                              fa_targets=(args.target_fa,), progress=False,
                                              traces=traces[agree, name])
        det = pooled_det([r["det"] for r in per_pair.values()], [r["events"] for r in per_pair.values()],
                         [r["hours"] for r in per_pair.values()])
        dets[agree] = {"pooled": det, **{k: r["det"] for k, r in per_pair.items()}}
        best = operating_point(det, args.target_fa)
        if best:
            rows.append({"threshold": best["threshold"], "smooth": agree, "agree": agree, "dev_frr": best["frr"],
                         "dev_fa_per_hour": best["fa_per_hour"]})
        print(f"agree {agree}: " + (f"threshold {best['threshold']:.3f}, pooled FRR {best['frr']:.3f}, "
                                    f"{best['fa_per_hour']:.2f} FA/h" if best else "target not reached"))
    if not rows:
        raise SystemExit(f"no threshold reaches {args.target_fa} FA/h on the development streams")
    choice = min(rows, key=lambda q: (q["dev_frr"], -q["threshold"]))
    if args.peak:
        lag = next(iter(per_pair.values()))["lag_s"]
        choice.update(_peak_margin(traces, choice, [s[0] for s in sets], hours, 1.0 + lag))
        print(f"peak rule: margin {choice['peak_margin']} (development FRR {choice['dev_frr']:.3f} at "
              f"{choice['dev_fa_per_hour']:.2f} FA/h with it)")
    choice["mode"] = mode
    events = sum(r["events"] for r in per_pair.values())
    choice["chosen_on"] = (f"development streams ({hours:.2f} h, {events} events of {len(sets)} keyword pairs "
                           f"{[s[0] for s in sets]}), lowest pooled FRR at <= {args.target_fa:g} FA/h"
                           + (", keywords enrolled with 24 synthetic renderings too" if args.enroll_text else "")
                           + (", keywords enrolled with far-field copies too" if args.enroll_far_field else ""))
    print(json.dumps(choice, indent=2))
    # one file per model (the folder's name): calibrating another model keeps this one's DET
    out = args.work / f"calibration_{mode}{variant}_{args.model_dir.resolve().name}.json"
    atomic_write_text(out, json.dumps({"choice": choice, "candidates": rows, "det": dets}, indent=2))
    if args.write:
        fs = args.model_dir / "fewshot.json"
        cfg = json.loads(fs.read_text())
        cfg[m.detector_key + variant] = choice
        atomic_write_text(fs, json.dumps(cfg, indent=2) + "\n")
        print(f"wrote {fs}")
    return 0


def _peak_margin(traces: dict, choice: dict, pairs: list[str], hours: float, tolerance_s: float) -> dict:
    """The smallest peak margin (0.05..0.40 in steps of 0.01) that adds no false alarm to the chosen point on the
    development streams (whatever it adds in detections), and the development result with it; ``peak_margin``
    None when every margin adds one."""
    th, agree = choice["threshold"], choice["agree"]

    def point(margin):
        flags, fas, _ = replay([t for name in pairs for t in traces[agree, name]], th, refractory_s=1.0,
                               agree=agree, peak_margin=margin, tolerance_s=tolerance_s)
        return 1 - sum(u for _, u in flags) / len(flags), fas / hours

    base_frr, base_fa = point(None)
    if abs(base_frr - choice["dev_frr"]) > 1e-9 or abs(base_fa - choice["dev_fa_per_hour"]) > 1e-9:
        raise SystemExit(f"the replayed traces give FRR {base_frr:.4f} at {base_fa:.3f} FA/h, not the chosen point "
                         f"({choice['dev_frr']:.4f} at {choice['dev_fa_per_hour']:.3f}): a bug, nothing written")
    for margin in np.round(np.arange(0.05, 0.405, 0.01), 2):
        frr, fa = point(float(margin))
        if fa <= base_fa + 1e-9:
            return {"peak_margin": float(margin), "dev_frr": frr, "dev_fa_per_hour": fa,
                    "dev_frr_without_peak": base_frr}
    return {"peak_margin": None}


if __name__ == "__main__":
    raise SystemExit(main())
