"""Export a streaming ASR student to a TFLite *step* model with explicit state, verified against PyTorch.

    speechedge export --exp-dir work/asr/student --out work/asr/export [--int8]

The graph is one chunk step of the encoder plus the CTC projection and log-softmax::

    inputs : feats (1, 4 * chunk, 80), sub_cache, att_key, att_value, att_mask, conv_cache
    outputs: log_probs (1, chunk, vocab), then the new sub_cache, att_key, att_value, att_mask, conv_cache

(shapes and initial values in ``asr.json``; the host keeps the state between calls, see
:class:`speechedge.runtime.StreamingASR`). The auxiliary distillation branches are not part of the model.
Beside it: ``frontend.json`` + filterbank + window, ``tokens.txt``, ``asr.json``, ``report.json``.

Verification on held-out utterances, streamed chunk by chunk through both models with the Numba features the
device computes: fp32 max |TFLite - PyTorch| of the log-probabilities <= 1e-4 of their range (over the real
frames of every chunk), CER of PyTorch, TFLite fp32 and int8 (int8 must be within 1 point of fp32), and the
median per-chunk latency (1000 invokes, one thread) with the real-time factor. int8 is calibrated with the
state values of real streams (random caches clip badly). A failed check exits non-zero and writes nothing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from speechedge.ctc import ErrorCounts
from speechedge.features import FrontendConfig, analysis_window, mel_filterbank
from speechedge.io import atomic_write_text
from speechedge.models.conformer import SUBSAMPLING, StreamState

from . import ExportError
from .tflite_tools import make_interpreter, strip_tensor_names

__all__ = ["ExportError", "export_asr", "STATE_NAMES"]

STATE_NAMES = StreamState._fields


class _Step(torch.nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.encoder, self.ctc = model.encoder, model.ctc

    def forward(self, feats, sub_cache, att_key, att_value, att_mask, conv_cache):
        y, st = self.encoder.step(feats, StreamState(sub_cache, att_key, att_value, att_mask, conv_cache))
        return (self.ctc(y).log_softmax(-1), *st)


def _features(audio: np.ndarray) -> np.ndarray:
    from speechedge.kernels import log_mel

    return log_mel(audio, FrontendConfig.asr()).T.copy()  # (T, 80), the training (centred) frames


def _chunks(feats: np.ndarray, step_frames: int) -> list[np.ndarray]:
    n = len(feats) // step_frames
    return [feats[i * step_frames: (i + 1) * step_frames][None] for i in range(n)]


def _run_torch(step: _Step, init: StreamState, chunks) -> tuple[list[np.ndarray], list[tuple]]:
    """Log-probs per chunk and the (inputs) of every call, for calibration."""
    state, outs, calls = init, [], []
    with torch.no_grad():
        for c in chunks:
            x = torch.from_numpy(c)
            calls.append((c, *[s.numpy().copy() for s in state]))
            lp, *st = step(x, *state)
            state = StreamState(*st)
            outs.append(lp[0].numpy())
    return outs, calls


class _TFLiteStep:
    def __init__(self, blob: bytes) -> None:
        from speechedge.runtime import TFLiteModel

        self.m = TFLiteModel.__new__(TFLiteModel)
        self.m.path = Path("<memory>")
        self.m.it = make_interpreter(blob, threads=1)
        self.m.inputs = self.m.it.get_input_details()
        self.m.outputs = self.m.it.get_output_details()
        # map our names onto the interpreter's tensor order (the converter keeps the argument order in names)
        self.in_order = _order(self.m.inputs, 6)
        self.out_order = _order(self.m.outputs, 6)

    def __call__(self, *xs):
        ordered = [None] * len(xs)
        for pos, idx in enumerate(self.in_order):
            ordered[idx] = xs[pos]
        outs = self.m(*ordered)
        return [outs[i] for i in self.out_order]


def _order(details: list[dict], n: int) -> list[int]:
    """Position in ``details`` of argument/output 0..n-1 (names end in ``_{k}`` or ``:{k}``)."""
    import re

    keys = []
    for d in details:
        m = re.search(r"(\d+)(?::0)?$", d["name"])
        keys.append(int(m.group(1)) if m else 0)
    order = sorted(range(len(details)), key=lambda i: keys[i])
    if len(order) != n:
        raise ExportError(f"expected {n} tensors, the converted model has {len(order)}")
    return order


def _run_tflite(step: _TFLiteStep, init: StreamState, chunks) -> list[np.ndarray]:
    state = [s.numpy() for s in init]
    outs = []
    for c in chunks:
        lp, *state = step(c, *state)
        outs.append(lp[0])
    return outs


def _cer(outs_per_utt: list[list[np.ndarray]], texts: list[str], tokens: list[str]) -> float:
    from speechedge.ctc import greedy_decode

    counts = ErrorCounts()
    for outs, ref in zip(outs_per_utt, texts):
        ids = greedy_decode(np.concatenate(outs)) if outs else []
        counts.add(ref, "".join(tokens[i] for i in ids).replace("|", " ").strip())
    return counts.cer


def export_asr(exp_dir: str | Path, out_dir: str | Path, *, int8: bool = False, held_out: str | None = None,
               num_held_out: int = 20, num_calibration: int = 20, invokes: int = 1000) -> dict:
    from speechedge.recipes.asr import load_model, load_utterances

    exp_dir, out_dir = Path(exp_dir), Path(out_dir)
    model, cfg, tok = load_model(exp_dir)
    if not cfg.causal or cfg.chunk_frames <= 0 or cfg.left_chunks < 0:
        raise ExportError(f"{exp_dir}: only a streaming model exports as a step model (causal, chunk_frames > 0, "
                          f"left_chunks >= 0); this one has causal={cfg.causal}, chunk_frames={cfg.chunk_frames}, "
                          f"left_chunks={cfg.left_chunks}")
    step = _Step(model).eval()
    chunk, left = cfg.chunk_frames, cfg.left_chunks
    step_frames = SUBSAMPLING * chunk
    init = model.encoder.init_state(1, chunk, left)
    utts = load_utterances(held_out or cfg.val_manifest, tok, limit=num_held_out)
    feats = [_chunks(_features(a.astype(np.float32) / 32768.0), step_frames) for a in utts.audio]
    torch.set_num_threads(1)
    ref, calls = [], []
    for f in feats:
        o, c = _run_torch(step, init, f)
        ref.append(o)
        calls += c
    import litert_torch

    t0 = time.perf_counter()
    example = (torch.from_numpy(feats[0][0]), *init)
    with tempfile.TemporaryDirectory() as d:
        litert_torch.convert(step, example).export(f"{d}/m.tflite")
        models = {"fp32": strip_tensor_names(Path(f"{d}/m.tflite").read_bytes())}
    if int8:
        models["int8"] = strip_tensor_names(_quantize(models["fp32"], calls[:: max(1, len(calls) // 400)][:400]))
    report: dict = {"exp_dir": str(exp_dir), "kind": "asr_step", "chunk_ms": chunk * 40, "left_chunks": left,
                    "held_out_utterances": len(utts), "convert_s": round(time.perf_counter() - t0, 1), "models": {},
                    "checks": {}}
    ref_all = np.concatenate([np.concatenate(o) for o in ref if o])
    rng_ = float(np.ptp(ref_all))
    report["torch_cer"] = round(_cer(ref, utts.texts, tok.tokens), 2)
    t_torch = []
    with torch.no_grad():
        x = torch.from_numpy(feats[0][0])
        for _ in range(min(invokes, 300) + 10):
            t1 = time.perf_counter()
            step(x, *init)
            t_torch.append(time.perf_counter() - t1)
    torch_ms = float(np.median(t_torch[10:]) * 1000)
    report["torch_eager_ms_per_chunk"] = round(torch_ms, 3)
    failures = []
    for name, blob in models.items():
        tfl = _TFLiteStep(blob)
        outs = [_run_tflite(tfl, init, f) for f in feats]
        err = float(np.abs(np.concatenate([np.concatenate(o) for o in outs if o]) - ref_all).max())
        times = []
        st = [s.numpy() for s in init]
        for _ in range(invokes + 10):
            t1 = time.perf_counter()
            tfl(feats[0][0], *st)
            times.append(time.perf_counter() - t1)
        ms = float(np.median(times[10:]) * 1000)
        report["models"][name] = {"bytes": len(blob), "max_abs_err": err, "max_err_rel_to_range": err / rng_,
                                  "cer": round(_cer(outs, utts.texts, tok.tokens), 2), "median_ms_per_chunk": round(ms, 3),
                                  "real_time_factor": round(ms / (chunk * 40), 4), "speed_vs_torch": round(torch_ms / ms, 2)}
    fp = report["models"]["fp32"]
    report["checks"]["fp32_max_err_rel_to_range<=1e-4"] = ok = fp["max_err_rel_to_range"] <= 1e-4
    if not ok:
        failures.append(f"fp32 max error {fp['max_abs_err']:.3g} is {fp['max_err_rel_to_range']:.3g} of the range (> 1e-4)")
    if int8:
        q = report["models"]["int8"]
        report["checks"]["int8_cer_within_1_point_of_fp32"] = ok = q["cer"] <= fp["cer"] + 1.0
        if not ok:
            failures.append(f"int8 CER {q['cer']:.2f} is more than 1 point above fp32's {fp['cer']:.2f}")
    report["passed"] = not failures
    if failures:
        raise ExportError(f"{exp_dir}: export failed its checks, nothing written to {out_dir}: " + "; ".join(failures)
                          + f"\nreport: {json.dumps(report['models'], indent=1)}", report)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent if out_dir.parent.exists() else None))
    try:
        for name, blob in models.items():
            (tmp / f"model_{name}.tflite").write_bytes(blob)
        fe = FrontendConfig.asr()
        (tmp / "frontend.json").write_text(fe.to_json() + "\n")
        np.save(tmp / "mel_filterbank.npy", mel_filterbank(fe).astype(np.float32))
        np.save(tmp / "window.npy", analysis_window(fe).astype(np.float32))
        tok.save(tmp / "tokens.txt")
        tfl = _TFLiteStep(models["fp32"])
        (tmp / "asr.json").write_text(json.dumps({
            "inputs": ["feats", *STATE_NAMES], "outputs": ["log_probs", *STATE_NAMES],
            "input_order": tfl.in_order, "output_order": tfl.out_order,
            "chunk_input_frames": step_frames, "chunk_ms": chunk * 40, "left_chunks": left,
            "state_shapes": [list(s.shape) for s in init], "state_init": [float(s.flatten()[0]) if s.numel() else 0.0
                                                                          for s in init],
            "blank_id": 0, "frame_s": 0.04}, indent=2) + "\n")
        atomic_write_text(tmp / "report.json", json.dumps(report, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _quantize(fp32: bytes, calls: list[tuple]) -> bytes:
    """Static int8 (ai-edge-quantizer wi8/ai8) calibrated on real (feats, state) inputs of streams."""
    from ai_edge_quantizer import quantizer, recipe

    it = make_interpreter(fp32)
    signature, spec = next(iter(it.get_signature_list().items()))
    names = sorted(spec["inputs"], key=lambda n: int("".join(ch for ch in n if ch.isdigit()) or 0))
    q = quantizer.Quantizer(bytearray(fp32))
    q.load_quantization_recipe(recipe.static_wi8_ai8())
    calibration = q.calibrate({signature: [dict(zip(names, call)) for call in calls]})
    return bytes(q.quantize(calibration).quantized_model)
