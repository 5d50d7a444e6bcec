"""The decision table for a candidate against the shipped model (stop 36): 5-shot on the three test sets and the
window detector's long-form FRR at <= 0.5 / 1 / 2 FA/h, pooled A-D and per set (A-E).

    python benchmarks/results/kws_pretrained_v4/compare.py nbk nbk2
"""
import json
import sys
from pathlib import Path

W, R = Path("/work/runs/kws_v2"), Path("/work/runs")
SETS = {"A": "longform", "B": "longform_b", "C": "longform_c", "D": "longform_d", "E": "longform_e"}


def row(tag: str) -> dict:
    r = json.loads((W / f"results_{tag}.json").read_text()) if (W / f"results_{tag}.json").exists() else {}
    out = {}
    for k, name in (("test_voices", "5-shot held-out"), ("extra_kokoro_82m", "5-shot Kokoro"), ("extra_flite", "5-shot Flite")):
        if k in r:
            s = r[k]["5shot"]
            out[name] = f"{s['acc']:.3f} / {s['auroc']:.3f}"
    p = W / f"pooled_abcd_{tag}.json"
    if p.exists():
        q = json.loads(p.read_text())["operating_points"]["pooled"]
        out["A-D pooled"] = " / ".join(f"{q[k]['frr']:.2f}" for k in ("0.5", "1", "2"))
    for s, d in SETS.items():
        f = R / d / f"result_{tag}.json"
        if f.exists():
            op = json.loads(f.read_text())["operating_points"]
            out[s] = " / ".join(f"{op[k]['frr']:.2f}" if op.get(k) else "-" for k in ("0.5", "1", "2"))
    return out


if __name__ == "__main__":
    rows = {t: row(t) for t in sys.argv[1:]}
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    print("| | " + " | ".join(rows) + " |\n|---|" + "---:|" * len(rows))
    for k in keys:
        print(f"| {k} | " + " | ".join(r.get(k, "") for r in rows.values()) + " |")
