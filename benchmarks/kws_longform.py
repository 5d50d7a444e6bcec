"""Long-form detection of two custom keywords with an exported model: enrol 3 synthesized clips each (espeak,
hibari, Pico speakers), then FRR at 0.5/1/2 FA/h over 2 h of synthesized negatives (other voices' speech,
noise, music) and the DET curve.

    python benchmarks/kws_longform.py speechedge/pretrained/kws_fewshot work/longform [HOURS] [--stream]
    python benchmarks/kws_longform.py MODEL work/longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9

``--stream`` detects with the streaming step model (``KWSModel(mode="stream")``) instead of the window model.
The default keywords and seeds are the README's test set A; the second line is its test set B (other keywords,
enrolment voices, stream voices and texts). Neither shares anything with the development streams of
``benchmarks/kws_calibrate_detector.py`` (``lemonade``, ``november``, seeds 505 / 5).

Then `python benchmarks/kws_detector.py work/longform` compares the decision rules on the same streams.
"""
import argparse
import json
from pathlib import Path

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
    args = p.parse_args()
    kws, work = args.keywords.split(","), args.work
    enroll = work / "enroll"
    if not (enroll / "synth_report.json").exists():
        synth_speech_commands(enroll, words=kws, per_word=3, seed=args.enroll_seed, noise_seconds=1.0, progress=False,
                              engines=("espeak", "hibari", "pico"))
    found = sorted(d.name for d in enroll.iterdir() if d.is_dir() and not d.name.startswith("_"))
    if found != sorted(kws):
        raise SystemExit(f"{enroll}: holds enrolment clips of {found}, not of --keywords {args.keywords}; use another "
                         "work folder")
    m = KWSModel(args.model_dir, keywords_file=work / "keywords.json", mode="stream" if args.stream else "window")
    m.forget()
    for w in kws:
        m.enroll(w, [read_audio(f, sample_rate=16000)[0] for f in sorted((enroll / w).glob("*.wav"))])
    minutes = 60 * args.hours
    pos, neg = synth_streams(work / "streams", kws, seed=args.seed, speech_minutes=minutes * 5 / 6,
                             noise_minutes=minutes / 12, music_minutes=minutes / 12, progress=False)
    r = evaluate_streams(m, load_streams(pos, positive=True), load_streams(neg, positive=False), progress=False)
    tag = "_stream" if args.stream else ""
    det_png(r, work / f"det{tag}.png")
    (work / f"result{tag}.json").write_text(json.dumps(r, indent=2))
    print(format_summary(r))
