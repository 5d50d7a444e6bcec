"""Does adding another synthesizer's voices to training help on an engine the model never hears?

    python benchmarks/kws_engine_ablation.py --base-work work/pretrained --base-exp exp_t1_aux \
        --add kokoro=work/kokoro_train --test kokoro=work/kokoro_test --work work/engine_ablation [--steps 1000]

A controlled continuation: two fine-tunes of the same trained few-shot model (``--base-work/--base-exp``, made by
``benchmarks/kws_pretrained.py``) with the same config, steps, seed and learning rate; they differ only in the
training clips:

- ``same``: the base run's own training manifests (its episode words and its LibriWord-style auxiliary words);
- ``added``: the same plus the train-split clips of each ``--add`` corpus (a Speech Commands-layout folder of
  ``speechedge synth speech-commands``, e.g. Kokoro-82M voices), in the episodes and, for the auxiliary words
  the base vocabulary has, in the cross-entropy head's data.

Both (and the base model) are evaluated, 5-way 1/5-shot with 1,000 episodes on the 10 held-out keywords, on the
base run's held-out voices, on SVOX Pico (heard by none of them) and on each ``--test`` folder (e.g. Kokoro
voices that are not the training ones). Extra steps alone change a model; the ``same`` run measures that part.
Writes ``results.json`` into ``--work`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-work", type=Path, required=True, help="work folder of benchmarks/kws_pretrained.py")
    p.add_argument("--base-exp", default="exp", help="the trained experiment inside --base-work")
    p.add_argument("--add", action="append", default=[], metavar="LABEL=FOLDER", required=True,
                   help="Speech Commands-layout corpus whose train-split clips the 'added' run also trains on")
    p.add_argument("--test", action="append", default=[], metavar="LABEL=FOLDER",
                   help="extra test folder of the 10 test keywords")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--episodes", type=int, default=1000)
    args = p.parse_args(argv)

    from kws_pretrained import clip_rows  # the sibling benchmark (this folder is on sys.path)
    from speechedge.manifest import write_manifest
    from speechedge.recipes.kws_fewshot import FewShotConfig, evaluate_experiment, train
    from speechedge.training.config import config_from_dict

    base = args.base_work / args.base_exp
    base_cfg = json.loads((base / "config.json").read_text())
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    episode_rows = clip_rows(Path(base_cfg["train_manifest"]))
    aux_rows = clip_rows(Path(base_cfg["libriword_manifest"]))
    aux_vocab = {r.word for r in aux_rows if r.split == "train"}
    added_ep, added_aux, sizes = list(episode_rows), list(aux_rows), {}
    for spec in args.add:
        label, _, folder = spec.partition("=")
        rows = [r for r in clip_rows(Path(folder) / "manifest.jsonl") if r.split == "train"]
        aux = [r for r in rows if r.word in aux_vocab]
        added_ep += rows
        added_aux += aux
        sizes[label] = {"clips": len(rows), "speakers": len({r.speaker for r in rows}),
                        "words": len({r.word for r in rows}), "aux_clips": len(aux)}
    variants = {"same": (episode_rows, aux_rows), "added": (added_ep, added_aux)}
    results = {"base": str(base), "added": sizes, "steps": args.steps, "lr": args.lr, "runs": {}}
    tests = {"test_voices": args.base_work / "manifests" / "test_voices.jsonl",
             "test_pico": args.base_work / "manifests" / "test_pico.jsonl"}
    for spec in args.test:
        label, _, folder = spec.partition("=")
        tests[f"test_{label}"] = Path(folder)

    def evaluate(exp: Path, name: str) -> dict:
        out = {}
        for t, data in tests.items():
            marker = work / f"eval_{name}_{t}.json"
            if not marker.exists():
                m = evaluate_experiment(exp, data, ways=5, shots=(1, 5), queries=5, episodes=args.episodes,
                                        seed=1234)[0]
                marker.write_text(json.dumps({k: v for k, v in m.items() if not k.startswith("_")}))
            out[t] = json.loads(marker.read_text())
        return out

    results["runs"]["base"] = evaluate(base, "base")
    for name, (ep, aux) in variants.items():
        ep_path, aux_path = work / "manifests" / f"episodes_{name}.jsonl", work / "manifests" / f"aux_{name}.jsonl"
        if not aux_path.exists():  # written atomically, the episode manifest first
            write_manifest(ep_path, ep)
            write_manifest(aux_path, aux)
        data = {**base_cfg, "train_manifest": str(ep_path), "libriword_manifest": str(aux_path),
                "steps": args.steps, "lr": args.lr, "threads": args.threads, "init_from": str(base),
                "eval_every": max(args.steps // 2, 1)}
        data.pop("recipe", None)
        cfg = config_from_dict(FewShotConfig, data, "engine ablation")
        exp = work / f"exp_{name}"
        done = work / f"train_{name}.done.json"
        if not done.exists():
            t0 = time.perf_counter()
            rec = train(cfg, exp)
            done.write_text(json.dumps({"wall_s": round(time.perf_counter() - t0, 1),
                                        **{k: v for k, v in rec.items() if isinstance(v, (int, float))}}))
        results["runs"][name] = {"train": json.loads(done.read_text()), **evaluate(exp, name)}
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"added to training: {json.dumps(sizes)}; {args.steps} steps from {base}\n")
    print("| run | " + " | ".join(f"{t} 5-shot acc / AUROC" for t in tests) + " |\n|---|"
          + "---:|" * len(tests))
    for name, r in results["runs"].items():
        print(f"| {name} | " + " | ".join(f"{r[t]['5shot']['acc']:.3f} +-{r[t]['5shot']['acc_ci95']:.3f} / "
                                         f"{r[t]['5shot']['auroc']:.3f}" for t in tests) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
