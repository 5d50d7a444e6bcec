"""CPU per audio second of keyword detection: the window detector, the streaming (stateful) detector and
microWakeWord's streaming models, measured in one run on the same audio, one thread.

    python benchmarks/kws_streaming_cost.py --exp EXP_DIR [--model EXPORT_DIR] [--audio WAV] [--seconds 60]

Rows: speechedge's window detector (the 1-second model re-run every 100 ms), its streaming detector (the step
model of ``stream_fp32.tflite``, 100 ms chunks), the same step model converted for 30 ms chunks (microWakeWord's
decision rate: it invokes every 3 feature frames), and each model bundled with ``pymicro-wakeword`` (int8,
its own TFLite build; skipped when not installed: ``pip install pymicro-wakeword``). Columns: model invoke
time per audio second, the whole detector per audio second (frontend, model, scoring; microWakeWord: its
frontend + model), multiply-accumulates per audio second (convolutions, counted on the torch graph), and the
ratio of model time to microWakeWord's mean. Prints a Markdown table and writes ``--json``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def conv_macs(module: torch.nn.Module, *args, **kwargs) -> int:
    """Multiply-accumulates of every Conv2d in one forward pass (functional convs of the streaming graph too)."""
    from torch.nn import functional as F

    total = 0
    real = F.conv2d

    def counting(x, w, *a, **k):
        nonlocal total
        y = real(x, w, *a, **k)
        total += y.numel() * w.shape[1] * w.shape[2] * w.shape[3]
        return y

    F.conv2d = counting
    try:
        with torch.no_grad():
            module(*args, **kwargs)
    finally:
        F.conv2d = real
    return total


def time_detector(model, audio: np.ndarray, block: int = 160) -> tuple[float, float]:
    """(model ms, whole detector ms) per audio second, pushing 10 ms blocks as a microphone callback would."""
    from speechedge.runtime import StreamingKWS

    det = StreamingKWS(model, threshold=1.0)
    t0 = time.perf_counter()
    for i in range(0, len(audio), block):
        det.push(audio[i: i + block])
    total = time.perf_counter() - t0
    seconds = len(audio) / 16000
    return 1000 * det.invoke_s / seconds, 1000 * total / seconds


def step_model_ms(blob: bytes, spec_state: dict, chunk: int, n_mels: int, invokes: int = 2000) -> float:
    """Median ms of one step as the runtime's detector takes it (``StreamStep.step_raw``: set the new frames and
    the state, invoke, read the embedding and the new state)."""
    from speechedge.runtime.kws import StreamStep
    from speechedge.runtime.tflite import TFLiteModel

    spec = {"chunk_frames": chunk, "window_frames": 101, "lag_frames": 0,
            "state": [{"name": k, "shape": list(s)} for k, s in spec_state.items()]}
    return StreamStep(TFLiteModel(blob, 1), spec).median_step_ms(invokes)


def micro_wakeword_rows(audio: np.ndarray) -> list[dict]:
    try:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model
    except ImportError:
        return []
    from speechedge.audio import to_int16

    import pymicro_wakeword

    models_dir = Path(pymicro_wakeword.__file__).parent / "models"
    pcm = to_int16(audio).astype("<i2").tobytes()
    seconds = len(audio) / 16000
    rows = []
    for name in Model:
        mww = MicroWakeWord.from_builtin(name)
        feats = MicroWakeWordFeatures()
        t0 = time.perf_counter()
        frames = [f for i in range(0, len(pcm), 320) for f in feats.process_streaming(pcm[i: i + 320])]
        t_front = time.perf_counter() - t0
        t0 = time.perf_counter()
        for f in frames:
            mww.process_streaming_prob(f)
        t_model = time.perf_counter() - t0
        rows.append({"detector": f"microWakeWord {name.value} (int8, stateful, every {mww.stride * 10} ms)",
                     "model_ms_per_s": 1000 * t_model / seconds, "detector_ms_per_s": 1000 * (t_model + t_front) / seconds,
                     "macs_per_s": None, "bytes": (models_dir / f"{name.value}.tflite").stat().st_size})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True, type=Path, help="the few-shot experiment the export came from (MACs, 30 ms step)")
    p.add_argument("--model", type=Path, default=None, help="exported folder with stream_fp32.tflite (default: shipped)")
    p.add_argument("--audio", type=Path, default=None, help="a recording (default: 60 s of synthesized speech and noise)")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import litert_torch

    from speechedge.audio import read_audio
    from speechedge.export.kws_stream import build_stream
    from speechedge.pretrained import pretrained_dir
    from speechedge.recipes.kws_fewshot import load_model
    from speechedge.runtime import KWSModel

    model_dir = args.model or pretrained_dir()
    n = int(16000 * args.seconds)
    if args.audio:
        audio = read_audio(args.audio, sample_rate=16000)[0][:n]
    else:
        rng = np.random.default_rng(0)
        t = np.arange(n) / 16000
        audio = (0.1 * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * np.sin(t))) * (np.sin(t * 3) > 0)
                 + 0.01 * rng.standard_normal(n)).astype(np.float32)
    net, _ = load_model(args.exp)
    net.eval()
    enc = net.encoder
    window_macs = conv_macs(enc.embed, torch.zeros(1, 1, 40, net.input_shape[-1]))
    rows = []
    rng = np.random.default_rng(1)
    for mode in ("window", "stream"):
        m = KWSModel(model_dir, keywords_file=Path(tempfile.mkdtemp()) / "k.json", mode=mode)
        m.enroll("a", [rng.normal(0, 0.1, 16000).astype(np.float32) for _ in range(3)], save=False)
        model_ms, det_ms = time_detector(m, audio)
        prec = m.precision  # the runtime's choice: int8 where the folder has it
        if mode == "window":
            macs, what = 10 * window_macs, f"speechedge window detector ({prec} 1 s model every 100 ms)"
            size = (model_dir / f"model_{prec}.tflite").stat().st_size
        else:
            s = build_stream(net, enc, 100)
            macs = 10 * conv_macs(s, torch.zeros(1, 1, 40, s.chunk), **s.init_state())
            step_file = model_dir / f"stream_{prec}.tflite"
            step_file = step_file if step_file.exists() else model_dir / "stream_fp32.tflite"
            what, size = f"speechedge streaming detector ({step_file.stem} step model, 100 ms chunks)", \
                step_file.stat().st_size
        rows.append({"detector": what, "model_ms_per_s": model_ms, "detector_ms_per_s": det_ms, "macs_per_s": macs,
                     "bytes": size})
    s30 = build_stream(net, enc, 30)
    with tempfile.TemporaryDirectory() as d:
        litert_torch.convert(s30, sample_kwargs={"feats": torch.zeros(1, 1, 40, 3), **s30.init_state()}).export(f"{d}/s.tflite")
        blob = Path(f"{d}/s.tflite").read_bytes()
    ms = step_model_ms(blob, s30.state_shapes(), 3, 40)
    rows.append({"detector": "speechedge step model, 30 ms chunks (fp32, model only)", "model_ms_per_s": ms * 1000 / 30,
                 "detector_ms_per_s": None, "macs_per_s": conv_macs(s30, torch.zeros(1, 1, 40, 3), **s30.init_state()) * 1000 // 30,
                 "bytes": len(blob)})
    mww = micro_wakeword_rows(audio)
    rows += mww
    ref = np.mean([r["model_ms_per_s"] for r in mww]) if mww else None
    print(f"| detector ({args.seconds:g} s of audio, 1 thread) | model CPU ms per audio s | whole detector ms per audio s "
          "| MACs per audio s | model bytes | model CPU vs microWakeWord |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        r["vs_micro_wakeword"] = r["model_ms_per_s"] / ref if ref else None
        print(f"| {r['detector']} | {r['model_ms_per_s']:.2f} | "
              + (f"{r['detector_ms_per_s']:.2f}" if r["detector_ms_per_s"] is not None else "-") + " | "
              + (f"{r['macs_per_s'] / 1e6:.1f} M" if r["macs_per_s"] else "-") + " | "
              + (f"{r['bytes']:,}" if r["bytes"] else "-") + " | "
              + (f"{r['vs_micro_wakeword']:.2f}x" if ref else "-") + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
