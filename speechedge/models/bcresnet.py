"""BC-ResNet (broadcasted residual learning, Kim et al. 2021) for keyword spotting.

Input ``(batch, 1, n_mels, frames)`` log-mel, e.g. 40 x 101 for one second. Width ``b = 8 * tau``;
stage channels ``[2b, b, 1.5b, 2b, 2.5b, 4b]``; ``[2, 2, 4, 4]`` blocks; a 5x5 stem with frequency stride 2;
stages 1 and 2 halve the frequency axis; the frequency-depthwise convolutions are followed by
SubSpectralNorm (5 sub-bands) and the temporal depthwise convolutions are dilated ``2**stage``; the
classifier is a depthwise 5x5 convolution (no frequency padding: 5 bands -> 1), a pointwise convolution to
``4b``, average pooling and a 1x1 convolution to the classes. With 12 classes the parameter counts equal
the reference implementation's (tested): tau=1 9,232; 1.5 17,154; 2 27,284; 3 54,168; 6 187,812; 8 321,068.

``forward(x)`` returns class logits; ``embed(x)`` returns the pooled ``4b``-dimensional embedding (the
few-shot models use it; their head is dropped). Only ops TFLite expresses: conv, batch norm (folded at
export), reshape, mean, ReLU/SiLU.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["BLOCKS", "BCResNet", "SubSpectralNorm", "bcresnet_channels", "freeze_for_export"]


class SubSpectralNorm(nn.Module):
    """Batch norm with separate statistics per frequency sub-band: ``(B, C, F, T)`` -> same shape."""

    def __init__(self, channels: int, sub_bands: int = 5) -> None:
        super().__init__()
        self.sub_bands = sub_bands
        self.bn = nn.BatchNorm2d(channels * sub_bands)
        self.scaled = nn.Identity()  # the MUL's output of the inference form (a point for QAT, models/qat.py)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        if self.training:
            x = x.reshape(b, c * self.sub_bands, f // self.sub_bands, t)
            return self.bn(x).reshape(b, c, f, t)
        # Inference: the same normalisation as a (channel, frequency) affine map. Exported graphs then hold
        # one MUL and one ADD with constants (freeze_for_export) instead of reshape + transpose + batch norm
        # + reshape, which also lets full-integer quantization keep the tensor in int8.
        scale, shift = self.affine(c, f)
        return self.scaled(x * scale) + shift

    def affine(self, channels: int, freqs: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The inference normalisation as ``(scale, shift)``, each ``(1, channels, freqs, 1)``."""
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (channels * sub_bands,)
        shift = bn.bias - bn.running_mean * scale
        bands = self.sub_bands

        def per_band(v: torch.Tensor) -> torch.Tensor:
            return v.view(channels, bands, 1).expand(channels, bands, freqs // bands).reshape(1, channels, freqs, 1)

        return per_band(scale), per_band(shift)


class _ChannelFrequencyAffine(nn.Module):
    """``x * scale + shift`` with constant ``(1, C, F, 1)`` tensors: a frozen SubSpectralNorm."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def freeze_for_export(net: nn.Module, example: torch.Tensor) -> nn.Module:
    """An eval-mode copy of ``net`` whose SubSpectralNorms are constant per-(channel, frequency) affines.

    SubSpectralNorm's inference form builds its ``(1, C, F, 1)`` scale from the batch-norm parameters at run
    time (the frequency size is only known then); traced as is, the converter keeps that arithmetic and wraps
    every such block in TRANSPOSE/BROADCAST_TO/RESHAPE (17 + 8 + 8 ops in BC-ResNet-1). With the constants
    precomputed for ``example``'s shape the graph is convolutions, elementwise ops and means only (tested).
    """
    import copy

    net = copy.deepcopy(net).eval()
    shapes: dict[str, torch.Size] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, i[0].shape))
             for n, m in net.named_modules() if isinstance(m, SubSpectralNorm)]
    with torch.no_grad():
        net(example)
    for h in hooks:
        h.remove()
    for name, m in list(net.named_modules()):
        if isinstance(m, SubSpectralNorm):
            _, c, f, _ = shapes[name]
            with torch.no_grad():
                frozen = _ChannelFrequencyAffine(*(t.clone() for t in m.affine(c, f)))
            parent, _, attr = name.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, attr, frozen)
    return net


def _conv_bn(cin: int, cout: int, kernel, stride=1, groups: int = 1, dilation=1, norm: str = "bn",
             act: str | None = "relu") -> nn.Sequential:
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    dilation = (dilation, dilation) if isinstance(dilation, int) else dilation
    padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, padding, dilation, groups, bias=False)]
    layers.append(SubSpectralNorm(cout) if norm == "ssn" else nn.BatchNorm2d(cout))
    if act == "relu":
        layers.append(nn.ReLU())
    elif act == "silu":
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class BCResBlock(nn.Module):
    """One broadcasted residual block.

    f2: (1x1 conv if the width changes) -> frequency-depthwise 3x1 conv (stride on frequency) -> SSN.
    The result is averaged over frequency, then f1: time-depthwise 1x3 dilated conv -> BN -> SiLU (or ReLU) -> 1x1
    conv -> dropout, broadcast back over frequency and added to the f2 output (and to the input when the
    width is unchanged).
    """

    def __init__(self, cin: int, cout: int, stage: int, freq_stride: int, dropout: float = 0.1,
                 act: str = "silu") -> None:
        super().__init__()
        self.transition = cin != cout
        f2: list[nn.Module] = []
        if self.transition:
            f2.append(_conv_bn(cin, cout, 1))
        f2.append(_conv_bn(cout, cout, (3, 1), (freq_stride, 1), groups=cout, norm="ssn", act=None))
        self.f2 = nn.Sequential(*f2)
        self.f1 = nn.Sequential(
            _conv_bn(cout, cout, (1, 3), groups=cout, dilation=(1, 2**stage), act=act),
            nn.Conv2d(cout, cout, 1, bias=False),
            nn.Dropout2d(dropout),
        )
        # named points of the two tensors that are not a module's output (the frequency mean and the broadcast
        # sum): identities, there for quantization-aware training to hook (models/qat.py); no weights
        self.pooled = nn.Identity()
        self.summed = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x2 = self.f2(x)  # (B, C, F', T)
        x1 = self.f1(self.pooled(x2.mean(dim=2, keepdim=True)))  # (B, C, 1, T), broadcast over frequency
        out = self.summed(x2 + x1)
        if not self.transition:
            out = out + shortcut
        return F.relu(out)


def bcresnet_channels(tau: float) -> list[int]:
    b = int(8 * tau)
    return [2 * b, b, int(1.5 * b), 2 * b, int(2.5 * b), 4 * b]


BLOCKS = (2, 2, 4, 4)  # the reference's blocks per stage


class BCResNet(nn.Module):
    """BC-ResNet-tau. ``num_classes=0`` builds the encoder only (``embed``).

    ``blocks`` (per stage, default the reference's 2, 2, 4, 4) and ``act`` (the temporal branch's activation,
    ``"silu"`` as in the reference or ``"relu"``) exist for microcontrollers: TensorFlow Lite Micro's arena grows
    with the number of ops (~220 bytes each), SiLU is two ops (LOGISTIC, MUL) where ReLU fuses into the
    convolution, and every block adds ~13 ops to the streaming step graph (README, "A model for 32 KB").
    """

    def __init__(self, tau: float = 1.0, num_classes: int = 12, n_mels: int = 40, dropout: float = 0.1,
                 blocks: tuple[int, ...] = BLOCKS, act: str = "silu") -> None:
        super().__init__()
        if n_mels % 40:
            raise ValueError(f"BCResNet expects a multiple of 40 mel bands (SubSpectralNorm on 5 sub-bands "
                             f"after 3 halvings), got n_mels={n_mels}")
        blocks = tuple(int(n) for n in blocks)
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks must be 4 positive counts (one per stage), got {list(blocks)}")
        if act not in ("silu", "relu"):
            raise ValueError(f"act must be 'silu' or 'relu', got {act!r}")
        self.tau, self.blocks, self.act = tau, blocks, act
        c = bcresnet_channels(tau)
        self.embedding_dim = c[-1]
        self.stem = _conv_bn(1, c[0], 5, (2, 1))
        stages = []
        for stage, (n, cin, cout) in enumerate(zip(blocks, c[:4], c[1:5])):
            stage_blocks = [BCResBlock(cin if i == 0 else cout, cout, stage,
                                       2 if (stage in (1, 2) and i == 0) else 1, dropout, act) for i in range(n)]
            stages.append(nn.Sequential(*stage_blocks))
        self.stages = nn.Sequential(*stages)
        self.neck = nn.Sequential(
            nn.Conv2d(c[4], c[4], 5, groups=c[4], padding=(0, 2), bias=False),
            nn.Conv2d(c[4], c[5], 1, bias=False),
            nn.BatchNorm2d(c[5]),
            nn.ReLU(),
        )
        self.head = nn.Conv2d(c[5], num_classes, 1) if num_classes else None
        self.pooled = nn.Identity()  # the embedding (a point for quantization-aware training; no weights)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, n_mels, T)`` (or ``(B, n_mels, T)``) -> ``(B, 4b)`` pooled embedding."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        x = self.neck(self.stages(self.stem(x)))  # (B, 4b, F'', T)
        return self.pooled(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, n_mels, T)`` -> ``(B, num_classes)`` logits."""
        if self.head is None:
            raise RuntimeError("this BCResNet was built with num_classes=0; use embed()")
        e = self.embed(x)
        return self.head(e[:, :, None, None]).flatten(1)
