"""Keyword-spotting models: a frontend (from the recipe config) in front of a BC-ResNet.

Each model knows its architecture as a plain dict (:attr:`arch`), stored in the checkpoint next to the
weights, so that export, evaluation and the runtime rebuild exactly the trained model (frontend and clip
length included) without the recipe that trained it (:func:`speechedge.models.load_checkpoint`).
"""

from __future__ import annotations

import torch
from torch import nn

from speechedge.features import FrontendConfig, num_frames

from .bcresnet import BLOCKS, BCResNet, freeze_for_export
from .bcresnet_stream import context_embeddings
from .fewshot import DummyPrototypes
from .frontend import TorchFrontend

__all__ = ["KWSClassifier", "FewShotKWS"]


class _KWSBase(nn.Module):
    def __init__(self, frontend: FrontendConfig, clip_samples: int) -> None:
        super().__init__()
        if clip_samples <= 0:
            raise ValueError(f"clip_samples must be positive, got {clip_samples}")
        self.frontend = TorchFrontend(frontend)
        self.clip_samples = clip_samples

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(1, num_features, frames)`` of one clip: the exported graph's input without the batch."""
        fe = self.frontend.config
        return 1, fe.num_features, num_frames(self.clip_samples, fe)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, clip_samples)`` audio -> ``(B, num_features, frames)``."""
        return self.frontend(audio)


class KWSClassifier(_KWSBase):
    """Frontend + BC-ResNet classifier. ``forward`` takes features ``(B, F, T)`` -> ``(B, classes)`` logits."""

    def __init__(self, tau: float, num_classes: int, frontend: FrontendConfig, clip_samples: int) -> None:
        super().__init__(frontend, clip_samples)
        self.net = BCResNet(tau, num_classes, n_mels=frontend.num_features)
        self.arch = {"name": "kws_classifier", "tau": tau, "num_classes": num_classes,
                     "frontend": frontend.to_dict(), "clip_samples": clip_samples}

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats.unsqueeze(1))

    def graph(self) -> nn.Module:
        """The exported graph: ``(B, 1, F, T)`` features -> logits (a frozen copy, :func:`freeze_for_export`)."""
        return freeze_for_export(self.net, torch.zeros(1, *self.input_shape))


class _Embedder(nn.Module):
    def __init__(self, encoder: BCResNet) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed(x)


class FewShotKWS(_KWSBase):
    """Frontend + BC-ResNet encoder (+ D-ProtoNet dummy generator, + LibriWord head for AuxSL).

    ``forward`` takes features ``(B, F, T)`` -> ``(B, 4b)`` embeddings. An input longer than the model's
    window (``T`` > :attr:`input_shape`'s frames: a clip with audio around it, as streaming training feeds it)
    is pooled over its centre window only, which is what the streaming step model computes
    (:func:`speechedge.models.bcresnet_stream.context_embeddings`).
    """

    def __init__(self, tau: float, method: str, num_dummies: int, aux_classes: int, frontend: FrontendConfig,
                 clip_samples: int, blocks: tuple[int, ...] = BLOCKS, act: str = "silu") -> None:
        super().__init__(frontend, clip_samples)
        self.encoder = BCResNet(tau, num_classes=0, n_mels=frontend.num_features, blocks=blocks, act=act)
        dim = self.encoder.embedding_dim
        self.dummy = DummyPrototypes(dim, num_dummies) if method == "dprotonet" else None
        self.aux_head = nn.Linear(dim, aux_classes) if aux_classes else None
        self.arch = {"name": "fewshot_kws", "tau": tau, "method": method, "num_dummies": num_dummies,
                     "aux_classes": aux_classes, "frontend": frontend.to_dict(), "clip_samples": clip_samples}
        if tuple(blocks) != BLOCKS or act != "silu":  # (absent = the reference, as in checkpoints made before)
            self.arch.update(blocks=list(blocks), act=act)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        window = self.input_shape[-1]
        if feats.shape[-1] <= window:
            return self.encoder.embed(feats)
        return context_embeddings(self.encoder, feats.unsqueeze(1), (feats.shape[-1] - window) // 2, window,
                                  grad=True)

    def graph(self) -> nn.Module:
        """The exported graph: ``(B, 1, F, T)`` features -> embeddings (a frozen copy, :func:`freeze_for_export`;
        the dummy generator runs on the host)."""
        return freeze_for_export(_Embedder(self.encoder), torch.zeros(1, *self.input_shape))
