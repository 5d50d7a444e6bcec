"""Knowledge distillation from a full-context teacher encoder into a streaming student.

Three modes (``ASRConfig.distill``):

- ``none``: the student's CTC loss only.
- ``token``: plus the frame-wise KL divergence from the teacher's CTC posteriors to the student's.
- ``layer``: plus, for each mapped pair (student layer ``i``, teacher layer ``j``):

  * an *auxiliary non-streaming branch* on student layer ``i`` -- a projection to the teacher width and
    full-context transformer layer(s) -- whose output is matched to teacher layer ``j`` frame by frame with
    ``L1 - log sigmoid(cos)``. The branch sees the whole utterance, like the teacher, so the student is not
    asked to reproduce features it cannot compute from its limited context; the gradient still reaches
    the streaming layers through it. The branches exist only in training and are never exported.
  * an APC-style future-prediction loss: a causal (frame-wise linear) predictor on student layer ``i`` at
    frame ``t`` regresses teacher layer ``j`` at frame ``t + k`` (L1).

Both encoders subsample by 4, so their frames align one to one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from speechedge.models.conformer import AttentionMask, ConformerBlock, ConformerConfig

__all__ = ["token_kd_loss", "LayerDistiller", "parse_layer_map", "DISTILL_MODES"]

DISTILL_MODES = ("none", "token", "layer")


def token_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, valid: torch.Tensor,
                  temperature: float = 1.0) -> torch.Tensor:
    """Mean over valid frames of ``KL(teacher || student)`` of the CTC posteriors. Shapes ``(B, T, V)``, valid
    ``(B, T)``."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1), log_target=True,
                  reduction="none").sum(-1)
    return (kl * valid).sum() / valid.sum().clamp(min=1) * t * t


def parse_layer_map(text: str, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """``"2:3,4:6"`` (1-based student:teacher) -> 0-based pairs. ``"auto"``: every second student layer and
    the last one, each mapped to the teacher layer at the same relative depth."""
    if text == "auto":
        studs = sorted({*range(2, student_layers + 1, 2), student_layers})
        pairs = [(s, max(1, round(s * teacher_layers / student_layers))) for s in studs]
    else:
        try:
            pairs = [tuple(int(v) for v in p.split(":")) for p in text.split(",") if p.strip()]
        except ValueError:
            raise ValueError(f"layer_map must look like '2:3,4:6' (student:teacher, 1-based) or 'auto', got {text!r}")
    for s, t in pairs:
        if not (1 <= s <= student_layers and 1 <= t <= teacher_layers):
            raise ValueError(f"layer_map pair {s}:{t} is out of range (student has {student_layers} layers, "
                             f"teacher {teacher_layers})")
    return [(s - 1, t - 1) for s, t in pairs]


class _AuxBranch(nn.Module):
    """Projection to the teacher width, then full-context transformer layer(s) (no convolution module)."""

    def __init__(self, d_student: int, teacher: ConformerConfig, num_layers: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d_student, teacher.d_model)
        cfg = ConformerConfig(n_mels=teacher.n_mels, d_model=teacher.d_model, num_heads=teacher.num_heads,
                              ff_mult=teacher.ff_mult, max_rel_pos=teacher.max_rel_pos, dropout=teacher.dropout,
                              causal=False)
        self.layers = nn.ModuleList(ConformerBlock(cfg, use_conv=False) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        mask = AttentionMask(valid)
        for layer in self.layers:
            x = layer(x, mask, valid)
        return x


def _match_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames of ``L1 (mean over dims) - log sigmoid(cosine)``."""
    l1 = (pred - target).abs().mean(-1)
    cos = F.logsigmoid(F.cosine_similarity(pred, target, dim=-1))
    return ((l1 - cos) * valid).sum() / valid.sum().clamp(min=1)


class LayerDistiller(nn.Module):
    """Auxiliary non-streaming branches + APC predictors for the mapped layer pairs (training only)."""

    def __init__(self, pairs: list[tuple[int, int]], d_student: int, teacher: ConformerConfig, *,
                 aux_layers: int = 1, apc_shift: int = 2) -> None:
        super().__init__()
        if apc_shift < 0:
            raise ValueError(f"apc_shift must be >= 0, got {apc_shift}")
        self.pairs, self.apc_shift = pairs, apc_shift
        self.branches = nn.ModuleList(_AuxBranch(d_student, teacher, aux_layers) for _ in pairs)
        self.predictors = nn.ModuleList(nn.Linear(d_student, teacher.d_model) for _ in pairs)

    def forward(self, student_hidden: list[torch.Tensor], teacher_hidden: list[torch.Tensor], valid: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(layer_loss, apc_loss)``, each the mean over the mapped pairs."""
        k = self.apc_shift
        layer, apc = [], []
        for (s, t), branch, pred in zip(self.pairs, self.branches, self.predictors):
            hs, ht = student_hidden[s], teacher_hidden[t].detach()
            layer.append(_match_loss(branch(hs, valid), ht, valid))
            if k == 0:
                apc.append((pred(hs) - ht).abs().mean(-1).mul(valid).sum() / valid.sum().clamp(min=1))
            elif hs.shape[1] > k:
                v = valid[:, k:]  # frame t + k must be valid (then t is too)
                err = (pred(hs[:, :-k]) - ht[:, k:]).abs().mean(-1)
                apc.append((err * v).sum() / v.sum().clamp(min=1))
        zero = student_hidden[0].new_zeros(())
        return (torch.stack(layer).mean() if layer else zero), (torch.stack(apc).mean() if apc else zero)
