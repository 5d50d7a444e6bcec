"""Raw per-window detection scores (no smoothing) of the window detector for every stream of the dev pairs,
long-form A-E and the first-word own-voice set, for one model; cached per set."""
import json, sys
from pathlib import Path
import numpy as np
from speechedge.apps.longform import load_streams, score_trace
from speechedge.audio import read_audio
from speechedge.runtime.kws import KWSModel, StreamingKWS

E = Path(sys.argv[1]); tag = sys.argv[2]; out = Path(sys.argv[3]); out.mkdir(exist_ok=True)
R = Path("/work/runs")
DEV = ["lemonade_november", "butterfly_kangaroo", "sunflower_volcano", "elephant_umbrella", "dinosaur_helicopter",
       "giraffe_lighthouse"]


def run(name, m, streams):
    f = out / f"{name}_{tag}.npz"
    if f.exists():
        return
    det = StreamingKWS(m, smooth=1, agree=1)
    z, meta = {}, {}
    for s in streams:
        t, sc, _ = score_trace(det, s.audio)  # smooth=1: smoothed = raw
        z[f"{s.name}|t"] = t
        for k, v in sc.items():
            z[f"{s.name}|{k}"] = v
        meta[s.name] = {"events": s.events, "positive": bool(s.events) or s.name.startswith("pos")}
    np.savez(f, **z)
    (out / f"{name}_{tag}.json").write_text(json.dumps(meta))
    print(name, len(streams), flush=True)


def longform_like(name, work, keywords_file, words=None, clips=None):
    m = KWSModel(E, keywords_file=keywords_file)
    if clips is not None:
        m.forget()
        for w, c in clips.items():
            m.enroll(w, c, save=False)
    pos = load_streams(work / "streams" / "positives", positive=True)
    neg = load_streams(work / "streams" / "negatives", positive=False)
    for s in pos:
        s.name = "pos/" + s.name
    for s in neg:
        s.name = "neg/" + s.name
    run(name, m, pos + neg)


for d in DEV:
    work = R / "kws_dev3" / d
    enroll = work / "enroll"
    clips = {w: [read_audio(f, sample_rate=16000)[0] for f in sorted((enroll / w).glob("*.wav"))] for w in d.split("_")}
    longform_like("dev_" + d, work, out / "none.json", clips=clips)
for s, d in (("A", "longform"), ("B", "longform_b"), ("C", "longform_c"), ("D", "longform_d"), ("E", "longform_e")):
    kf = R / d / f"keywords_{tag}.json"
    if kf.exists():
        longform_like(s, R / d, kf)
# first word: each speaker's own enrolment and stream
f = out / f"first_{tag}.npz"
if not f.exists():
    z, meta = {}, {}
    for spk in sorted((R / "own_voice_first").glob("spk_*")):
        m = KWSModel(E, keywords_file=spk / f"keywords_window{tag}.json")
        det = StreamingKWS(m, smooth=1, agree=1)
        wav = next((spk / "stream").glob("*.wav"))
        ev = json.loads(next((spk / "stream").glob("*.json")).read_text())["events"]
        t, sc, _ = score_trace(det, read_audio(wav, sample_rate=16000)[0])
        z[f"{spk.name}|t"] = t
        for k, v in sc.items():
            z[f"{spk.name}|{k}"] = v
        meta[spk.name] = {"events": ev, "positive": True}
    np.savez(f, **z)
    (out / f"first_{tag}.json").write_text(json.dumps(meta))
    print("first", flush=True)
