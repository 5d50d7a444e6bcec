import numpy as np, glob
from rules import load, evaluate
dev = [load(p.split("/")[-1].rsplit("_nbk", 1)[0]) for p in sorted(glob.glob("nbk/dev_*_nbk.npz"))]
test = {k: load(k) for k in "ABCDE"}; first = load("first"); abcd = [test[k] for k in "ABCD"]
for delta in (0.16, 0.18, 0.2, 0.22, 0.25, 0.3):
    T = 0.695
    d = evaluate(dev, 4, 4, T, T + delta); a = evaluate(abcd, 4, 4, T, T + delta); f = evaluate([first], 4, 4, T, T + delta)
    # A-D at <=1 FA/h (test operating point)
    pts = [(t, *evaluate(abcd, 4, 4, t, t + delta)[:2]) for t in np.arange(0.6, 0.8, 0.005)]
    b = min([p for p in pts if p[2] <= 1.0], key=lambda p: (p[1], -p[0]))
    print(f"delta {delta}: dev {d[0]:.3f} at {d[1]:.2f}; A-D {a[0]:.3f} at {a[1]:.2f} (best <=1 FA/h {b[1]:.3f} at T {b[0]:.3f}); first {round((1-f[0])*f[2])}/60 at {f[1]:.1f} FA/h ({f[3]:.2f} h)", flush=True)
pts = [(t, *evaluate(abcd, 4, 4, t)[:2]) for t in np.arange(0.6, 0.8, 0.005)]
b = min([p for p in pts if p[2] <= 1.0], key=lambda p: (p[1], -p[0])); print("no peak: A-D best <=1 FA/h", b)
