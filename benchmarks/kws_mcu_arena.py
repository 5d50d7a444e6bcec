"""The streaming KWS step model against a microcontroller's memory: ops, flash and the tensor arena TensorFlow
Lite Micro allocates, per architecture (BC-ResNet width, blocks per stage, activation).

    python benchmarks/kws_mcu_arena.py [--arch t1:2,2,4,4:silu t1:1,1,1,1:relu ...] [--json OUT]

Sizes do not depend on training: each architecture is built untrained (batch norms set to random trained-like
values, since identity ones would fold away), frozen, its step model (100 ms chunks) converted to fp32 and
quantized to full-integer int8 (least-error ranges, one weight scale per tensor: the KWS export's defaults),
calibrated on the states of synthetic feature streams, then loaded in TensorFlow Lite Micro (the
``tflite-micro`` package), whose recording allocator gives the arena: head (activations and the int8 state)
and tail (TFLM's per-op and per-tensor structures and kernel data). Accuracy needs training: see the README.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch


def parse_arch(text: str) -> dict:
    """``t1:2,2,4,4:silu`` -> ``{"tau": 1.0, "blocks": (2, 2, 4, 4), "act": "silu"}``."""
    try:
        tau, blocks, act = text.split(":")
        return {"tau": float(tau.lstrip("t")), "blocks": tuple(int(b) for b in blocks.split(",")), "act": act}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--arch {text!r}: expected tTAU:B1,B2,B3,B4:ACT, e.g. t1:2,2,4,4:silu")


def measure(arch: dict, seed: int = 0) -> dict:
    from speechedge.export.kws_stream import build_stream, stream_calls
    from speechedge.export.quantize import quantize_int8
    from speechedge.export.tflite_tools import make_interpreter, strip_tensor_names, tflm_run
    from speechedge.features import FrontendConfig
    from speechedge.models.kws import FewShotKWS
    from speechedge.runtime.kws import StreamStep
    from speechedge.runtime.tflite import TFLiteModel, quantize
    import tempfile

    import litert_torch
    from kws_tau_tradeoff import trained_like  # the sibling benchmark (this folder is on sys.path)

    torch.manual_seed(seed)
    fe = FrontendConfig.kws()
    model = trained_like(FewShotKWS(arch["tau"], "dprotonet", 3, 0, fe, 16000, arch["blocks"], arch["act"]).eval())
    encoder = model.graph().encoder  # frozen, as export builds it
    stream = build_stream(model, encoder, 100.0)
    example = {"feats": torch.zeros(1, 1, fe.num_features, stream.chunk), **stream.init_state()}
    with tempfile.TemporaryDirectory() as d:
        litert_torch.convert(stream, sample_kwargs=example).export(f"{d}/s.tflite")
        fp32 = strip_tensor_names(Path(f"{d}/s.tflite").read_bytes())
    spec = {"chunk_frames": stream.chunk, "window_frames": stream.window, "lag_frames": stream.lag_frames,
            "state": [{"name": k, "shape": list(s)} for k, s in stream.state_shapes().items()]}
    step = StreamStep(TFLiteModel(fp32), spec)
    rng = np.random.default_rng(seed)
    feats = [rng.normal(-6, 3, (fe.num_features, 200)).astype(np.float32) for _ in range(3)]
    int8 = strip_tensor_names(quantize_int8(fp32, stream_calls(step, feats, limit=60), "mse", "tensor"))
    step8 = StreamStep(TFLiteModel(int8), spec)
    net = step8.net
    name_at = {d["index"]: n for n, d in net._in.items()}
    named = {"feats": feats[0][:, : stream.chunk][None, None], **step8.init_state()}
    call = [quantize(named[name_at[d["index"]]], d) for d in net.inputs]
    micro = tflm_run(int8, [call])
    ops = make_interpreter(int8, delegate=False)._get_ops_details()
    n_state = sum(int(np.prod(s)) for s in stream.state_shapes().values())
    return {"arch": f"tau {arch['tau']:g}, blocks {','.join(map(str, arch['blocks']))}, {arch['act']}",
            "params": sum(p.numel() for p in model.encoder.parameters()), "ops": len(ops),
            "op_counts": dict(Counter(o["op_name"] for o in ops).most_common()),
            "state_tensors": len(spec["state"]), "state_bytes_int8": n_state, "int8_bytes": len(int8),
            "fp32_bytes": len(fp32), "lag_frames": stream.lag_frames,
            "tflm_arena_bytes": micro and micro["arena_bytes"], "tflm_head_bytes": micro and micro["arena_head_bytes"],
            "tflm_tail_bytes": micro and micro["arena_tail_bytes"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", type=parse_arch, nargs="+",
                   default=[parse_arch(a) for a in ("t1:2,2,4,4:silu", "t1:2,2,4,4:relu", "t1:1,1,2,2:relu",
                                                    "t1:1,1,1,1:relu", "t2:1,1,1,1:relu")])
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    rows = []
    for arch in args.arch:
        row = measure(arch)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    kb = lambda b: f"{b / 1024:.1f} KB" if b else "-"  # noqa: E731
    print("| step model (100 ms) | params | ops | state tensors | int8 flash | TFLM arena (head + tail) |\n"
          "|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['arch']} | {r['params']:,} | {r['ops']} | {r['state_tensors']} | {r['int8_bytes']:,} | "
              f"{kb(r['tflm_arena_bytes'])} ({kb(r['tflm_head_bytes'])} + {kb(r['tflm_tail_bytes'])}) |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
