"""Long-form detection of two custom keywords with an exported model: enrol 3 synthesized clips each (espeak,
hibari, Pico speakers), then FRR at 0.5/1/2 FA/h over 2 h of synthesized negatives (other voices' speech,
noise, music) and the DET curve.

    python benchmarks/kws_longform.py speechedge/pretrained/kws_fewshot work/longform [HOURS] [--stream]

``--stream`` detects with the streaming step model (``KWSModel(mode="stream")``) instead of the window model.

Then `python benchmarks/kws_detector.py work/longform` compares the decision rules on the same streams.
"""
import json, sys
from pathlib import Path
from speechedge.apps.longform import evaluate_streams, load_streams, synth_streams, det_png, format_summary
from speechedge.audio import read_audio
from speechedge.runtime import KWSModel
from speechedge.synth.corpora import synth_speech_commands

if __name__ == '__main__':
    stream = "--stream" in sys.argv
    argv = [a for a in sys.argv if a != "--stream"]
    model_dir, work = Path(argv[1]), Path(argv[2])
    hours = float(argv[3]) if len(argv) > 3 else 2.0
    kws = ["pineapple", "jupiter"]
    enroll = work / "enroll"
    if not (enroll / "synth_report.json").exists():
        synth_speech_commands(enroll, words=kws, per_word=3, seed=500, noise_seconds=1.0, progress=False,
                              engines=("espeak", "hibari", "pico"))
    m = KWSModel(model_dir, keywords_file=work / "keywords.json", mode="stream" if stream else "window")
    m.forget()
    for w in kws:
        m.enroll(w, [read_audio(p, sample_rate=16000)[0] for p in sorted((enroll / w).glob("*.wav"))])
    minutes = 60 * hours
    pos, neg = synth_streams(work / "streams", kws, seed=0, speech_minutes=minutes * 5 / 6, noise_minutes=minutes / 12,
                             music_minutes=minutes / 12, progress=False)
    r = evaluate_streams(m, load_streams(pos, positive=True), load_streams(neg, positive=False), progress=False)
    tag = "_stream" if stream else ""
    det_png(r, work / f"det{tag}.png")
    (work / f"result{tag}.json").write_text(json.dumps(r, indent=2))
    print(format_summary(r))
