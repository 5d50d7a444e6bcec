"""The CTC ASR model: a frontend (from the recipe config), a Conformer encoder and a CTC projection."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from speechedge.features import FrontendConfig

from .conformer import ConformerConfig, ConformerEncoder, StreamState
from .frontend import TorchFrontend

__all__ = ["ASRModel", "ASRStep"]


class ASRModel(nn.Module):
    """Frontend + Conformer encoder + CTC projection.

    Args:
        enc: the encoder; its ``n_mels`` must equal the frontend's number of features.
        vocab: output classes (token 0 is the CTC blank).
        frontend: the feature frontend (the recipe config's).
    """

    def __init__(self, enc: ConformerConfig, vocab: int, frontend: FrontendConfig) -> None:
        super().__init__()
        if enc.n_mels != frontend.num_features:
            raise ValueError(f"encoder n_mels={enc.n_mels} but the frontend gives {frontend.num_features} features")
        self.frontend = TorchFrontend(frontend)
        self.encoder = ConformerEncoder(enc)
        self.ctc = nn.Linear(enc.d_model, vocab)
        self.arch = {"name": "asr_ctc", "encoder": dataclasses.asdict(enc), "vocab": vocab,
                     "frontend": frontend.to_dict()}

    def features(self, audio: torch.Tensor, num_samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, S)`` float audio -> ``((B, T, F) features, (B,) valid frames)``."""
        feats = self.frontend(audio).transpose(1, 2)
        lengths = 1 + torch.div(num_samples, self.frontend.config.hop_length, rounding_mode="floor")
        return feats, lengths

    def forward(self, feats, lengths, chunk_frames: int = 0, left_chunks: int = -1):
        """-> ``(logits (B, T', V), out_lengths, hidden)``."""
        out, out_len, hidden = self.encoder(feats, lengths, chunk_frames, left_chunks)
        return self.ctc(out), out_len, hidden


class ASRStep(nn.Module):
    """One streaming chunk of an :class:`ASRModel` as the exported graph: named tensors in, named tensors out.

    ``forward(feats=..., **state)`` takes the chunk's features ``(1, 4 * chunk, F)`` and every
    :class:`StreamState` field by name, and returns ``{"log_probs": (1, chunk, V), **new_state}``.
    The names are :meth:`StreamState.names`; the exported model's signature carries them.
    """

    def __init__(self, model: ASRModel) -> None:
        super().__init__()
        self.encoder, self.ctc = model.encoder, model.ctc

    def forward(self, feats: torch.Tensor, **state: torch.Tensor) -> dict[str, torch.Tensor]:
        y, new = self.encoder.step(feats, StreamState.unflatten(state))
        return {"log_probs": self.ctc(y).log_softmax(-1), **new.flatten()}
