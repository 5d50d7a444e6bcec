"""Full-integer int8 post-training quantization of an fp32 flatbuffer (ai-edge-quantizer), one place for the
KWS and the streaming ASR exports.

ai-edge-quantizer's static ``wi8_ai8`` recipe: per-channel symmetric int8 weights, per-tensor asymmetric int8
activations, int8 inputs and outputs. Its calibration sets each activation's range to a *moving average of every
calibration input's own min and max*, so a tensor whose extremes vary from input to input (louder and quieter
clips, the log-mel floor of silence, a few large SubSpectralNorm outputs) is clipped on every input above the
average. On a BC-ResNet-1 few-shot model that clipping, spread over 90 tensors, cost 1.3% relative squared error
of the embedding and 8.5% of the 5-way decisions (README, "Export").

``ranges="mse"`` (the default) pools the values instead: every activation tensor of the float graph is run over
the calibration inputs into torch's ``HistogramObserver``, which chooses the range with the least L2 error of
rounding plus clipping over the histogram of all values (PyTorch's histogram calibration); those ranges replace
the quantizer's before the int8 model is built (0.26% error, 4.4% of the decisions on the same model).
Weights and op-imposed scales (LOGISTIC's fixed 1/256) stay as the quantizer sets them. ``ranges="average"`` is
the quantizer's own calibration.

``activations="int16"`` is 16x8 quantization (the quantizer's ``wi8_ai16`` recipe: int8 weights, symmetric int16
activations, TFLite's and TFLM's ``*_16x8`` kernels): 256x finer activation steps, for graphs whose int8
activations lose too much (the 10 h streaming ASR student: int8 +9.1 CER points, 16x8 -0.25; README "Export"), at
twice the activation memory and, on x86, reference-kernel speed. It takes the quantizer's own ranges.

:func:`quantize_dynamic` is dynamic-range quantization, the usual phone format (TFLite's "dynamic range
quantization"; the quantizer's ``dynamic_wi8_afp32`` recipe): int8 weights, float inputs, outputs and
activations, each layer's input quantized on the fly by the kernel. No calibration, about a quarter of the fp32
file, float accuracy nearly kept; not for integer-only hardware. Convolutions keep one weight scale per output
channel; FULLY_CONNECTED gets one per tensor (the quantizer writes it once per channel), because TFLite 2.14's
hybrid FULLY_CONNECTED (tflite-runtime's last wheel, what many boards run) reads per-channel weights with the
first channel's scale: the streaming ASR step model's log-probabilities came out up to 1.8 (of a 3.3 range) off
fp32 there and right in LiteRT (``test_device_env_gives_the_same_outputs`` runs both).
"""

from __future__ import annotations

import copy
import functools
import sys

import numpy as np

__all__ = ["ACTIVATION_TYPES", "RANGE_METHODS", "WEIGHT_GRANULARITIES", "check_int8_options", "evenly_spaced",
           "quantize_dynamic", "quantize_int8"]

ACTIVATION_TYPES = ("int8", "int16")
RANGE_METHODS = ("mse", "average")
WEIGHT_GRANULARITIES = ("channel", "tensor")


def check_int8_options(ranges: str, weights: str, names: tuple[str, str] = ("ranges", "weights")) -> None:
    """A clear error for an unknown range method or weight granularity, naming the argument (``names``)."""
    if ranges not in RANGE_METHODS:
        raise ValueError(f"{names[0]} must be one of {', '.join(RANGE_METHODS)}, got {ranges!r}")
    if weights not in WEIGHT_GRANULARITIES:
        raise ValueError(f"{names[1]} must be one of {', '.join(WEIGHT_GRANULARITIES)}, got {weights!r}")


def evenly_spaced(items: list, limit: int) -> list:
    """At most ``limit`` of ``items``, spread evenly from the first to the last (calibration subsets: the
    calibration clips come grouped by input level, so a prefix would leave the loudest group out)."""
    if len(items) <= limit:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def _activation_indices(it) -> set[int]:
    """Tensor indices of the graph inputs and of every op output (everything that is not a constant)."""
    ops = it._get_ops_details()
    return {d["index"] for d in it.get_input_details()} | {o for op in ops for o in op["outputs"] if o >= 0}


@functools.lru_cache(maxsize=1)
def _scale_sharing_ops() -> tuple[frozenset[str], frozenset[str]]:
    """The quantizer's own lists of ops whose outputs take the input's scale (RESHAPE, TRANSPOSE, SLICE, PAD, ...)
    and of ops whose inputs take the output's scale (CONCATENATION, PACK, ...)."""
    from ai_edge_quantizer.algorithms.utils.common_utils import OpQuantConstraint
    from ai_edge_quantizer.utils.constrained_ops_utils import get_constrained_op_list

    def names(c) -> frozenset[str]:
        return frozenset(getattr(op, "value", op) for op in get_constrained_op_list(c))

    return names(OpQuantConstraint.SAME_AS_INPUT_SCALE), names(OpQuantConstraint.SAME_AS_OUTPUT_SCALE)


def _shared_range_groups(it, signature: str) -> dict[int, str]:
    """Tensor index -> group name for the activations that must share one int8 range: a signature input and
    output of the same name (a streaming model's state: the step writes what the next step reads), and the
    tensors the quantizer ties to one scale anyway (the input and outputs of RESHAPE, TRANSPOSE, SLICE, PAD, ...;
    the inputs and output of CONCATENATION, PACK, ...). Ranged apart, each mismatch becomes a requantizing op."""
    same_as_input, same_as_output = _scale_sharing_ops()
    live = _activation_indices(it)
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    sig = it._get_full_signature_list()[signature]
    for name, i in sig["inputs"].items():
        if name in sig["outputs"]:
            union(i, sig["outputs"][name])
    for op in it._get_ops_details():
        ins = [i for i in op["inputs"] if i in live]
        outs = [o for o in op["outputs"] if o in live]
        if op["op_name"] in same_as_input and ins:
            for o in outs:
                union(o, ins[0])
        elif op["op_name"] in same_as_output and outs:
            for i in ins:
                union(i, outs[0])
    members: dict[int, list[int]] = {}
    for i in list(parent):
        members.setdefault(find(i), []).append(i)
    return {i: f"group{root}" for root, m in members.items() if len(m) > 1 for i in m}


def _mse_ranges(fp32: bytes, signature: str, calls: list[dict], qsvs: dict) -> dict:
    """``qsvs`` with the min/max of every per-tensor activation replaced by its least-L2-error int8 range.

    Tensors that must share a range (:func:`_shared_range_groups`: a streaming model's state in and out, and
    what the quantizer ties to one scale) share one observer, fed with all of them: where nothing between them
    rescales, the int8 state a step writes is byte for byte what the next step reads (tested).
    """
    import torch
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from torch.ao.quantization import HistogramObserver

    # reference kernels: every tensor of the graph as written (a delegate would fuse them away)
    it = Interpreter(model_content=fp32, experimental_preserve_all_tensors=True, num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    runner = it.get_signature_runner(signature)
    details = it.get_tensor_details()
    index = {d["name"]: d["index"] for d in details}
    live = _activation_indices(it)
    group = _shared_range_groups(it, signature)
    names = [n for n, qsv in qsvs.items() if index.get(n) in live and np.size(qsv.get("min", ())) == 1]
    group = {n: group.get(index.get(n), n) for n in names}
    observers = {group[n]: HistogramObserver(quant_min=-128, quant_max=127, dtype=torch.qint8) for n in names}
    for call in calls:
        runner(**call)
        for n in names:
            value = it.get_tensor(index[n])
            if value.dtype == np.float32:
                observers[group[n]](torch.from_numpy(np.array(value)))
    out = dict(qsvs)
    for n in names:
        obs = observers[group[n]]
        if not torch.isfinite(obs.min_val).all():
            continue  # never observed as float (an integer tensor): keep the quantizer's own entry
        scale, zero = obs.calculate_qparams()
        lo, hi = float(scale * (-128 - zero)), float(scale * (127 - zero))
        old = qsvs[n]
        out[n] = {**old, "min": np.full(np.shape(old["min"]), lo, np.asarray(old["min"]).dtype),
                  "max": np.full(np.shape(old["max"]), hi, np.asarray(old["max"]).dtype)}
    return out


def _tensorwise(base: list[dict], ops: tuple[str, ...]) -> list[dict]:
    """``base`` (a recipe whose first entry covers every op, ``"*"``) with one weight scale per tensor for
    ``ops``: an entry per op after it, which the quantizer reads as overriding the ``"*"`` one."""
    if not base or base[0].get("operation") != "*":
        raise ValueError(f"expected an ai-edge-quantizer recipe whose first entry covers every op ('*'), got "
                         f"{base[:1]!r}; check the installed ai-edge-quantizer version")
    out = copy.deepcopy(base)
    for op in ops:
        entry = copy.deepcopy(base[0])
        entry["operation"] = op
        entry["op_config"]["weight_tensor_config"]["granularity"] = "TENSORWISE"
        out.append(entry)
    return out


def _recipe(weights: str, activations: str = "int8") -> list[dict]:
    """ai-edge-quantizer's static wi8/ai8 (or wi8/ai16) recipe; ``weights="tensor"``: one weight scale per
    convolution instead of one per output channel (the file loses every per-channel scale and int64 zero-point
    vector: 15 KB of BC-ResNet-1's 59 KB)."""
    from ai_edge_quantizer import recipe

    base = recipe.static_wi8_ai16() if activations == "int16" else recipe.static_wi8_ai8()
    if weights == "channel":
        return base
    return _tensorwise(base, ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))


def quantize_int8(fp32: bytes, calls: list[dict], ranges: str = "mse", weights: str = "channel",
                  activations: str = "int8") -> bytes:
    """The full-integer int8 model of ``fp32`` (int8 weights; int8 or int16 activations), calibrated on ``calls``
    (one dict of named inputs per invoke of the model's first signature).

    Args:
        fp32: the float flatbuffer.
        calls: calibration inputs, ``{input_name: array with the batch axis}`` each.
        ranges: ``mse`` (least-error activation ranges over the pooled values, the default) or ``average`` (the
            quantizer's moving average of each input's min and max).
        weights: ``channel`` (one scale per output channel, the default) or ``tensor`` (one per weight tensor).
        activations: ``int8`` (the default) or ``int16`` (16x8; takes ``ranges="average"``).
    """
    from ai_edge_quantizer import quantizer

    from speechedge.runtime.tflite import TFLiteModel

    check_int8_options(ranges, weights)
    if activations not in ACTIVATION_TYPES:
        raise ValueError(f"activations must be one of {', '.join(ACTIVATION_TYPES)}, got {activations!r}")
    if activations == "int16" and ranges != "average":
        raise ValueError("int16 activations take ranges='average' (the least-error ranges are int8's); got "
                         f"{ranges!r}")
    signature = next(iter(TFLiteModel(fp32).it.get_signature_list()))
    q = quantizer.Quantizer(bytearray(fp32))
    q.load_quantization_recipe(_recipe(weights, activations))

    def run():
        qsvs = q.calibrate({signature: calls})
        if ranges == "mse":
            qsvs = _mse_ranges(fp32, signature, calls, qsvs)
        return q.quantize(qsvs)

    return _quietly(run)


def quantize_dynamic(fp32: bytes) -> bytes:
    """The dynamic-range model of ``fp32`` (a float flatbuffer): int8 weights (per channel for convolutions, per
    tensor for FULLY_CONNECTED), float activations; no calibration. Returns the flatbuffer."""
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(bytearray(fp32))
    q.load_quantization_recipe(_tensorwise(recipe.dynamic_wi8_afp32(), ("FULLY_CONNECTED",)))
    return _quietly(q.quantize)


def _quietly(run) -> bytes:
    """``run()``'s quantization result as a flatbuffer, with the quantizer's progress bars and size lines (not
    ours) captured; on failure what it printed goes to stderr, since it explains the failure."""
    from speechedge.io import capture_native_output

    printed: list[str] = []
    try:
        with capture_native_output() as printed:
            return bytes(run().quantized_model)
    except Exception:
        if printed:
            sys.stderr.write(printed[0][-4000:])
        raise
