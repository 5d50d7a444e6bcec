"""Export-side TFLite tools (no torch): tensor-name stripping, op listing, a TensorFlow Lite Micro op check,
an activation-memory (tensor arena) estimate, C arrays. The interpreter wrapper itself is
:mod:`speechedge.runtime.tflite`, shared with the runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speechedge.io import capture_native_output
from speechedge.runtime.tflite import make_interpreter

__all__ = ["strip_tensor_names", "ops_used", "TFLM_BUILTINS", "check_tflm_ops", "arena_estimate",
           "firmware_files", "tflm_run", "tflm_vs_litert_lsb"]

# Builtin operators of TensorFlow Lite Micro's all-ops resolver (micro_mutable_op_resolver.h), the
# kernels a microcontroller build can link.
TFLM_BUILTINS = frozenset("""
ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND BROADCAST_ARGS
BROADCAST_TO CALL_ONCE CAST CEIL CIRCULAR_BUFFER CONCATENATION CONV_2D COS CUMSUM DEPTH_TO_SPACE DEPTHWISE_CONV_2D
DEQUANTIZE DIV ELU EMBEDDING_LOOKUP EQUAL ETHOSU EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED
GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG
LOG_SOFTMAX LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC MAX_POOL_2D MAXIMUM MEAN MINIMUM MIRROR_PAD MUL NEG
NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE READ_VARIABLE REDUCE_MAX RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
RESIZE_NEAREST_NEIGHBOR ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V
SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM SVDF TANH TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM
UNPACK VAR_HANDLE WHILE ZEROS_LIKE
""".split())


def strip_tensor_names(model: bytes) -> bytes:
    """Replace the converter's long debug tensor names with short ``t{index}`` names.

    litert-torch names every tensor after the PyTorch op that made it; for BC-ResNet-1 those names were
    86 KB of a 147 KB file, more than the weights. Graph inputs and outputs keep their names; signatures
    point at tensors by index, so nothing else changes (the parity checks run on the stripped model).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    if any(b.offset for b in m.buffers or []):
        # constants stored after the flatbuffer (offset/size): repacking would drop them; keep the file as is
        return model
    for sg in m.subgraphs:
        keep = set(sg.inputs) | set(sg.outputs)
        for i, t in enumerate(sg.tensors):
            if i not in keep:
                t.name = f"t{i}"
    builder = flatbuffers.Builder(len(model))
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def ops_used(model: str | Path | bytes) -> list[str]:
    it = make_interpreter(model, delegate=False)
    return [op["op_name"] for op in it._get_ops_details()]


def check_tflm_ops(model) -> list[str]:
    """Ops of ``model`` that TensorFlow Lite Micro does not provide (empty = fits)."""
    return sorted({op for op in ops_used(model) if op not in TFLM_BUILTINS})


def arena_estimate(model) -> dict:
    """Peak bytes of simultaneously live activations in execution order (a tensor arena lower bound),
    and the bytes of constant tensors (weights, flash)."""
    it = make_interpreter(model, delegate=False)
    details = {t["index"]: t for t in it.get_tensor_details()}
    ops = it._get_ops_details()
    size = {i: int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize for i, t in details.items()}
    produced = {o for op in ops for o in op["outputs"]}
    graph_inputs = {d["index"] for d in it.get_input_details()}
    constants = {i for op in ops for i in op["inputs"] if i >= 0 and i not in produced and i not in graph_inputs}
    last_use: dict[int, int] = {}
    for k, op in enumerate(ops):
        for i in op["inputs"]:
            if i >= 0:
                last_use[i] = k
    for d in it.get_output_details():
        last_use[d["index"]] = len(ops)
    first = {i: -1 for i in graph_inputs}
    for k, op in enumerate(ops):
        for o in op["outputs"]:
            first.setdefault(o, k)
    peak = 0
    for k in range(len(ops)):
        live = sum(size[i] for i, f in first.items() if f <= k <= last_use.get(i, f))
        peak = max(peak, live)
    return {"peak_activation_bytes": int(peak), "constant_bytes": int(sum(size[i] for i in constants))}


def _cfloat(v: float) -> str:
    """A C float literal (``1.0f``, ``1e-06f``; ``1f`` is not C)."""
    text = f"{float(v):.9g}"
    return (text if any(c in text for c in ".e") else text + ".0") + "f"


def _floats(values, per_row: int = 8) -> str:
    vals = [_cfloat(v) for v in np.asarray(values).reshape(-1)]
    return ",\n  ".join(", ".join(vals[i: i + per_row]) for i in range(0, len(vals), per_row))


def _ints(values, per_row: int = 16) -> str:
    vals = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    return ",\n  ".join(", ".join(vals[i: i + per_row]) for i in range(0, len(vals), per_row))


def _io_block(net, name: str, stream: dict | None) -> str:
    """The header lines that describe the model's inputs, outputs and (streaming model) state."""
    def q(d):
        scale, zero = d["quantization"]
        return float(scale), int(zero)

    def dims(d):
        return ", ".join(str(int(v)) for v in d["shape"])

    if stream is None:
        (inp,), (out,) = net.inputs, net.outputs
        (in_s, in_z), (out_s, out_z) = q(inp), q(out)
        return f"""// Input: {np.dtype(inp["dtype"]).name} {list(map(int, inp["shape"]))} = (batch, 1, mel bands, frames), one window of
// log-mel features; q = round(feature / scale) + zero_point, clamped to the type's range.
constexpr int {name}_input_dims[{len(inp["shape"])}] = {{{dims(inp)}}};
constexpr float {name}_input_scale = {_cfloat(in_s)};
constexpr int {name}_input_zero_point = {in_z};
// Output: {np.dtype(out["dtype"]).name} {list(map(int, out["shape"]))}; value = (q - zero_point) * scale.
constexpr int {name}_output_dims[{len(out["shape"])}] = {{{dims(out)}}};
constexpr float {name}_output_scale = {_cfloat(out_s)};
constexpr int {name}_output_zero_point = {out_z};
"""
    in_pos = {d["index"]: i for i, d in enumerate(net.inputs)}
    out_pos = {d["index"]: i for i, d in enumerate(net.outputs)}
    feats, emb = net._in["feats"], net._out["embedding"]
    (f_s, f_z), (e_s, e_z) = q(feats), q(emb)
    rows = []
    for st in stream["state"]:
        i, o = net._in[st["name"]], net._out[st["name"]]
        (i_s, i_z), (o_s, o_z) = q(i), q(o)
        nbytes = int(np.prod(i["shape"])) * np.dtype(i["dtype"]).itemsize
        rows.append(f'  {{"{st["name"]}", {in_pos[i["index"]]}, {out_pos[o["index"]]}, {nbytes}, {_cfloat(i_s)}, {i_z}, '
                    f"{_cfloat(o_s)}, {o_z}}},")
    upper = name.upper()
    return f"""// A streaming step model: every {stream["chunk_frames"]} new feature frames, one invoke; the embedding of the last
// {stream["window_frames"]} frames comes out {stream["lag_frames"]} frames late (the centred convolutions' look-ahead).
constexpr int {upper}_CHUNK_FRAMES = {stream["chunk_frames"]};
constexpr int {upper}_WINDOW_FRAMES = {stream["window_frames"]};
constexpr int {upper}_LAG_FRAMES = {stream["lag_frames"]};
// Input {in_pos[feats["index"]]} "feats": {np.dtype(feats["dtype"]).name} {list(map(int, feats["shape"]))} = (1, 1, mel bands, chunk frames);
// q = round(feature / scale) + zero_point. Output {out_pos[emb["index"]]} "embedding": {np.dtype(emb["dtype"]).name} {list(map(int, emb["shape"]))};
// value = (q - zero_point) * scale.
constexpr int {name}_feats_input = {in_pos[feats["index"]]};
constexpr int {name}_feats_dims[{len(feats["shape"])}] = {{{dims(feats)}}};
constexpr float {name}_feats_scale = {_cfloat(f_s)};
constexpr int {name}_feats_zero_point = {f_z};
constexpr int {name}_embedding_output = {out_pos[emb["index"]]};
constexpr int {name}_embedding_dims[{len(emb["shape"])}] = {{{dims(emb)}}};
constexpr float {name}_embedding_scale = {_cfloat(e_s)};
constexpr int {name}_embedding_zero_point = {e_z};
// State: all zero (q = zero_point) at the start of a stream; after each invoke copy every output to its input.
// Where the output's scale and zero point equal the input's the copy is a memcpy of `bytes`; otherwise
// requantize: q_in = round((q_out - out_zero_point) * out_scale / in_scale) + in_zero_point.
struct {name}_state_tensor {{
  const char* name;
  int input;  // interpreter input index
  int output;  // interpreter output index
  int bytes;
  float in_scale;
  int in_zero_point;
  float out_scale;
  int out_zero_point;
}};
constexpr int {name}_num_state = {len(rows)};
constexpr {name}_state_tensor {name}_state[{len(rows)}] = {{
{chr(10).join(rows)}
}};
"""


def firmware_files(model: bytes, name: str, frontend, *, arena_bytes: int, arena_source: str,
                   stream: dict | None = None, level=None) -> tuple[str, str]:
    """``(header, source)`` for firmware: the model as a C array plus everything needed to feed it.

    The header states the input/output shapes and quantization (scale, zero point), the frontend's constants
    (sample rate, FFT/window/hop sizes, the log floor) and the tensor arena size with where it comes from; the
    source defines the model bytes, the analysis window and the sparse mel filterbank (filter ``m`` weights
    bins ``first_bin[m] ...`` with ``weights[offsets[m]:offsets[m+1]]``). ``frontend`` is the model's
    :class:`~speechedge.features.FrontendConfig`. For a streaming step model pass its ``stream.json`` as
    ``stream``: the header then gives the chunk, window and lag, the ``feats`` input and ``embedding`` output
    by interpreter index, and a table of the state tensors (input and output index, bytes, both quantizations).
    ``level`` (the model's :class:`~speechedge.features.InputLevel`) adds the input level normalization's
    constants and formula.
    """
    from speechedge.kernels.frontend import constants
    from speechedge.runtime.tflite import TFLiteModel

    net = TFLiteModel(model)
    c = constants(frontend)
    fe = frontend
    upper = name.upper()
    header = f"""// Generated by speechedge export: the model and its input pipeline for TensorFlow Lite Micro.
#pragma once
#include <cstddef>
#include <cstdint>

// The model flatbuffer (alignas(16)), {len(model)} bytes.
extern const unsigned char {name}[];
extern const size_t {name}_len;

// Tensor arena: {arena_bytes} bytes ({arena_source}).
constexpr size_t {name}_arena_bytes = {arena_bytes};

{_io_block(net, name, stream)}
// Frontend (the features the model was trained on). Frame t covers samples
// {"[t * hop - n_fft / 2, t * hop + n_fft / 2) (centred frames; zeros before the start and after the end)" if fe.center else "[t * hop, t * hop + n_fft)"}; x = frame * window
// ({fe.win_length}-sample periodic Hann, zero-padded to n_fft, centred); power = |FFT(x)|^2 for bins
// 0..n_fft/2; mel[m] = sum_k weights * power[first_bin[m] + k]; feature = ln(mel[m] + log_floor).
constexpr int {upper}_SAMPLE_RATE = {fe.sample_rate};
constexpr int {upper}_N_FFT = {fe.n_fft};
constexpr int {upper}_WIN_LENGTH = {fe.win_length};
constexpr int {upper}_HOP_LENGTH = {fe.hop_length};
constexpr int {upper}_N_MELS = {fe.n_mels};
constexpr float {upper}_LOG_FLOOR = {_cfloat(fe.log_floor)};
extern const float {name}_window[{fe.n_fft}];
extern const int16_t {name}_mel_first_bin[{fe.n_mels}];
extern const int16_t {name}_mel_offsets[{fe.n_mels + 1}];
extern const float {name}_mel_weights[{len(c.fb_weights)}];
""" + (f"""
// Input level normalization (boost only), before the model: E = max over the window's frames of
// sum_m mel[m]; if E < 10^(TARGET_DB / 10), every mel[m] of the window is multiplied by
// g = min(10^(TARGET_DB / 10) / E, 10^(MAX_GAIN_DB / 10)) before the log (= the audio amplified by sqrt(g));
// a streaming model takes E over the last LEVEL_WINDOW_FRAMES frames (at least its window), the new chunk included.
// Only speech sets g: a window whose E is less than MIN_RANGE_DB above its 10th-percentile frame energy
// (steady noise) keeps the g used last (1 at the start of a stream).
constexpr float {upper}_LEVEL_TARGET_DB = {_cfloat(level.target_db)};
constexpr float {upper}_LEVEL_MAX_GAIN_DB = {_cfloat(level.max_gain_db)};
constexpr float {upper}_LEVEL_MIN_RANGE_DB = {_cfloat(level.min_range_db)};
constexpr int {upper}_LEVEL_WINDOW_FRAMES = {round((level.window_s or 0) / fe.frame_s)};
""" if level is not None else "")
    rows = [", ".join(f"0x{b:02x}" for b in model[i: i + 12]) for i in range(0, len(model), 12)]
    source = (f'#include "{name}.h"\n\nalignas(16) const unsigned char {name}[] = {{\n  ' + ",\n  ".join(rows)
              + f"\n}};\nconst size_t {name}_len = {len(model)};\n\n"
              f"const float {name}_window[{fe.n_fft}] = {{\n  {_floats(c.window)}\n}};\n"
              f"const int16_t {name}_mel_first_bin[{fe.n_mels}] = {{\n  {_ints(c.fb_first_bin)}\n}};\n"
              f"const int16_t {name}_mel_offsets[{fe.n_mels + 1}] = {{\n  {_ints(c.fb_offsets)}\n}};\n"
              f"const float {name}_mel_weights[{len(c.fb_weights)}] = {{\n  {_floats(c.fb_weights)}\n}};\n")
    return header, source


def tflm_run(model: bytes, inputs: np.ndarray | list | None) -> dict:
    """Run a model in the TensorFlow Lite Micro interpreter (the ``tflite-micro`` package): the outputs for
    each input ``(N, *input_shape)`` (already in the input's dtype) and the tensor arena TFLM allocated
    (``arena_bytes`` = head, the activations, + tail, its persistent data). ``None`` when the package is
    not installed. ``inputs=None`` only allocates and returns no outputs; a list feeds a model with several
    inputs (a step model with named state): one sequence of arrays per invoke, in the model's input order (batch
    axis included), and ``outputs`` is then one list of every output per invoke.

    The arena figures come from TFLM's own recording allocator, which prints them from C++; they are read by
    pointing file descriptors 1 and 2 at a temporary file for the call.
    """
    import re

    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        return None
    it = runtime.Interpreter.from_bytes(bytes(model))
    outs = []
    if isinstance(inputs, list):
        n_out = len(make_interpreter(model, delegate=False).get_output_details())
        for call in inputs:
            for i, x in enumerate(call):
                it.set_input(np.ascontiguousarray(x), i)
            it.invoke()
            outs.append([np.array(it.get_output(j)) for j in range(n_out)])
    else:
        for x in (inputs if inputs is not None else []):
            it.set_input(np.ascontiguousarray(x[None]), 0)
            it.invoke()
            outs.append(np.array(it.get_output(0))[0])
    with capture_native_output() as printed:
        it.print_allocations()
    text = printed[0]
    field = {k: int(v) for k, v in re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", text)}
    if "total" not in field:
        raise RuntimeError(f"TFLM printed no arena allocation figures: {text[:200]!r}")
    if not outs:
        outs = None
    elif not isinstance(inputs, list):
        outs = np.stack(outs)
    return {"outputs": outs, "arena_bytes": field["total"],
            "arena_head_bytes": field.get("head"), "arena_tail_bytes": field.get("tail")}


def tflm_vs_litert_lsb(model: bytes, calls: list) -> int | None:
    """Largest difference, in output steps (LSB), between TensorFlow Lite Micro and LiteRT running an int8 model
    on the same raw inputs: ``calls`` holds one sequence of arrays per invoke, in the model's input order (batch
    axis included); every output of every invoke is compared. ``None`` without ``tflite-micro``."""
    micro = tflm_run(model, calls)
    if micro is None:
        return None
    it = make_interpreter(model)
    ins, outs = it.get_input_details(), it.get_output_details()
    worst = 0
    for call, micro_out in zip(calls, micro["outputs"]):
        for x, d in zip(call, ins):
            it.set_tensor(d["index"], x)
        it.invoke()
        for d, m in zip(outs, micro_out):
            worst = max(worst, int(np.abs(it.get_tensor(d["index"]).astype(np.int32) - m.astype(np.int32)).max()))
    return worst
