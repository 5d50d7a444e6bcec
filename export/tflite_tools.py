"""TFLite helpers that need no torch: an interpreter wrapper (ai-edge-litert, falling back to tflite_runtime),
op listing, a TensorFlow Lite Micro op check, an activation-memory (tensor arena) estimate, C arrays.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["strip_tensor_names", "make_interpreter", "run_tflite", "ops_used", "TFLM_BUILTINS", "check_tflm_ops", "arena_estimate",
           "c_array", "median_invoke_ms"]

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


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter, OpResolverType
        except ImportError as e:
            raise ImportError("no TFLite interpreter: pip install ai-edge-litert (or tflite-runtime on numpy<2)") from e
    return Interpreter, OpResolverType


def make_interpreter(model: str | Path | bytes, *, threads: int = 1, delegate: bool = True):
    """An allocated interpreter. ``delegate=False`` runs the reference kernels (no XNNPACK), which keeps the
    op list as written in the file."""
    Interpreter, OpResolverType = _interpreter_class()
    kwargs = {"num_threads": threads}
    if not delegate:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if isinstance(model, (bytes, bytearray)):
        it = Interpreter(model_content=bytes(model), **kwargs)
    else:
        it = Interpreter(model_path=str(model), **kwargs)
    it.allocate_tensors()
    return it


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] in (np.int8, np.uint8, np.int16):
        scale, zero = detail["quantization"]
        info = np.iinfo(detail["dtype"])
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])
    return x.astype(detail["dtype"])


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] in (np.int8, np.uint8, np.int16):
        scale, zero = detail["quantization"]
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


def run_tflite(it, x: np.ndarray) -> np.ndarray:
    """One invoke with float input/output, (de)quantizing when the model's I/O is integer."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], _quantize(np.asarray(x, np.float32), inp))
    it.invoke()
    return _dequantize(it.get_tensor(out["index"]), out)


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


def c_array(data: bytes, name: str) -> tuple[str, str]:
    """``(header, source)`` defining ``alignas(16) const unsigned char name[]`` and ``name_len``."""
    header = (f"// Generated by speechedge export. The model flatbuffer for TensorFlow Lite Micro.\n#pragma once\n"
              f"#include <cstddef>\nextern const unsigned char {name}[];\nextern const size_t {name}_len;\n")
    rows = [", ".join(f"0x{b:02x}" for b in data[i : i + 12]) for i in range(0, len(data), 12)]
    source = (f'#include "{name}.h"\nalignas(16) const unsigned char {name}[] = {{\n  ' + ",\n  ".join(rows)
              + f"\n}};\nconst size_t {name}_len = {len(data)};\n")
    return header, source


def median_invoke_ms(it, x: np.ndarray, n: int = 1000) -> float:
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], _quantize(np.asarray(x, np.float32), inp))
    for _ in range(10):
        it.invoke()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)
