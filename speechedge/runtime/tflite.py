"""The one TFLite interpreter wrapper: float in, float out, inputs and outputs bound by name.

Torch-free (numpy and a TFLite interpreter only); both the runtime and export use it, so quantization of
integer inputs and dequantization of integer outputs are written once (:func:`quantize`, :func:`dequantize`).
The interpreter is ai-edge-litert (LiteRT), falling back to tflite-runtime on numpy<2 devices.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from speechedge.io import capture_native_output

__all__ = ["make_interpreter", "quantize", "dequantize", "TFLiteModel", "median_invoke_ms", "median_run_ms",
           "median_ms"]

_INT_TYPES = (np.int8, np.uint8, np.int16)


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
    """An allocated interpreter for a file or flatbuffer bytes.

    ``delegate=False`` runs the reference kernels (no XNNPACK), which keeps the op list as written in the
    file. A file that is not a TFLite flatbuffer raises ``ValueError`` naming it.
    """
    Interpreter, OpResolverType = _interpreter_class()
    kwargs = {"num_threads": threads}
    if not delegate:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    what = "<in-memory model>" if isinstance(model, (bytes, bytearray)) else str(model)
    printed: list[str] = []
    try:
        # the interpreter prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every load; what a
        # user sees should be ours, so that line is dropped and anything else it prints is passed on
        with capture_native_output((2,)) as printed:
            if isinstance(model, (bytes, bytearray)):
                it = Interpreter(model_content=bytes(model), **kwargs)
            else:
                it = Interpreter(model_path=str(model), **kwargs)
            it.allocate_tensors()
    except ValueError as e:
        raise ValueError(f"{what}: not a loadable TFLite model ({e}); re-run `speechedge export`") from e
    finally:
        rest = [line for line in "".join(printed).splitlines()
                if line.strip() and not line.startswith("INFO: Created TensorFlow Lite XNNPACK delegate")]
        if rest:
            print("\n".join(rest), file=sys.stderr)
    return it


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float -> the tensor's type (affine int8/uint8/int16 with its scale and zero point; float as is)."""
    dtype = detail["dtype"]
    if dtype in _INT_TYPES:
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(np.asarray(x, np.float32) / scale + zero), info.min, info.max).astype(dtype)
    return np.asarray(x, dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    """The tensor's type -> float32."""
    if detail["dtype"] in _INT_TYPES:
        scale, zero = detail["quantization"]
        return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


class TFLiteModel:
    """One model with float inputs/outputs whatever its I/O types, called by position or by name.

    ``model(x)`` feeds the inputs in the model's order and returns the outputs in its order (single-input
    classifiers and embedders). ``model.run({"feats": x, "att_key": ...})`` binds by the names of the model's
    signature (streaming models with named state) and returns ``{name: array}``.

    Args:
        model: a ``.tflite`` file or its bytes.
        threads: interpreter threads.
    """

    def __init__(self, model: str | Path | bytes, threads: int = 1) -> None:
        if isinstance(model, (bytes, bytearray)):
            self.path = Path("<memory>")
        else:
            self.path = Path(model)
            if not self.path.is_file():
                raise FileNotFoundError(f"{self.path}: no such model file (run `speechedge export` first)")
        self.it = make_interpreter(model, threads=threads)
        self.inputs = self.it.get_input_details()
        self.outputs = self.it.get_output_details()
        # signature name -> tensor index (the interpreter's own table; no SignatureRunner, whose reference to
        # the interpreter would make plain invoke() refuse to run)
        full = self.it._get_full_signature_list() if self.it.get_signature_list() else {}
        sig = next(iter(full.values()), None)
        by_index = {d["index"]: d for d in self.inputs + self.outputs}
        if sig is not None:
            self._in = {name: by_index[i] for name, i in sig["inputs"].items()}
            self._out = {name: by_index[i] for name, i in sig["outputs"].items()}
        else:
            self._in = {d["name"]: d for d in self.inputs}
            self._out = {d["name"]: d for d in self.outputs}
        self.input_names = list(self._in)
        self.output_names = list(self._out)

    def __call__(self, *xs: np.ndarray) -> list[np.ndarray]:
        """Inputs in the model's input order; returns the outputs in its output order."""
        if len(xs) != len(self.inputs):
            raise ValueError(f"{self.path.name}: expects {len(self.inputs)} inputs, got {len(xs)}")
        for x, d in zip(xs, self.inputs):
            self.it.set_tensor(d["index"], quantize(x, d))
        self.it.invoke()
        return [dequantize(self.it.get_tensor(d["index"]), d) for d in self.outputs]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs and outputs by signature name (float in, float out)."""
        missing = set(self._in) - set(inputs)
        extra = set(inputs) - set(self._in)
        if missing or extra:
            raise ValueError(f"{self.path.name}: inputs {sorted(self._in)} expected; missing "
                             f"{sorted(missing)}, unknown {sorted(extra)}")
        for name, x in inputs.items():
            d = self._in[name]
            self.it.set_tensor(d["index"], quantize(x, d))
        self.it.invoke()
        return {name: dequantize(self.it.get_tensor(d["index"]), d) for name, d in self._out.items()}


def median_invoke_ms(model: TFLiteModel, *xs: np.ndarray, n: int = 1000) -> float:
    """Median wall time of one invoke (inputs set once), in milliseconds."""
    it = model.it
    for x, d in zip(xs, model.inputs):
        it.set_tensor(d["index"], quantize(x, d))
    for _ in range(10):
        it.invoke()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def median_ms(call, n: int = 1000, warmup: int = 10) -> float:
    """Median wall time of ``call()`` over ``n`` calls after ``warmup`` ones, in milliseconds."""
    times = []
    for _ in range(n + warmup):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[warmup:]) * 1000)


def median_run_ms(model: TFLiteModel, inputs: dict[str, np.ndarray], n: int = 1000) -> float:
    """Median wall time of one :meth:`TFLiteModel.run` (binding every named input, reading every output: what a
    streaming host pays per step, state included), in milliseconds, after 10 warm-up calls."""
    return median_ms(lambda: model.run(inputs), n)
