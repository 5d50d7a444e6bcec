import numpy as np
from rules import load, evaluate
import glob
dev = [load(p.split("/")[-1].rsplit("_nbk", 1)[0]) for p in sorted(glob.glob("nbk/dev_*_nbk.npz"))]
test = {k: load(k) for k in "ABCDE"}
first = load("first")
abcd = [test[k] for k in "ABCD"]
print("| rule | dev T at <=0.5 FA/h, FRR, FA/h | A-D FRR, FA/h at that T | E | first word found of 60, FA/h on own speech |")
for s, a, delta in ((4, 4, None), (4, 4, 0.10), (4, 4, 0.125), (4, 4, 0.15), (4, 4, 0.2), (3, 3, 0.15), (2, 2, None), (1, 1, None)):
    pts = []
    for T in np.arange(0.60, 0.95, 0.005):
        frr, fa, _, _ = evaluate(dev, s, a, T, None if delta is None else T + delta)
        pts.append((T, frr, fa))
    ok = [p for p in pts if p[2] <= 0.5]
    T, dfrr, dfa = min(ok, key=lambda p: (p[1], -p[0]))
    T1 = None if delta is None else T + delta
    afrr, afa, _, _ = evaluate(abcd, s, a, T, T1)
    efrr, efa, _, _ = evaluate([test["E"]], s, a, T, T1)
    ffrr, ffa, fev, _ = evaluate([first], s, a, T, T1)
    print(f"| s{s} a{a}" + (f" + peak T+{delta}" if delta else "") + f" | {T:.3f}: {dfrr:.3f} at {dfa:.2f} | {afrr:.3f} at {afa:.2f} | {efrr:.2f} at {efa:.2f} | {round((1-ffrr)*fev)} at {ffa:.1f} |", flush=True)
