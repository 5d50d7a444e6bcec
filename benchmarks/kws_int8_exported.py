"""int8 of an exported few-shot KWS folder (e.g. the shipped pretrained model), measured against its fp32 models.

    python benchmarks/kws_int8_exported.py [MODEL_DIR] --calibration MANIFEST --held-out MANIFEST [MANIFEST ...]
        [--ranges mse average] [--weights channel tensor] [--json FILE] [--write DIR]

A shipped model folder has no checkpoint (it was trained elsewhere), so its fp32 TFLite models stand in for
PyTorch as the reference (they equal it to 5e-6 of the output range, ``report.json``). For every combination of
activation ranges and weight granularity this quantizes the window model and the streaming step model with
:func:`speechedge.export.quantize.quantize_int8` (the export's own quantizer: the window model calibrated on
feature windows at several input levels, the step model on the state values of calibration clips streamed in
silence) and reports, per held-out manifest: the 5-way 5-shot decision agreement with fp32 and the accuracy of
each (the export's accuracy budget: agreement >= 98%, accuracy at most 1 point below fp32), the file size
against fp32, and the tensor arena TensorFlow Lite Micro allocates. ``--write DIR`` copies the folder to DIR
with the int8 models of the first combination added, only when every held-out set passes the budget.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default=str(REPO / "speechedge/pretrained/kws_fewshot"))
    p.add_argument("--calibration", required=True, help="ClipRecord manifest of training clips")
    p.add_argument("--held-out", nargs="+", required=True, help="ClipRecord manifests of held-out clips")
    p.add_argument("--clips", type=int, default=400, help="held-out clips per manifest (default 400)")
    p.add_argument("--calibration-clips", type=int, default=200)
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--ranges", nargs="+", default=["mse"], choices=("mse", "average"))
    p.add_argument("--weights", nargs="+", default=["channel"], choices=("channel", "tensor"))
    p.add_argument("--json", type=Path)
    p.add_argument("--write", type=Path, help="copy the folder here with the int8 models (when they pass)")
    args = p.parse_args(argv)

    from speechedge.audio import from_int16
    from speechedge.export.kws import CALIBRATION_GAINS, INT8_MAX_ACCURACY_DROP, INT8_MIN_AGREEMENT, _episode_agreement
    from speechedge.export.kws_stream import padded_clips, stream_calls
    from speechedge.export.quantize import quantize_int8
    from speechedge.export.tflite_tools import strip_tensor_names, tflm_run
    from speechedge.features import FrontendConfig
    from speechedge.kernels import log_mel
    from speechedge.runtime.kws import StreamStep, context_padding
    from speechedge.runtime.tflite import TFLiteModel
    from speechedge.training.kws_data import load_manifest_clips

    folder = Path(args.model)
    fe = FrontendConfig.load(folder / "frontend.json")
    clip_samples = int(json.loads((folder / "report.json").read_text())["clip_samples"])
    fp32 = (folder / "model_fp32.tflite").read_bytes()
    stream_fp32 = (folder / "stream_fp32.tflite").read_bytes() if (folder / "stream_fp32.tflite").exists() else None
    spec = json.loads((folder / "stream.json").read_text()) if stream_fp32 else None

    def clips(manifest: str, n: int, seed: int) -> tuple[np.ndarray, list[str]]:
        c = load_manifest_clips(manifest, sample_rate=fe.sample_rate, clip_samples=clip_samples)
        idx = np.sort(np.random.default_rng(seed).permutation(len(c))[:n])
        return from_int16(c.audio[idx]), [c.labels[i] for i in idx]

    cal, _ = clips(args.calibration, args.calibration_clips, 1)
    half = cal[: max(1, len(cal) // 2)]
    cal = np.concatenate([cal] + [np.clip(half * g, -1, 1) for g in CALIBRATION_GAINS])  # as the export does
    cal_feats = log_mel(cal, fe)[:, None].astype(np.float32)
    window_in = next(iter(TFLiteModel(fp32).it.get_signature_list().values()))["inputs"][0]
    window_calls = [{window_in: f[None]} for f in cal_feats]
    step32 = StreamStep(TFLiteModel(stream_fp32), spec) if stream_fp32 else None
    if step32:
        left, right = context_padding(step32.lag, step32.window, step32.chunk)
        s_calls = stream_calls(step32, [log_mel(a, fe) for a in padded_clips(cal, fe.hop_length, left, right)])
    held = {}
    for m in args.held_out:
        audio, labels = clips(m, args.clips, 0)
        feats = log_mel(audio, fe)[:, None].astype(np.float32)
        ref = np.concatenate([TFLiteModel(fp32)(f[None])[0] for f in feats])
        entry = {"feats": feats, "labels": labels, "ref": ref}
        if step32:
            entry["padded"] = [log_mel(a, fe) for a in padded_clips(audio, fe.hop_length, left, right)]
            entry["ref_stream"] = np.stack([step32.embed(f) for f in entry["padded"]])
        label = Path(m).stem if Path(m).stem != "manifest" else Path(m).parent.name  # folder/manifest.jsonl
        if label in held:
            raise SystemExit(f"--held-out {m}: a second manifest labelled {label!r} (from its file or folder name); "
                             "give the held-out sets distinct names")
        held[label] = entry

    rows, first = [], None
    for ranges in args.ranges:
        for weights in args.weights:
            t0 = time.perf_counter()
            models = {"window": strip_tensor_names(quantize_int8(fp32, window_calls, ranges, weights))}
            if step32:
                models["stream"] = strip_tensor_names(quantize_int8(stream_fp32, s_calls, ranges, weights))
            first = first or models
            for kind, blob in models.items():
                base = fp32 if kind == "window" else stream_fp32
                row = {"model": kind, "ranges": ranges, "weights": weights, "bytes": len(blob),
                       "fp32_bytes": len(base), "size_ratio": round(len(blob) / len(base), 3),
                       "tflm_arena_bytes": (tflm_run(blob, None) or {}).get("arena_bytes"), "sets": {}}
                for name, h in held.items():
                    if kind == "window":
                        q = TFLiteModel(blob)
                        out, ref = np.concatenate([q(f[None])[0] for f in h["feats"]]), h["ref"]
                    else:
                        s8 = StreamStep(TFLiteModel(blob), spec)
                        out, ref = np.stack([s8.embed(f) for f in h["padded"]]), h["ref_stream"]
                    agree, acc32, acc8 = _episode_agreement(ref, out, h["labels"], args.episodes)
                    ok = agree >= INT8_MIN_AGREEMENT and acc32 - acc8 <= INT8_MAX_ACCURACY_DROP
                    row["sets"][name] = {"agreement": agree, "fp32_accuracy": acc32, "int8_accuracy": acc8,
                                         "passes": bool(ok)}
                row["passes"] = all(s["passes"] for s in row["sets"].values())
                row["s"] = round(time.perf_counter() - t0, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| model | ranges | weights | bytes (x fp32) | TFLM arena | "
          + " | ".join(f"{n}: agreement / acc fp32 -> int8" for n in held) + " | passes |")
    print("|---|---|---|---:|---:|" + "---:|" * len(held) + "---|")
    for r in rows:
        cells = " | ".join(f"{s['agreement']:.4f} / {s['fp32_accuracy']:.3f} -> {s['int8_accuracy']:.3f}"
                           for s in r["sets"].values())
        print(f"| {r['model']} | {r['ranges']} | {r['weights']} | {r['bytes']:,} ({r['size_ratio']}) | "
              f"{r['tflm_arena_bytes'] or 0:,} | {cells} | {'yes' if r['passes'] else 'no'} |")
    if args.json:
        args.json.write_text(json.dumps({"model": str(folder), "calibration": args.calibration,
                                         "held_out": args.held_out, "episodes": args.episodes, "rows": rows},
                                        indent=2) + "\n")
    if args.write:
        passed = [r for r in rows[: len(first)] if r["passes"]]
        if len(passed) != len(first):
            print("not written: the first combination fails the int8 budget", file=sys.stderr)
            return 1
        shutil.copytree(folder, args.write, dirs_exist_ok=False)
        (args.write / "model_int8.tflite").write_bytes(first["window"])
        if "stream" in first:
            (args.write / "stream_int8.tflite").write_bytes(first["stream"])
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
