"""Evidence for layer distillation through auxiliary non-streaming layers, on a synthesized corpus, on the CPU.

    python benchmarks/asr_distill_evidence.py --work work/asr4h --hours 4 --speakers 96 --corpus-seed 1 --seeds 0 1 2

1. synthesizes a LibriSpeech-layout corpus (``--hours``, ``--speakers``; speakers split 70/15/15 into train /
   dev / test, so test voices are never trained on) and its manifests (skipped when present);
2. trains the full-context teacher (``recipes/configs/asr_teacher_tiny.toml``);
3. trains the streaming students (``asr_student_tiny.toml``: 320 ms chunks, 4 left chunks) per seed:
   alone (``distill=none``), token-level KD (``token``), layer KD with auxiliary non-streaming layers + APC
   (``layer``), and the ablations layer KD without APC (``layer_noapc``: ``apc_weight=0``) and without the
   auxiliary layers (``layer_noaux``: ``aux_layers=0``, a linear projection only);
4. prints CER/WER on test-clean per chunk size (160 / 320 / 640 ms; 4 chunks of left context) for each, with
   the median emission latency of correctly recognised words after their end in the audio (streaming
   decoding through ``step``, synthesis alignments as the reference), mean over seeds with a 95% confidence
   interval (t distribution over seeds), the paired difference of each distillation to the student alone
   (per seed, same data order), the teacher's full-context numbers, and writes ``evidence.json``.

Experiments that finished are reused (training resumes from the last checkpoint), so the command can be
re-run after an interruption.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "speechedge" / "recipes" / "configs"
MODES = {  # name -> (row label, overrides of asr_student_tiny.toml)
    "none": ("student alone", ["distill=none"]),
    "token": ("token-level KD", ["distill=token"]),
    "layer": ("layer KD + aux. non-streaming layers + APC", ["distill=layer"]),
    "layer_noapc": ("layer KD + aux. layers, no APC", ["distill=layer", "apc_weight=0"]),
    "layer_noaux": ("layer KD + APC, no aux. layers", ["distill=layer", "aux_layers=0"]),
}


def _ci95(values: list[float]) -> float:
    """Half width of the 95% confidence interval of the mean (t distribution); nan for one value."""
    from speechedge.models.fewshot import mean_ci95

    return mean_ci95(values, student_t=True)[1]


def _train(config: Path, exp: Path, sets: list[str]) -> float:
    from speechedge.recipes.asr import ASRConfig, train
    from speechedge.training.config import load_config

    cfg = load_config(ASRConfig, config, sets)
    done = exp / "metrics.jsonl"
    if done.exists() and any(json.loads(x)["step"] == cfg.steps for x in done.read_text().splitlines() if x.strip()):
        return 0.0
    t0 = time.perf_counter()
    train(cfg, exp)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default="work/asr")
    p.add_argument("--hours", type=float, default=1.0, help="hours of synthesized speech (all splits)")
    p.add_argument("--speakers", type=int, default=24, help="synthetic speakers (all splits)")
    p.add_argument("--corpus-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=None, help="training steps of each student (default: the config's)")
    p.add_argument("--teacher-steps", type=int, default=None, help="training steps of the teacher (default: the config's)")
    p.add_argument("--chunk-ms", nargs="+", default=["160", "320", "640"])
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    args = p.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from speechedge.data_prep.librispeech import prepare_librispeech
    from speechedge.recipes.asr import evaluate_experiment, parse_chunk_ms
    from speechedge.synth.corpora import synth_librispeech

    work = Path(args.work)
    corpus, manifests = work / "LibriSpeech", work / "manifests"
    if not (corpus / "synth_report.json").exists():
        synth_librispeech(corpus, hours=args.hours, num_speakers=args.speakers, seed=args.corpus_seed)
    if not (manifests / "librispeech_test-clean.jsonl.gz").exists():
        prepare_librispeech(corpus, manifests)
    data = [f"train_manifest={manifests / 'librispeech_train-clean-100.jsonl.gz'}",
            f"val_manifest={manifests / 'librispeech_dev-clean.jsonl.gz'}",
            f"alignments={corpus / 'alignments' / 'train-clean-100'}"]
    steps = [f"steps={args.steps}"] if args.steps else []
    test = manifests / "librispeech_test-clean.jsonl.gz"
    chunks = parse_chunk_ms(args.chunk_ms)
    timings = {}
    teacher = work / "teacher"
    t_steps = [f"steps={args.teacher_steps}"] if args.teacher_steps else []
    timings["teacher"] = _train(CONFIGS / "asr_teacher_tiny.toml", teacher, data + t_steps)
    rows: dict[str, list[list[dict]]] = {m: [] for m in args.modes}
    for seed in args.seeds:
        for mode in rows:
            exp = work / (f"student_{mode}_seed{seed}")
            timings[exp.name] = _train(CONFIGS / "asr_student_tiny.toml", exp, data + steps + MODES[mode][1] + [
                f"seed={seed}", f"teacher_exp_dir={teacher}"])
            rows[mode].append(evaluate_experiment(exp, test, chunks, alignments=corpus / "alignments"))
    t_rows = evaluate_experiment(teacher, test, [0])
    table = {}
    head = " | ".join(f"{c * 40} ms CER / WER / latency" for c in chunks)
    lines = [f"test-clean (synthesized), seeds {args.seeds}: mean +- 95% CI over seeds", f"| model | {head} |",
             "|---|" + "---|" * len(chunks)]
    for mode, per_seed in rows.items():
        cells = []
        for i, c in enumerate(chunks):
            cers = [r[i]["cer"] for r in per_seed]
            wer = float(np.mean([r[i]["wer"] for r in per_seed]))
            lat = [r[i].get("latency_median_s") for r in per_seed if r[i].get("latency_median_s") is not None]
            lat_ms = 1000 * float(np.mean(lat)) if lat else float("nan")
            entry = {"cer": float(np.mean(cers)), "cer_ci95": _ci95(cers), "cer_per_seed": cers, "wer": wer,
                     "latency_median_ms": lat_ms}
            if mode != "none" and "none" in rows:  # paired by seed: same seed = same data order and init
                diff = [a[i]["cer"] - b[i]["cer"] for a, b in zip(per_seed, rows["none"])]
                entry.update(cer_minus_alone=float(np.mean(diff)), cer_minus_alone_ci95=_ci95(diff))
            table.setdefault(mode, {})[f"{c * 40}ms"] = entry
            cell = f"{entry['cer']:.1f}" + (f" +-{entry['cer_ci95']:.1f}" if len(cers) > 1 else "")
            if "cer_minus_alone" in entry:
                cell += f" ({entry['cer_minus_alone']:+.1f}" + (
                    f" +-{entry['cer_minus_alone_ci95']:.1f})" if len(cers) > 1 else ")")
            cells.append(f"{cell} / {wer:.1f} / {lat_ms:.0f} ms")
        lines.append(f"| {MODES[mode][0]} | " + " | ".join(cells) + " |")
    t = t_rows[0]
    lines.append(f"| teacher (full context) | {t['cer']:.1f} / {t['wer']:.1f} (full context) |" + " |" * (len(chunks) - 1))
    lines.append("CER in %, (difference to the student alone, paired by seed)")
    print("\n".join(lines))
    from speechedge.io import atomic_write_text

    atomic_write_text(work / "evidence.json", json.dumps({"table": table, "teacher": t, "seeds": args.seeds,
                                                          "train_s": timings}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
