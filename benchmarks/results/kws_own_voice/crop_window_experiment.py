"""Scratch: does scoring each keyword on a window cropped to the keyword's enrolled length (silence outside) find
keywords said inside sentences? Usage: crop.py MODEL WORK MARGIN_S [--stream-test-alone]"""
import sys
from pathlib import Path
import numpy as np
import speechedge.apps.longform as lf
from speechedge.runtime.kws import StreamingKWS, KWSModel
from speechedge.audio import read_audio, trim_silence
from speechedge.apps.longform import evaluate_streams, load_streams, operating_point, pooled_det

model_dir, work, margin = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
MODE = sys.argv[4] if len(sys.argv) > 4 else "crop"
SM, AG = (int(v) for v in (sys.argv[5] if len(sys.argv) > 5 else "1,1").split(","))

class CropKWS(StreamingKWS):
    lengths = {}
    def _evaluate(self, frames_done, y=None):
        m = self.model
        win = self.leveled(self.ring)
        floor = np.log(m.frontend.log_floor)
        T = win.shape[1]
        scores = {}
        full = None
        for k, L in self.lengths.items():
            a = max(0, (T - L) // 2); b = min(T, a + L)
            x = np.full_like(win, floor); x[:, a:b] = win[:, a:b]
            e = m.run_features(x)
            s = m.detection_scores(e)[k]
            if MODE == "max":
                if full is None:
                    full = m.detection_scores(m.run_features(win))
                s = max(s, full[k])
            scores[k] = s
        self.windows += 1
        self.history = (self.history + [scores])[-self.smooth:]
        sm = {k: float(np.mean([h.get(k, 0.0) for h in self.history])) for k in scores}
        fe = m.frontend
        now = ((frames_done - 1) * fe.hop_length + fe.n_fft // 2) / fe.sample_rate
        if self.trace is not None:
            self.trace.append((now, sm, scores))  # (time, smoothed, raw) since stop 36
        return None

lf.StreamingKWS = CropKWS
per = []
for folder in sorted(work.glob("spk_*")):
    m = KWSModel(model_dir, keywords_file=Path("/tmp/crop_kw.json"), mode="window")
    m.forget()
    lens = {}
    for k in ("dolphin", "lantern"):
        clips = [read_audio(f, sample_rate=16000)[0] for f in sorted((folder / "enroll").glob(f"{k}_*.wav"))]
        m.enroll(k, clips)
        voiced = max(len(trim_silence(c)) for c in clips) / 16000
        lens[k] = int(round((voiced + 2 * margin) * 100))
    CropKWS.lengths = lens
    streams = load_streams(folder / "stream", positive=True)
    r = evaluate_streams(m, streams, [], progress=False, smooth=SM, agree=AG)
    per.append(r)
    print(folder.name, lens, {t: (q["frr"], round(q["fa_per_hour"], 2)) if q else None for t, q in r["operating_points"].items()}, flush=True)
det = pooled_det([r["det"] for r in per], [r["events"] for r in per], [r["hours"] for r in per])
print("pooled", {t: operating_point(det, t) for t in (0.5, 1, 2, 5)})
for th in (0.5, 0.6, 0.67, 0.7, 0.8):
    q = min(det, key=lambda q: abs(q["threshold"] - th)); print(th, round(q["frr"], 3), round(q["fa_per_hour"], 2))
