"""BC-ResNet width (tau) against the microcontroller budget: parameters, MACs, fp32/int8 flash, the tensor arena
TensorFlow Lite Micro measures, fp32 latency, and the few-shot accuracy where a trained run exists.

    python benchmarks/kws_tau_tradeoff.py [--taus 1 2 3 8] [--results benchmarks/results/kws_pretrained]

Sizes do not depend on training: each width is built untrained (batch norms set to random trained-like
values, since identity ones would fold away), frozen for export, converted (fp32) and
quantized (int8, ai-edge-quantizer static wi8/ai8, calibrated on 50 synthetic feature windows), then loaded
in LiteRT and in TensorFlow Lite Micro (the ``tflite-micro`` package). Accuracy columns come from
``results{tag}.json`` files of ``benchmarks/kws_pretrained.py`` (``--set tau=T --tag _tauT``; tau 1 is the
untagged run); a width without one prints "-".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def _macs(net: torch.nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of the convolutions (the rest is elementwise)."""
    total = 0

    def hook(m, i, o):
        nonlocal total
        k = m.weight.shape[2] * m.weight.shape[3] * (m.in_channels // m.groups)
        total += int(o.numel() * k)

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        net(example)
    for h in hs:
        h.remove()
    return total


def trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with random trained-like batch norms: untrained ones (scale 1, shift 0) fold away in conversion
    and would make the graph smaller than a trained model's."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 1.5)
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--taus", type=float, nargs="+", default=[1, 2, 3, 8])
    p.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "kws_pretrained")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    from speechedge.export.kws import _convert_fp32, _convert_int8
    from speechedge.export.tflite_tools import strip_tensor_names, tflm_run
    from speechedge.features import FrontendConfig
    from speechedge.models.kws import FewShotKWS
    from speechedge.runtime.tflite import TFLiteModel, median_invoke_ms, quantize

    torch.manual_seed(0)
    fe = FrontendConfig.kws()
    rng = np.random.default_rng(0)
    calib = rng.normal(-6, 3, (50, 1, 40, 101)).astype(np.float32)
    rows = []
    for tau in args.taus:
        model = trained_like(FewShotKWS(tau, "dprotonet", 3, 0, fe, 16000).eval())
        net = model.graph()
        example = torch.from_numpy(calib[:1])
        fp32 = strip_tensor_names(_convert_fp32(net, example))
        int8 = strip_tensor_names(_convert_int8(fp32, calib))
        t8 = TFLiteModel(int8)
        tflm = tflm_run(int8, quantize(calib[:2], t8.inputs[0]))
        tag = "" if tau == 1 else f"_tau{tau:g}"
        res = args.results / f"results{tag}.json"
        acc = json.loads(res.read_text()) if res.exists() else None
        row = {"tau": tau, "params": sum(p.numel() for p in model.encoder.parameters()),
               "macs": _macs(net, example), "fp32_bytes": len(fp32), "int8_bytes": len(int8),
               "tflm_arena_bytes": tflm["arena_bytes"] if tflm else None,
               "fp32_invoke_ms": round(median_invoke_ms(TFLiteModel(fp32), calib[:1], n=200), 3)}
        if acc:
            row.update({f"{k}_5shot_acc": acc[k]["5shot"]["acc"] for k in ("test_voices", "test_pico")})
            row.update({f"{k}_5shot_auroc": acc[k]["5shot"]["auroc"] for k in ("test_voices", "test_pico")})
        rows.append(row)
        print(f"tau {tau:g}: {row}", file=sys.stderr)
    print("| BC-ResNet | params | MACs | fp32 bytes | int8 bytes | TFLM arena | fp32 invoke | 5-shot acc / AUROC, "
          "held-out voices | 5-shot acc / AUROC, Pico |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        a = (f"{r['test_voices_5shot_acc']:.3f} / {r['test_voices_5shot_auroc']:.3f} | "
             f"{r['test_pico_5shot_acc']:.3f} / {r['test_pico_5shot_auroc']:.3f}") if "test_voices_5shot_acc" in r \
            else "- | -"
        arena = f"{r['tflm_arena_bytes'] / 1024:.1f} KB" if r["tflm_arena_bytes"] else "-"
        print(f"| tau {r['tau']:g} | {r['params']:,} | {r['macs'] / 1e6:.2f} M | {r['fp32_bytes']:,} | "
              f"{r['int8_bytes']:,} | {arena} | {r['fp32_invoke_ms']:.2f} ms | {a} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
