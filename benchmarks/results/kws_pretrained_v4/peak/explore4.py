import numpy as np, glob
from rules import load, evaluate
dev = [load(p.split("/")[-1].rsplit("_nbk", 1)[0]) for p in sorted(glob.glob("nbk/dev_*_nbk.npz"))]
for delta in np.arange(0.10, 0.31, 0.01):
    d = evaluate(dev, 4, 4, 0.695, 0.695 + delta)
    print(f"{delta:.2f}: dev {d[0]:.4f} at {d[1]:.3f}", flush=True)
