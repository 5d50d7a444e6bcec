# stop 36 (rule diagnostics): run from a folder holding nbk/ (traces.py MODEL nbk nbk), then explore2-4.py
"""Evaluate detector firing rules on cached raw traces (traces.py): DET per set, pooled."""
import json, sys
from pathlib import Path
import numpy as np
from speechedge.apps.longform import _match
from speechedge.runtime.kws import Detection, agreement_streak

D = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("nbk"); tag = sys.argv[2] if len(sys.argv) > 2 else "nbk"


def load(name):
    z = np.load(D / f"{name}_{tag}.npz"); meta = json.loads((D / f"{name}_{tag}.json").read_text())
    out = []
    for s, info in meta.items():
        t = z[f"{s}|t"]
        kws = {k.split("|", 1)[1]: z[k] for k in z.files if k.startswith(s + "|") and not k.endswith("|t")}
        out.append((t, kws, info["events"]))
    return out


def causal_mean(x, n):
    if n == 1:
        return x
    c = np.cumsum(np.concatenate([[0.0], x]))
    i = np.arange(len(x)); lo = np.maximum(0, i - n + 1)
    return (c[i + 1] - c[lo]) / (i + 1 - lo)


def fire(t, raw, s, a, T, T1=None, refr=1.0):
    names = list(raw)
    R = np.stack([raw[k] for k in names], 1)
    S = np.stack([causal_mean(raw[k], s) for k in names], 1)
    bs, vs = S.argmax(1), S.max(1)
    br, vr = R.argmax(1), R.max(1)
    out, last, streak = [], -1e9, (None, 0)
    for i in range(len(t)):
        streak = agreement_streak(streak, bs[i], vs[i] >= T)
        k = None
        if streak[1] >= a:
            k = bs[i]
        elif T1 is not None and vr[i] >= T1:
            k = br[i]
        if k is not None and t[i] - last >= refr:
            out.append(Detection(names[k], float(t[i]), 0.0)); last = t[i]
    return out


def evaluate(sets, s, a, T, T1=None):
    hits = fas = ev = 0; hours = 0.0
    for streams in sets:
        for t, raw, events in streams:
            h, f, _ = _match(fire(t, raw, s, a, T, T1), events, 1.0)
            hits, fas, ev = hits + h, fas + f, ev + len(events)
            hours += (t[-1] - t[0] + 0.1) / 3600 if len(t) else 0
    return 1 - hits / max(ev, 1), fas / hours, ev, hours
