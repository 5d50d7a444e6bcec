"""The seed paper's few-shot KWS claims, re-measured over training seeds with 95% CIs.

    python benchmarks/kws_claims.py --work work/pretrained [--seeds 0,1,2] [--steps 3000] [--jobs 1]
        [--variants dproto_lw,dproto,proto_lw,bc8] [--threads 2] [--set device=cuda] [--episodes 1000]
        [--voices 200 --aux-words 500 --aux-voices 100]  (the corpora, as benchmarks/kws_pretrained.py makes them)

One training run per (variant, seed) through ``benchmarks/kws_pretrained.py --stop-after eval`` on the corpora
of ``--work`` (made there on first use, shared by every run; only the training seed differs between seeds),
each evaluated 5-way 1-/5-shot on the 10 held-out keywords by held-out speakers of the training engines and by
SVOX Pico (never trained on), the same episodes for every model. Variants (the recipe's config
``kws_fewshot_voices.toml`` otherwise; episodes over the 15 splitGSC training words, as in the paper):

- ``dproto_lw``: BC-ResNet-1, D-ProtoNet + cross-entropy on the LibriWord-style auxiliary words (weight 0.5);
- ``dproto``: the same without the auxiliary words (``aux_weight = 0``);
- ``proto_lw``: ProtoNet (no dummy prototype; open-set score: the max softmax) + auxiliary words;
- ``bc8``: BC-ResNet-8 (``tau = 8``), D-ProtoNet, no auxiliary words.

Claims (differences paired by seed; Student's t over seeds):

1. LibriWord supervision raises 5-shot accuracy (paper: about +16% relative): ``dproto_lw - dproto``;
2. D-ProtoNet's open-set AUROC beats ProtoNet's: ``dproto_lw - proto_lw``;
3. BC-ResNet-1 with LibriWord supervision is as good as BC-ResNet-8 without: ``dproto_lw - bc8``.

Resumable: finished runs and evaluations are reused, a killed run resumes from its checkpoint. ``--jobs N`` runs N
trainings at once as separate processes (a GPU machine with many cores); each keeps ``--threads``. Writes
``claims.json`` and ``claims.md`` into ``--work`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

VARIANTS = {
    "dproto_lw": ("BC-ResNet-1, D-ProtoNet + LibriWord", ["method=dprotonet", "aux_weight=0.5", "tau=1"]),
    "dproto": ("BC-ResNet-1, D-ProtoNet", ["method=dprotonet", "aux_weight=0", "libriword_manifest=", "tau=1"]),
    "proto_lw": ("BC-ResNet-1, ProtoNet + LibriWord", ["method=protonet", "aux_weight=0.5", "tau=1"]),
    "bc8": ("BC-ResNet-8, D-ProtoNet", ["method=dprotonet", "aux_weight=0", "libriword_manifest=", "tau=8"]),
}
CLAIMS = (  # (name, a, b, metric, what the paper says)
    ("LibriWord supervision, 5-shot accuracy", "dproto_lw", "dproto", "acc", "about +16% relative"),
    ("D-ProtoNet vs ProtoNet, 5-shot AUROC", "dproto_lw", "proto_lw", "auroc", "D-ProtoNet higher"),
    ("BC-ResNet-1 + LibriWord vs BC-ResNet-8 without, 5-shot accuracy", "dproto_lw", "bc8", "acc", "about equal"),
)
TESTS = (("test_voices", "held-out voices"), ("test_pico", "Pico (unseen engine)"))


def ci95(values) -> float:
    """Half-width of the 95% Student's t interval of the mean over seeds (nan for one seed)."""
    from speechedge.models.fewshot import mean_ci95

    return mean_ci95(values, student_t=True)[1]


def _pretrained(args) -> list[str]:
    """benchmarks/kws_pretrained.py on the work folder and its corpora."""
    return [sys.executable, str(Path(__file__).with_name("kws_pretrained.py")), "--work", str(args.work),
            "--voices", str(args.voices), "--aux-words", str(args.aux_words), "--aux-voices", str(args.aux_voices)]


def tag(variant: str, seed: int) -> str:
    return f"_claims_{variant}_s{seed}"


def run_one(args, variant: str, seed: int) -> Path:
    """Train and evaluate one (variant, seed) in its own process; its results file."""
    out = args.work / f"results{tag(variant, seed)}.json"
    if out.exists():
        return out
    cmd = [*_pretrained(args), "--steps", str(args.steps), "--threads", str(args.threads), "--episodes", str(args.episodes),
           "--stop-after", "eval", "--tag", tag(variant, seed), "--set", f"seed={seed}",
           *(x for s in VARIANTS[variant][1] for x in ("--set", s)), *(x for s in args.set for x in ("--set", s))]
    log = args.work / f"{tag(variant, seed).lstrip('_')}.log"
    with log.open("a") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"{variant} seed {seed} failed (exit {proc.returncode}); see {log}")
    return out


def summarise(work: Path, variants: list[str], seeds: list[int]) -> dict:
    res = {v: {s: json.loads((work / f"results{tag(v, s)}.json").read_text()) for s in seeds} for v in variants}
    out: dict = {"seeds": seeds, "variants": {}, "claims": []}
    for v in variants:
        row = {"label": VARIANTS[v][0]}
        for test, _ in TESTS:
            for shot in ("1shot", "5shot"):
                for metric in ("acc", "auroc"):
                    vals = [res[v][s][test][shot][metric] for s in seeds]
                    row[f"{test}/{shot}/{metric}"] = {"mean": float(np.mean(vals)), "ci95": ci95(vals), "per_seed": vals}
        row["train_min"] = float(np.mean([res[v][s]["train"].get("_wall_s", 0) for s in seeds]) / 60)
        out["variants"][v] = row
    for name, a, b, metric, paper in CLAIMS:
        if a not in variants or b not in variants:
            continue
        for test, _ in TESTS:
            key = f"{test}/5shot/{metric}"
            diffs = [res[a][s][test]["5shot"][metric] - res[b][s][test]["5shot"][metric] for s in seeds]
            base = float(np.mean([res[b][s][test]["5shot"][metric] for s in seeds]))
            out["claims"].append({"claim": name, "test": test, "a": a, "b": b, "metric": key, "paper": paper,
                                  "diff": float(np.mean(diffs)), "ci95": ci95(diffs), "per_seed": diffs,
                                  "relative": float(np.mean(diffs)) / base if base else None})
    return out


def table(summary: dict) -> str:
    n = len(summary["seeds"])
    lines = [f"Mean over {n} training seeds +- 95% CI (Student's t); 5-way, 10 held-out keywords.", "",
             "| model | " + " | ".join(f"{label} 5-shot acc | AUROC" for _, label in TESTS) + " | train min |",
             "|---|" + "---:|---:|" * len(TESTS) + "---:|"]
    for v, row in summary["variants"].items():
        cells = []
        for test, _ in TESTS:
            for metric in ("acc", "auroc"):
                c = row[f"{test}/5shot/{metric}"]
                cells.append(f"{c['mean']:.3f} +-{c['ci95']:.3f}")
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {row['train_min']:.1f} |")
    lines += ["", "| claim | test | difference (paired by seed) | relative | per seed | paper |", "|---|---|---:|---:|---|---|"]
    for c in summary["claims"]:
        per = ", ".join(f"{d:+.3f}" for d in c["per_seed"])
        rel = f"{100 * c['relative']:+.1f}%" if c["relative"] is not None else ""
        lines.append(f"| {c['claim']} | {dict(TESTS)[c['test']]} | {c['diff']:+.3f} +-{c['ci95']:.3f} | {rel} | "
                     f"{per} | {c['paper']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="work/pretrained", type=Path)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--voices", type=int, default=200)
    p.add_argument("--aux-words", type=int, default=500)
    p.add_argument("--aux-voices", type=int, default=100)
    p.add_argument("--jobs", type=int, default=1, help="trainings run at once (separate processes)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every run (e.g. device=cuda)")
    args = p.parse_args(argv)
    args.work = args.work.resolve()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not seeds or args.jobs < 1:
        raise SystemExit(f"--variants must be among {list(VARIANTS)} (got {unknown}), --seeds non-empty, --jobs >= 1")
    # the shared corpora first, in this process, so parallel runs never build them at once
    data = subprocess.run([*_pretrained(args), "--stop-after", "data"])
    if data.returncode != 0:
        return data.returncode
    todo = [(v, s) for s in seeds for v in variants]
    with ThreadPoolExecutor(args.jobs) as pool:
        for f in [pool.submit(run_one, args, v, s) for v, s in todo]:
            f.result()
    summary = summarise(args.work, variants, seeds)
    summary["command"] = " ".join(["python", "benchmarks/kws_claims.py", *(argv if argv is not None else sys.argv[1:])])
    summary["steps"] = args.steps
    (args.work / "claims.json").write_text(json.dumps(summary, indent=2))
    md = table(summary)
    (args.work / "claims.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
