"""Long-form detection of two custom keywords with an exported model: enrol 3 synthesized clips each (espeak,
hibari, Pico speakers), then FRR at 0.5/1/2 FA/h over 2 h of synthesized negatives (other voices' speech,
noise, music) and the DET curve.

    python benchmarks/kws_longform.py speechedge/pretrained/kws_fewshot work/longform [HOURS] [--stream]
    python benchmarks/kws_longform.py MODEL work/longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9

``--stream`` detects with the streaming step model (``KWSModel(mode="stream")``) instead of the window model;
``--gain-db -20`` plays enrolment and streams 20 dB quieter (``benchmarks/kws_level.py``), ``--noise-floor-db -65``
adds a microphone's self-noise after that, ``--no-level`` turns the model's input level normalization off; each
variant writes its own ``result[_stream][_gainG][_nolevel][_floorF].json``. ``--engines kokoro`` makes the
enrolment clips and the keyword events of voices of other engines (default: espeak-ng, hibari and Pico; the
filler speech stays espeak-ng's); a work folder keeps the engines it was made with.
The default keywords and seeds are the README's test set A; the second line is its test set B (other keywords,
enrolment voices, stream voices and texts). Neither shares anything with the development streams of
``benchmarks/kws_calibrate_detector.py`` (``lemonade``, ``november``, seeds 505 / 5).

Then `python benchmarks/kws_detector.py work/longform` compares the decision rules on the same streams.
"""
import argparse
import json
from pathlib import Path

import numpy as np

from speechedge.apps.longform import det_png, evaluate_streams, format_summary, load_streams, synth_streams
from speechedge.audio import read_audio
from speechedge.runtime import KWSModel
from speechedge.synth.corpora import synth_speech_commands

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("work", type=Path)
    p.add_argument("hours", type=float, nargs="?", default=2.0)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--keywords", default="pineapple,jupiter")
    p.add_argument("--enroll-seed", type=int, default=500)
    p.add_argument("--seed", type=int, default=0, help="seed of the streams' voices and texts")
    p.add_argument("--gain-db", type=float, default=0.0,
                   help="scale the enrolment clips and the streams by this much (a quieter microphone; -20: 10x)")
    p.add_argument("--no-level", action="store_true",
                   help="without the model's input level normalization (level.json), as before 2026-12-06")
    p.add_argument("--noise-floor-db", type=float, default=None,
                   help="add white noise at this RMS level in dBFS to enrolment clips and streams, after the gain "
                        "(a microphone's self-noise; the synthesized streams are digital silence between words)")
    p.add_argument("--enroll-far-field", action="store_true",
                   help="enrol with far-field copies of the clips too (`demo kws --enroll-far-field`); results in "
                        "result_..._far[_TAG].json")
    p.add_argument("--tag", default="", help="appended to the result files' names (a variant of the model)")
    p.add_argument("--enroll-text", action="store_true",
                   help="add 24 synthetic renderings of each keyword's name to its enrolment clips (`demo kws "
                        "--enroll-text`); results in result_..._text[_TAG].json")
    p.add_argument("--engines", default="espeak,hibari,pico",
                   help="engines of the enrolment voices and of the keyword events' voices (other speakers)")
    args = p.parse_args()
    kws, work = args.keywords.split(","), args.work
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    work.mkdir(parents=True, exist_ok=True)
    made = work / "engines.json"  # folders from before the option: the default engines
    if made.exists() and json.loads(made.read_text()) != list(engines) or (
            not made.exists() and (work / "enroll").exists() and engines != ("espeak", "hibari", "pico")):
        raise SystemExit(f"{work}: made with other --engines; use another work folder")
    made.write_text(json.dumps(list(engines)))
    enroll = work / "enroll"
    if not (enroll / "synth_report.json").exists():
        synth_speech_commands(enroll, words=kws, per_word=3, seed=args.enroll_seed, noise_seconds=1.0, progress=False,
                              engines=engines)
    found = sorted(d.name for d in enroll.iterdir() if d.is_dir() and not d.name.startswith("_"))
    if found != sorted(kws):
        raise SystemExit(f"{enroll}: holds enrolment clips of {found}, not of --keywords {args.keywords}; use another "
                         "work folder")
    tag = ("_stream" if args.stream else "") + (f"_gain{args.gain_db:g}" if args.gain_db else "") + \
        ("_nolevel" if args.no_level else "") + (f"_floor{args.noise_floor_db:g}" if args.noise_floor_db is not None
                                                 else "") + ("_text" if args.enroll_text else "") + \
        ("_far" if args.enroll_far_field else "") + (f"_{args.tag}" if args.tag else "")
    gain, floor_rng = 10 ** (args.gain_db / 20), np.random.default_rng(12345)

    def mic(x: np.ndarray) -> np.ndarray:  # the level, then the microphone's own noise
        x = gain * x
        if args.noise_floor_db is not None:
            x = x + floor_rng.normal(0, 10 ** (args.noise_floor_db / 20), len(x))
        return np.clip(x, -1, 1).astype(np.float32)

    m = KWSModel(args.model_dir, keywords_file=work / f"keywords{tag}.json", mode="stream" if args.stream else "window")
    if args.no_level:
        m.level = None
    m.forget()
    for w in kws:
        rendered = []
        if args.enroll_text:
            from speechedge.synth.engines import render_keyword

            rendered = render_keyword(w)  # synthesized at enrolment, not through the microphone (as the demo)
        m.enroll(w, [mic(read_audio(f, sample_rate=16000)[0]) for f in sorted((enroll / w).glob("*.wav"))],
                 rendered=rendered, far_field=args.enroll_far_field)
    minutes = 60 * args.hours
    pos, neg = synth_streams(work / "streams", kws, seed=args.seed, speech_minutes=minutes * 5 / 6,
                             noise_minutes=minutes / 12, music_minutes=minutes / 12, progress=False,
                             engines=engines)
    streams = load_streams(pos, positive=True), load_streams(neg, positive=False)
    for s in streams[0] + streams[1]:
        s.audio = mic(s.audio)
    r = evaluate_streams(m, *streams, progress=False)
    r["gain_db"], r["noise_floor_db"] = args.gain_db, args.noise_floor_db
    r["level"] = None if m.level is None else m.level.to_dict()
    det_png(r, work / f"det{tag}.png")
    (work / f"result{tag}.json").write_text(json.dumps(r, indent=2))
    print(format_summary(r))
