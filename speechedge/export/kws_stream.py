"""The streaming (stateful) step model of a few-shot KWS embedding network, exported beside the window model.

``speechedge export`` of a few-shot experiment writes ``stream_fp32.tflite`` and ``stream.json`` next to
``model_fp32.tflite``: one step of :class:`speechedge.models.bcresnet_stream.StreamingBCResNet` with its state as
named inputs and outputs (``feats (1, 1, F, chunk)`` and the ring buffers / delay lines / pooling window in,
``embedding (1, dim)`` and the new state out, under the same names). ``stream.json`` lists the state tensors
(all start at zero), the chunk, window and lag. The runtime's detector runs it chunk by chunk
(:class:`speechedge.runtime.StreamingKWS`), enrolment embeds a clip by streaming it in silence
(:func:`speechedge.runtime.kws.context_padding`) and the detector's background set for it is
``background_stream.npy``.

Verification, as for the window model: held-out clips, audio -> torch frontend -> the non-streaming network's
neck averaged over the clip's frames (:func:`~speechedge.models.bcresnet_stream.context_embeddings`) against
audio -> Numba frontend -> the TFLite step model, streamed chunk by chunk: max error <= 1e-4 of the output
range; the 5-way 5-shot decisions of streaming embeddings against the window model's (how far streaming moves
the decisions; reported, not a check: the two see different context by design).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from speechedge.kernels import log_mel
from speechedge.models.bcresnet_stream import StreamingBCResNet, context_embeddings
from speechedge.runtime.kws import StreamStep, context_padding
from speechedge.runtime.tflite import TFLiteModel, quantize

from .quantize import evenly_spaced, quantize_int8
from .tflite_tools import strip_tensor_names, tflm_vs_litert_lsb

__all__ = ["build_stream", "export_stream", "stream_calls", "tflm_step_lsb", "padded_clips", "stream_embeddings_torch",
           "stream_background"]


def build_stream(model, encoder, chunk_ms: float) -> StreamingBCResNet:
    fe = model.frontend.config
    hop_ms = 1000 * fe.hop_length / fe.sample_rate
    chunk = int(round(chunk_ms / hop_ms))
    if chunk < 1 or abs(chunk * hop_ms - chunk_ms) > 1e-6:
        raise ValueError(f"--stream-chunk-ms must be a positive multiple of the {hop_ms:g} ms hop, got {chunk_ms}")
    return StreamingBCResNet(encoder, fe.num_features, model.input_shape[-1], chunk).eval()


def padded_clips(audio: np.ndarray, hop: int, left: int, right: int) -> np.ndarray:
    """Clips ``(N, samples)`` in digital silence: ``left`` frames before, ``right`` after."""
    n = len(audio)
    return np.concatenate([np.zeros((n, left * hop), np.float32), audio,
                           np.zeros((n, right * hop), np.float32)], axis=1)


def stream_embeddings_torch(model, encoder, stream: StreamingBCResNet, audio: np.ndarray) -> np.ndarray:
    """The streaming embedding of each clip in silence, in one pass (torch frontend, as in training)."""
    left, right = context_padding(stream.lag_frames, stream.window, stream.chunk)
    return _pooled(model, encoder, stream, padded_clips(audio, model.frontend.config.hop_length, left, right), left)


def _pooled(model, encoder, stream: StreamingBCResNet, x: np.ndarray, left: int) -> np.ndarray:
    """Audio ``(N, samples)`` with ``left`` frames before the window -> the window's streaming embeddings."""
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 64):
            feats = model.features(torch.from_numpy(x[i: i + 64]))[:, None]
            out.append(context_embeddings(encoder, feats, left, stream.window).numpy())
    return np.concatenate(out)


def stream_background(model, encoder, stream: StreamingBCResNet, speech: np.ndarray, noise: np.ndarray | None,
                      size: int, rng: np.random.Generator, stride_s: float = 0.1) -> np.ndarray:
    """The streaming detector's background set: windows of continuous non-keyword speech (and noise) embedded
    with the audio around them, as a stream shows them (not zero-padded clips)."""
    fe = model.frontend.config
    hop, n = fe.hop_length, model.clip_samples
    left, right = context_padding(stream.lag_frames, stream.window, stream.chunk)
    step = int(fe.sample_rate * stride_s)
    pad = np.zeros(left * hop, np.float32), np.zeros(right * hop, np.float32)

    def windows(src: np.ndarray, starts) -> np.ndarray:
        src = np.concatenate([pad[0], src, pad[1]])  # s in the original is s + left*hop here
        return np.stack([src[s: s + left * hop + n + right * hop] for s in starts])

    n_noise = int(0.15 * size) if noise is not None else 0
    starts = np.sort(rng.permutation(np.arange(0, len(speech) - n, step))[: size - n_noise])
    x = [windows(speech, starts)]
    if n_noise:
        x.append(windows(noise, rng.integers(0, max(1, len(noise) - n), n_noise)))
    return _pooled(model, encoder, stream, np.concatenate(x), left).astype(np.float16)


def stream_calls(step: StreamStep, feats: list[np.ndarray], limit: int = 400) -> list[dict]:
    """The named inputs (new frames and the state) of every step of ``feats`` clips streamed from zero state
    through ``step``: what a streaming model sees, for int8 calibration (random or zero states clip badly).
    At most ``limit`` of them, evenly spaced from the first to the last."""
    calls = []
    for f in feats:
        state = step.init_state()
        for i in range(0, f.shape[1], step.chunk):
            x = f[:, i: i + step.chunk]
            calls.append({"feats": x[None, None], **state})
            _, state = step.step(x, state)
    return evenly_spaced(calls, limit)


def tflm_step_lsb(blob: bytes, spec: dict, feats: list[np.ndarray], limit: int = 40) -> int | None:
    """Largest difference, in output steps (LSB), between TensorFlow Lite Micro and LiteRT running an int8 step
    model on the same raw int8 inputs (new frames and the state of ``feats`` clips streamed through LiteRT), over
    every output (the embedding and the new state) of up to ``limit`` invokes. None without ``tflite-micro``."""
    step = StreamStep(TFLiteModel(blob), spec)
    net = step.net
    name_at = {d["index"]: n for n, d in net._in.items()}
    raw_calls = []
    for f in feats:
        state = step.init_state()
        for i in range(0, f.shape[1], step.chunk):
            if len(raw_calls) == limit:
                break
            named = {"feats": f[:, i: i + step.chunk][None, None], **state}
            raw_calls.append([quantize(named[name_at[d["index"]]], d) for d in net.inputs])
            _, state = step.step(f[:, i: i + step.chunk], state)
    return tflm_vs_litert_lsb(blob, raw_calls)


def export_stream(model, encoder, audio: np.ndarray, window_ref: np.ndarray, labels: list[str], chunk_ms: float,
                  invokes: int, episode_agreement, calibration_audio: np.ndarray | None = None,
                  int8_ranges: str = "mse", int8_weights: str = "channel") -> dict:
    """Convert and verify the step model on the held-out clips ``audio``; ``window_ref`` are the window model's
    embeddings of the same clips (for the decision agreement). Returns ``{"blob", "spec" (stream.json), "report",
    "stream" (the torch module)}``, and ``"int8"`` (the full-integer step model) with ``calibration_audio``
    (clips streamed in silence through the fp32 step model: the state values of real streams calibrate it;
    ``report["int8"]``: its decision agreement and accuracy against the fp32 step model's); raises nothing: the
    caller applies the checks (errors of the converter or the quantizer propagate)."""
    import litert_torch

    stream = build_stream(model, encoder, chunk_ms)
    fe = model.frontend.config
    shapes = stream.state_shapes()
    t0 = time.perf_counter()
    example = {"feats": torch.zeros(1, 1, fe.num_features, stream.chunk), **stream.init_state()}
    with tempfile.TemporaryDirectory() as d:
        litert_torch.convert(stream, sample_kwargs=example).export(f"{d}/s.tflite")
        blob = strip_tensor_names(Path(f"{d}/s.tflite").read_bytes())
    spec = {"inputs": [{"name": "feats", "shape": [1, 1, fe.num_features, stream.chunk], "dtype": "float32"}],
            "outputs": [{"name": "embedding", "shape": [1, encoder.embedding_dim], "dtype": "float32"}],
            "state": [{"name": k, "shape": list(s), "dtype": "float32", "init": 0.0} for k, s in shapes.items()],
            "chunk_frames": stream.chunk, "window_frames": stream.window, "lag_frames": stream.lag_frames,
            "layout": "state tensors are channels-last (1, frequency, time, channels)"}
    ref = stream_embeddings_torch(model, encoder, stream, audio)  # torch frontend, one pass
    left, right = context_padding(stream.lag_frames, stream.window, stream.chunk)
    step = StreamStep(TFLiteModel(blob), spec)  # the runtime's own step loop
    padded = padded_clips(audio, fe.hop_length, left, right)
    out = np.stack([step.embed(log_mel(a, fe)) for a in padded])  # Numba frontend, chunk by chunk
    err = float(np.abs(out - ref).max())
    rng_ = float(np.ptp(ref))
    ms = step.median_step_ms(invokes)  # as the runtime's detector steps it (state in the model's own types)
    agree, _, acc = episode_agreement(window_ref, out, labels)
    state_floats = int(sum(np.prod(s) for s in shapes.values()))
    report = {"bytes": len(blob), "max_abs_err": err, "max_err_rel_to_range": err / rng_,
              "median_ms_per_chunk": round(ms, 4),
              "chunk_ms": chunk_ms, "lag_ms": round(stream.lag_frames * 1000 * fe.frame_s),
              "state_floats": state_floats, "episode_accuracy": acc, "decision_agreement_with_window_model": agree,
              "convert_s": round(time.perf_counter() - t0, 1)}
    result = {"blob": blob, "spec": spec, "report": report, "stream": stream, "held_out_padded": padded}
    if calibration_audio is not None:
        calib = [log_mel(a, fe) for a in padded_clips(calibration_audio, fe.hop_length, left, right)]
        q = strip_tensor_names(quantize_int8(blob, stream_calls(step, calib), int8_ranges, int8_weights))
        step8 = StreamStep(TFLiteModel(q), spec)
        out8 = np.stack([step8.embed(log_mel(a, fe)) for a in padded])
        agree8, acc32, acc8 = episode_agreement(out, out8, labels)
        tied = sum(step8.net._in[k]["quantization"] == step8.net._out[k]["quantization"] for k in step.state_shapes)
        report["int8"] = {"bytes": len(q), "ranges": int8_ranges, "weights": int8_weights, "decision_agreement": agree8,
                          "episode_accuracy": acc8, "fp32_episode_accuracy": acc32,
                          "max_abs_err": float(np.abs(out8 - out).max()),
                          "rel_sq_err": float(((out8 - out) ** 2).sum(1).mean() / (out ** 2).sum(1).mean()),
                          "state_tensors_with_equal_in_out_quantization": int(tied),
                          "median_ms_per_chunk": round(step8.median_step_ms(invokes), 4)}
        result["int8"] = q
    return result
