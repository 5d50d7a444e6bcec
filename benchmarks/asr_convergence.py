"""Why the CTC teacher sat on its blank plateau, and what gets it off: validation CER against training steps.

    python benchmarks/asr_convergence.py --work work/asr --out benchmarks/results/asr_convergence

Trains the tiny full-context teacher (``asr_teacher_tiny.toml``) on the synthesized 1 h corpus of
``asr_distill_evidence.py`` (synthesized when missing) in several variants, each its own experiment under
``WORK/convergence/`` (finished ones are reused, unfinished ones resume), and writes ``convergence.json``
(val CER / train CTC loss every 100 steps, seconds per step) and ``val_cer.png`` to ``--out``.

Variants: the old recipe without the curriculum at the config's learning rate (3e-3), at 1e-3 and 5e-4, with
batches of 4,000 instead of 12,000 frames, and the recipe as it is now (200 steps of 1-4 word spans cut with the
word alignments, then whole utterances; 1,200 steps).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "speechedge" / "recipes" / "configs" / "asr_teacher_tiny.toml"
VARIANTS = {  # name -> (label, overrides)
    "plateau_lr3e-3": ("no curriculum, lr 3e-3 (the old recipe)", ["crop_steps=0", "steps=400", "warmup_steps=100"]),
    "plateau_lr1e-3": ("no curriculum, lr 1e-3", ["crop_steps=0", "steps=400", "warmup_steps=50", "lr=0.001"]),
    "plateau_lr5e-4": ("no curriculum, lr 5e-4", ["crop_steps=0", "steps=400", "warmup_steps=50", "lr=0.0005"]),
    "plateau_batch4k": ("no curriculum, 4,000-frame batches", ["crop_steps=0", "steps=600", "warmup_steps=100",
                                                               "batch_frames=4000"]),
    "curriculum": ("200 steps of 1-4 word spans, then utterances (now)", ["steps=1200"]),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default="work/asr")
    p.add_argument("--out", default="benchmarks/results/asr_convergence")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = p.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from speechedge.data_prep.librispeech import prepare_librispeech
    from speechedge.io import atomic_savefig, atomic_write_text
    from speechedge.recipes.asr import ASRConfig, train
    from speechedge.synth.corpora import synth_librispeech
    from speechedge.training.config import load_config

    work, out = Path(args.work), Path(args.out)
    corpus, manifests = work / "LibriSpeech", work / "manifests"
    if not (corpus / "synth_report.json").exists():
        synth_librispeech(corpus, hours=1.0, num_speakers=24, seed=0)
    if not (manifests / "librispeech_test-clean.jsonl.gz").exists():
        prepare_librispeech(corpus, manifests)
    data = [f"train_manifest={manifests / 'librispeech_train-clean-100.jsonl.gz'}",
            f"val_manifest={manifests / 'librispeech_dev-clean.jsonl.gz'}",
            f"alignments={corpus / 'alignments' / 'train-clean-100'}", "eval_every=100"]
    results = {}
    for name in args.variants:
        label, sets = VARIANTS[name]
        cfg = load_config(ASRConfig, CONFIG, data + sets)
        exp = work / "convergence" / name
        metrics = exp / "metrics.jsonl"
        rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()] if metrics.exists() else []
        if not rows or rows[-1]["step"] < cfg.steps:
            train(cfg, exp)
            rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
        results[name] = {"label": label, "overrides": sets, "steps": [r["step"] for r in rows],
                         "val_cer": [round(r["val_cer"], 2) for r in rows],
                         "train_ctc": [round(r["train_ctc"], 3) for r in rows],
                         "s_per_step": round(sum(r["s_per_step"] for r in rows) / len(rows), 3)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "convergence.json", json.dumps(results, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results.values():
        ax.plot(r["steps"], r["val_cer"], marker="o", label=r["label"])
    ax.set(xlabel="training step (12,000-frame batches unless noted)", ylabel="dev-clean CER %", ylim=(0, 105),
           title="tiny CTC teacher on 0.68 h of synthesized speech")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    atomic_savefig(fig, out / "val_cer.png")
    print("| variant | " + " | ".join(f"step {s}" for s in (200, 400, 600, 1200)) + " | s/step |")
    print("|---|---|---|---|---|---|")
    for r in results.values():
        cer = dict(zip(r["steps"], r["val_cer"]))
        print(f"| {r['label']} | " + " | ".join(f"{cer[s]:.1f}" if s in cer else "" for s in (200, 400, 600, 1200))
              + f" | {r['s_per_step']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
