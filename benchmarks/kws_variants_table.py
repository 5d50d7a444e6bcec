"""The table of the pretrained-model variants in a `benchmarks/kws_pretrained.py` work folder.

    python benchmarks/kws_variants_table.py work/pretrained_gpu [--copy benchmarks/results/kws_pretrained_gpu]

One row per ``results{tag}.json`` (each a training variant on the same corpus): steps, training wall time,
1-/5-shot accuracy and 5-shot AUROC (95% CIs) on the held-out espeak-ng/hibari voices and on SVOX Pico (an
engine never heard in training), all on the 10 held-out words. ``--copy`` keeps the JSON files and the table.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def table(work: Path) -> str:
    lines = ["| variant | tau | episodes over | augmentation | steps | train min | held-out voices 1-shot acc | "
             "5-shot acc | 5-shot AUROC | Pico 1-shot acc | 5-shot acc | 5-shot AUROC |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for f in sorted(work.glob("results*.json")):
        r = json.loads(f.read_text())
        tag = f.stem[len("results"):] or "(none)"
        cfg_path = work / f"exp{f.stem[len('results'):]}" / "config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        episodes = "splitGSC + aux words" if "gsc+aux" in str(cfg.get("train_manifest", "")) else "splitGSC words"
        aug = cfg.get("augment", {})
        full = "full" if aug.get("babble_prob", 0) > 0 else "light"
        cells = []
        for name in ("test_voices", "test_pico"):
            m = r[name]
            cells += [f"{m['1shot']['acc']:.3f} +-{m['1shot']['acc_ci95']:.3f}",
                      f"{m['5shot']['acc']:.3f} +-{m['5shot']['acc_ci95']:.3f}",
                      f"{m['5shot']['auroc']:.3f} +-{m['5shot']['auroc_ci95']:.3f}"]
        t = r["train"]
        lines.append(f"| {tag} | {cfg.get('tau', '?')} | {episodes} | {full} | {t['step']} | "
                     f"{t.get('_wall_s', 0) / 60:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work", type=Path)
    p.add_argument("--copy", type=Path, default=None)
    args = p.parse_args(argv)
    md = table(args.work)
    print(md)
    if args.copy:
        args.copy.mkdir(parents=True, exist_ok=True)
        for f in args.work.glob("results*.json"):
            shutil.copy(f, args.copy / f.name)
        (args.copy / "table.md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
