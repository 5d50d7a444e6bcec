"""Quantization-aware training (QAT) of BC-ResNet: the int8 activations of the exported graph, simulated.

The int8 export (``export/kws.py``, ``export/quantize.py``) quantizes a trained float model after training:
int8 weights and one int8 scale for every activation of the converted graph, each activation's range chosen
for the least rounding + clipping error over calibration values. QAT lets training see that rounding:
:class:`ActivationFakeQuant` puts a fake int8 quantizer (``torch.ao.quantization.FakeQuantize``: moving-average
min/max of the batches, straight-through gradient) on every tensor that the converted graph holds in int8,
using forward hooks, so the model's modules, weights and checkpoints are unchanged and the export that follows
is the ordinary post-training quantization of the fine-tuned weights (with its own ranges).

Which tensors: the graph's input; each convolution's output after its batch norm is folded in (with a
following ReLU fused); SubSpectralNorm's MUL and ADD (it does not fold); SiLU's input and output; the frequency
mean and the broadcast sum of each block (one ADD with the ReLU in a block without shortcut); each block's
output; the embedding (or logits). Not simulated: the weights' int8 rounding (weight-only int8 kept 99.8% of
the decisions; fake-quantizing them needs a re-parametrised state dict), LOGISTIC's fixed output scale, and
the embedding's rounding on in-context steps (``context_s``: the pooled window is cut out of a longer input
outside the encoder). One process only: the observers are not synchronised between ``torchrun`` ranks.

Batch norm runs on its running statistics during QAT (:meth:`ActivationFakeQuant.freeze_norms`): the
quantizers then see the tensors of the folded graph, and SubSpectralNorm takes its exported affine form.
Measured on a CPU-trained BC-ResNet-1 (README, "Export"): 600 steps changed nothing that matters; post-training
quantization with least-error ranges already keeps 99% of the decisions.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver

from .bcresnet import BCResBlock, BCResNet, SubSpectralNorm

__all__ = ["ActivationFakeQuant", "int8_fake_quant"]

_NORMS = (nn.BatchNorm2d, SubSpectralNorm)


def int8_fake_quant(averaging_constant: float = 0.01) -> FakeQuantize:
    """A per-tensor asymmetric int8 fake quantizer (-128..127, zero point inside the range: TFLite's int8
    activation scheme) whose range is a moving average of the batches' min/max."""
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=torch.qint8,
                        qscheme=torch.per_tensor_affine, averaging_constant=averaging_constant)


def _quantized_outputs(encoder: BCResNet) -> list[str]:
    """Names of the modules of ``encoder`` whose output the converted graph holds as one int8 tensor.

    Within a ``Sequential``, a convolution followed by a norm, and a norm or convolution followed by ReLU, are
    one op after conversion (batch norm folded, ReLU fused), so only the last of such a run is quantized.
    """
    fused_into_next: set[str] = set()
    for name, m in encoder.named_modules():
        if isinstance(m, nn.Sequential):
            kids = list(m.named_children())
            for (a, ma), (_, mb) in zip(kids, kids[1:]):
                # batch norm folds into the convolution before it; SubSpectralNorm does not (its scale varies
                # over frequency: the graph holds the convolution's output, then a MUL and an ADD)
                if (isinstance(ma, nn.Conv2d) and isinstance(mb, nn.BatchNorm2d)) or \
                        (isinstance(ma, (*_NORMS, nn.Conv2d)) and isinstance(mb, nn.ReLU)):
                    fused_into_next.add(f"{name}.{a}" if name else a)
        if isinstance(m, BCResBlock) and m.transition:
            # without a shortcut the broadcast sum and the ReLU are one ADD with a fused activation
            fused_into_next.add(f"{name}.summed")
    names = []
    for name, m in encoder.named_modules():
        parent = name.rpartition(".")[0]
        if isinstance(encoder.get_submodule(parent) if parent else encoder, SubSpectralNorm) and \
                isinstance(m, nn.BatchNorm2d):
            continue  # SubSpectralNorm's inner batch norm: its output is the SubSpectralNorm's
        if name in fused_into_next:
            continue
        if isinstance(m, (nn.Conv2d, *_NORMS, nn.ReLU, nn.SiLU, BCResBlock)) or \
                (isinstance(m, nn.Identity) and name.rpartition(".")[2] in ("pooled", "summed", "scaled")):
            names.append(name)
    return names


class ActivationFakeQuant(nn.Module):
    """Fake int8 quantization of a BC-ResNet's activations, attached with hooks (:meth:`attach`).

    The quantizers are the module's own state (``state_dict``: ranges and flags), so a training checkpoint
    keeps them and a resumed run continues with the same ranges; the encoder's state dict does not change.

    Args:
        encoder: the BC-ResNet to quantize.
        averaging_constant: weight of each batch in the moving min/max.
    """

    def __init__(self, encoder: BCResNet, averaging_constant: float = 0.01) -> None:
        super().__init__()
        self._encoder = [encoder]  # a list: not a submodule (its weights belong to the model)
        self.points = _quantized_outputs(encoder)
        self.quant = nn.ModuleDict({"input": int8_fake_quant(averaging_constant)})
        for name in self.points:
            self.quant[name.replace(".", "_")] = int8_fake_quant(averaging_constant)
        self.active = True
        self._handles: list = []

    def attach(self) -> ActivationFakeQuant:
        """Install the hooks (input pre-hook on the stem, output hooks on every quantized point)."""
        enc = self._encoder[0]
        self._handles.append(enc.stem.register_forward_pre_hook(
            lambda m, args: (self._q("input", args[0]), *args[1:]) if self.active else None))
        for name in self.points:
            key = name.replace(".", "_")
            self._handles.append(enc.get_submodule(name).register_forward_hook(
                lambda m, args, out, key=key: self._q(key, out) if self.active else None))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _q(self, key: str, x: torch.Tensor) -> torch.Tensor:
        return self.quant[key](x)

    @contextlib.contextmanager
    def disabled(self):
        """The float model inside the block (quantizers bypassed, ranges not updated)."""
        was, self.active = self.active, False
        try:
            yield
        finally:
            self.active = was

    @contextlib.contextmanager
    def observing(self, on: bool):
        """Ranges updated (``on``) or held (evaluation) inside the block."""
        before = {k: bool(fq.observer_enabled[0]) for k, fq in self.quant.items()}
        for fq in self.quant.values():
            fq.enable_observer(on)
        try:
            yield
        finally:
            for k, fq in self.quant.items():
                fq.enable_observer(before[k])

    def freeze_norms(self) -> None:
        """Batch norms (and SubSpectralNorms) use their running statistics from now on, also in train mode."""
        def keep_eval(m, args):
            m.training = False
        for m in self._encoder[0].modules():
            if isinstance(m, _NORMS):
                self._handles.append(m.register_forward_pre_hook(keep_eval))

    def ranges(self) -> dict[str, tuple[float, float]]:
        """The moving ``(min, max)`` of every quantized tensor (for reports; ``(inf, -inf)`` before any batch)."""
        return {k: (float(fq.activation_post_process.min_val), float(fq.activation_post_process.max_val))
                for k, fq in self.quant.items()}
