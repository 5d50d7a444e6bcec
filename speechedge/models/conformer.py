"""Conformer encoder for CTC speech recognition, full-context (teacher) or chunk-streaming (student).

Input ``(batch, frames, n_mels)`` log-mel at 10 ms; output ``(batch, frames // 4, d_model)`` at 40 ms.

- Subsampling: two 3x3 convolutions with stride 2 over (time, frequency), *valid* in time after three
  frames of left padding, so output frame ``j`` sees input frames ``4j-3 .. 4j+3``: no lookahead past its
  own 40 ms, and ``frames // 4`` outputs for any length.
- Blocks (pre-norm, Gulati et al. 2020): half feed-forward, multi-head self-attention with a learned
  clipped relative-position bias per head (so the same weights run chunk by chunk with a key cache), a
  convolution module (pointwise + GLU, depthwise, LayerNorm, SiLU, pointwise), half feed-forward, LayerNorm.
- Streaming (``causal=True``): the depthwise convolution is causal and attention is chunk-wise: a query in
  chunk ``m`` sees keys in chunks ``m - left_chunks .. m`` (all earlier chunks when ``left_chunks < 0``).
  Masks are finite and additive (``-1e4``), as full-integer TFLite needs. Lookahead is the rest of the
  current chunk; the left context is ``left_chunks * chunk_frames`` frames for attention and
  ``conv_kernel - 1`` frames per convolution module.

``forward(feats, lengths, chunk_frames, left_chunks)`` is the masked full-sequence forward used in training;
``init_state(batch, chunk_frames, left_chunks)`` / ``step(feats, state)`` run the same computation chunk by
chunk with explicit :class:`StreamState` (equal outputs, tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["AttentionMask", "ConformerConfig", "ConformerEncoder", "StreamState", "chunk_mask", "MASK_VALUE", "SUBSAMPLING"]

MASK_VALUE = -1e4  # finite: int8 conversion breaks on -inf/boolean masks, and exp(-1e4) is exactly 0 in fp32
SUBSAMPLING = 4
_SUB_CONTEXT = 3  # input frames the subsampling needs before the first frame of a chunk
_SUB_BLOCK = 1024  # output frames per block when the subsampling runs without gradients on long input


@dataclass(frozen=True)
class ConformerConfig:
    n_mels: int = 80
    d_model: int = 144
    num_layers: int = 4
    num_heads: int = 4
    ff_mult: int = 4
    conv_kernel: int = 15
    sub_channels: int = 64
    max_rel_pos: int = 64  # relative distances are clipped to +-max_rel_pos frames (40 ms each)
    dropout: float = 0.1
    causal: bool = True  # causal convolutions (streaming student); False = symmetric (teacher)

    def __post_init__(self) -> None:
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        if self.conv_kernel < 1 or (not self.causal and self.conv_kernel % 2 == 0):
            raise ValueError(f"conv_kernel must be >= 1 (odd for a non-causal model), got {self.conv_kernel}")


class StreamState(NamedTuple):
    """Everything a streaming encoder carries from one chunk to the next.

    Shapes (``L`` layers, ``B`` streams, ``C = left_chunks * chunk_frames`` cached frames, ``d = d_model``,
    ``K`` the convolution kernel):

    - ``sub_cache``: ``(B, 3, n_mels)`` the last three normalised input frames (subsampling context).
    - ``att_key``, ``att_value``: ``(L, B, C, d)`` projected keys / values of the last ``C`` frames per layer.
    - ``att_mask``: ``(B, C)`` additive mask of the cache slots: 0 = holds a frame, -1e4 = not filled yet.
    - ``conv_cache``: ``(L, B, d, K - 1)`` the last ``K - 1`` inputs of each depthwise convolution.
    """

    sub_cache: torch.Tensor
    att_key: torch.Tensor
    att_value: torch.Tensor
    att_mask: torch.Tensor
    conv_cache: torch.Tensor

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The state tensors' names, in field order: the names of the exported model's state inputs/outputs."""
        return cls._fields

    def flatten(self) -> dict[str, torch.Tensor]:
        """``{name: tensor}`` (the one place the state is turned into named graph inputs/outputs)."""
        return dict(zip(self._fields, self))

    @classmethod
    def unflatten(cls, tensors: dict) -> StreamState:
        """Inverse of :meth:`flatten`; a missing or unknown name raises ``ValueError``."""
        missing, extra = set(cls._fields) - set(tensors), set(tensors) - set(cls._fields)
        if missing or extra:
            raise ValueError(f"StreamState: missing {sorted(missing)}, unknown {sorted(extra)}")
        return cls(**{k: tensors[k] for k in cls._fields})


def chunk_mask(frames: int, chunk_frames: int, left_chunks: int, device=None) -> torch.Tensor:
    """Additive ``(frames, frames)`` attention mask: 0 where query ``i`` may see key ``j``, else -1e4.

    ``chunk_frames <= 0`` means full context (all zeros).
    """
    pos = torch.arange(frames, device=device)
    return _chunk_mask_rows(pos, pos, chunk_frames, left_chunks)


def _chunk_mask_rows(q_pos: torch.Tensor, k_pos: torch.Tensor, chunk_frames: int, left_chunks: int) -> torch.Tensor:
    if chunk_frames <= 0:
        return torch.zeros(len(q_pos), len(k_pos), device=q_pos.device)
    cq, ck = q_pos // chunk_frames, k_pos // chunk_frames
    allowed = ck[None, :] <= cq[:, None]
    if left_chunks >= 0:
        allowed &= ck[None, :] >= cq[:, None] - left_chunks
    return torch.where(allowed, 0.0, MASK_VALUE)


class AttentionMask:
    """The additive mask of a masked full-sequence forward, built for a block of query rows at a time.

    A 10-minute utterance has 15,000 output frames: one ``(B, H, T, T)`` mask, score and softmax tensor
    each would take 3.6 GB. Attention runs over blocks of query rows sized so that a block's scores hold at
    most ``BLOCK_ELEMENTS`` values per utterance and head (one block for training-length utterances), so
    memory grows linearly with ``T``. With a limited left context (``left_chunks >= 0``) a block attends only
    the keys its chunks may see, so time grows linearly too. Rows of a softmax are independent and the keys
    left out are masked anyway: the result is the same as one ``(T, T)`` attention (tested).

    Args:
        valid: ``(B, T)`` 1.0 for real frames, 0.0 for padding (keys that are padding are masked).
        chunk_frames, left_chunks: as :func:`chunk_mask`.
    """

    BLOCK_ELEMENTS = 1 << 20

    def __init__(self, valid: torch.Tensor, chunk_frames: int = 0, left_chunks: int = -1) -> None:
        self.key_pad = (1.0 - valid)[:, None, None, :] * MASK_VALUE  # (B, 1, 1, T)
        self.chunk_frames, self.left_chunks = chunk_frames, left_chunks
        self.pos = torch.arange(valid.shape[1], device=valid.device)

    def blocks(self) -> list[tuple[int, int, int, int]]:
        """``(query start, query stop, key start, key stop)`` of each block."""
        t, c = len(self.pos), self.chunk_frames
        banded = c > 0 and self.left_chunks >= 0
        if banded:  # whole chunks; a block of r rows sees at most r + left_chunks * c keys
            lc = self.left_chunks * c
            r = int((math.sqrt(lc * lc + 4 * self.BLOCK_ELEMENTS) - lc) / 2)
            rows = max(c, r // c * c)
        else:
            rows = max(1, self.BLOCK_ELEMENTS // max(1, t))
        out = []
        for s in range(0, t, rows):
            e = min(s + rows, t)
            if banded:
                out.append((s, e, max(0, (s // c - self.left_chunks) * c), min(t, -(-e // c) * c)))
            else:
                out.append((s, e, 0, t))
        return out

    def rows(self, att: RelPosSelfAttention, block: tuple[int, int, int, int]) -> torch.Tensor:
        """``(B, H, rows, keys)``: chunk mask + key padding + ``att``'s relative-position bias of a block."""
        qs, qe, ks, ke = block
        q, k = self.pos[qs:qe], self.pos[ks:ke]
        return (_chunk_mask_rows(q, k, self.chunk_frames, self.left_chunks)[None, None]
                + self.key_pad[..., ks:ke] + att.bias(q, k)[None])


class Subsampling(nn.Module):
    """(B, T, F) -> (B, T // 4, d): two stride-2 3x3 convolutions, valid in time after left padding."""

    def __init__(self, n_mels: int, channels: int, d_model: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=2)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=2)
        f = ((n_mels - 3) // 2 + 1 - 3) // 2 + 1
        self.out = nn.Linear(channels * f, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, T + 3, F), already left-padded/cached
        t_out = ((x.shape[1] - 3) // 2 + 1 - 3) // 2 + 1
        if not torch.is_grad_enabled() and t_out > _SUB_BLOCK:
            # output frame j reads input frames 4j .. 4j + 6 only: blocks of output frames bound the
            # (B, C, T/2, F) activations of long utterances (150 MB for 10 minutes); the same numbers up to
            # float rounding (a convolution kernel may sum in another order for another input length)
            return torch.cat([self._run(x[:, 4 * j: 4 * min(j + _SUB_BLOCK, t_out) + 3])
                              for j in range(0, t_out, _SUB_BLOCK)], dim=1)
        return self._run(x)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(x.unsqueeze(1)))
        h = F.relu(self.conv2(h))  # (B, C, T', F')
        b, c, t, f = h.shape
        return self.out(h.permute(0, 2, 1, 3).reshape(b, t, c * f))


class FeedForward(nn.Module):
    def __init__(self, d: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.net = nn.Sequential(nn.Linear(d, d * mult), nn.SiLU(), nn.Dropout(dropout), nn.Linear(d * mult, d),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(x))


class RelPosSelfAttention(nn.Module):
    """Multi-head self-attention plus a learned bias per head and clipped relative distance (key - query)."""

    def __init__(self, d: int, heads: int, max_rel_pos: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dk, self.max_rel_pos = heads, d // heads, max_rel_pos
        self.norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.rel_bias = nn.Parameter(torch.zeros(2 * max_rel_pos + 1, heads))
        self.drop = nn.Dropout(dropout)

    def bias(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        """(H, Tq, Tk) bias for query positions ``q_pos`` and key positions ``k_pos``."""
        rel = (k_pos[None, :] - q_pos[:, None]).clamp(-self.max_rel_pos, self.max_rel_pos) + self.max_rel_pos
        return self.rel_bias[rel].permute(2, 0, 1)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.qkv(self.norm(x)).chunk(3, dim=-1)  # each (B, T, d)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """q (B, Tq, d), k/v (B, Tk, d), mask additive, broadcastable to (B, H, Tq, Tk) -> (B, Tq, d)."""
        b, tq, d = q.shape
        tk = k.shape[1]
        q = q.view(b, tq, self.heads, self.dk).transpose(1, 2)
        k = k.view(b, tk, self.heads, self.dk).transpose(1, 2)
        v = v.view(b, tk, self.heads, self.dk).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.dk ** -0.5 + mask
        attn = self.drop(torch.softmax(scores, dim=-1))
        y = torch.matmul(attn, v).transpose(1, 2).reshape(b, tq, d)
        return self.drop(self.out(y))


class ConvModule(nn.Module):
    """Pointwise + GLU, depthwise (causal or centred), LayerNorm, SiLU, pointwise. Left context K - 1 frames."""

    def __init__(self, d: int, kernel: int, causal: bool, dropout: float) -> None:
        super().__init__()
        self.kernel, self.causal = kernel, causal
        self.norm = nn.LayerNorm(d)
        self.pw1 = nn.Linear(d, 2 * d)
        self.dw = nn.Conv1d(d, d, kernel, groups=d)
        self.dw_norm = nn.LayerNorm(d)
        self.pw2 = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(self.pw1(self.norm(x)), dim=-1).transpose(1, 2)  # (B, d, T)

    def post(self, h: torch.Tensor) -> torch.Tensor:
        return self.drop(self.pw2(F.silu(self.dw_norm(h.transpose(1, 2)))))

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        h = self.pre(x)
        if valid is not None:  # padded frames must not leak into valid ones through the (centred) convolution
            h = h * valid[:, None, :]
        pad = (self.kernel - 1, 0) if self.causal else ((self.kernel - 1) // 2, (self.kernel - 1) // 2)
        return self.post(self.dw(F.pad(h, pad)))


class ConformerBlock(nn.Module):
    def __init__(self, cfg: ConformerConfig, use_conv: bool = True, causal: bool | None = None) -> None:
        super().__init__()
        d = cfg.d_model
        self.ff1 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.att = RelPosSelfAttention(d, cfg.num_heads, cfg.max_rel_pos, cfg.dropout)
        self.conv = ConvModule(d, cfg.conv_kernel, cfg.causal if causal is None else causal, cfg.dropout) \
            if use_conv else None
        self.ff2 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, mask: AttentionMask, valid: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, d); ``mask`` gives the additive attention mask a block of query rows at a time."""
        x = x + 0.5 * self.ff1(x)
        q, k, v = self.att.project(x)
        blocks = mask.blocks()
        if len(blocks) == 1:
            x = x + self.att.attend(q, k, v, mask.rows(self.att, blocks[0]))
        else:  # each block's rows go straight into one tensor: kept-alive block outputs would fragment the heap
            att = torch.empty_like(x)
            for b in blocks:
                att[:, b[0]:b[1]] = self.att.attend(q[:, b[0]:b[1]], k[:, b[2]:b[3]], v[:, b[2]:b[3]],
                                                    mask.rows(self.att, b))
            x = x + att
        if self.conv is not None:
            x = x + self.conv(x, valid)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)


class ConformerEncoder(nn.Module):
    """See the module docstring. ``feat_mean`` / ``feat_std`` (global CMVN) are buffers set before training."""

    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("feat_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("feat_std", torch.ones(cfg.n_mels))
        self.subsample = Subsampling(cfg.n_mels, cfg.sub_channels, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(ConformerBlock(cfg) for _ in range(cfg.num_layers))

    def _normalise(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.feat_mean) / self.feat_std

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, chunk_frames: int = 0, left_chunks: int = -1
                ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Masked full-sequence forward.

        Args:
            feats: ``(B, T, n_mels)`` log-mel; lengths: ``(B,)`` valid input frames.
            chunk_frames: attention chunk in output frames (40 ms); ``<= 0`` = full context.
            left_chunks: chunks of left context; ``< 0`` = unlimited.
        Returns:
            ``(out (B, T // 4, d), out_lengths (B,), hidden)`` with ``hidden`` the output of every block.
        """
        if self.cfg.causal is False and chunk_frames > 0:
            raise ValueError("a non-causal (teacher) encoder cannot run chunk-wise; use chunk_frames=0")
        x = F.pad(self._normalise(feats), (0, 0, _SUB_CONTEXT, 0))
        x = self.drop(self.subsample(x))
        b, t, _ = x.shape
        out_len = torch.div(lengths, SUBSAMPLING, rounding_mode="floor").clamp(max=t)
        valid = (torch.arange(t, device=x.device)[None, :] < out_len[:, None]).to(x.dtype)  # (B, T)
        mask = AttentionMask(valid, chunk_frames, left_chunks)
        hidden = []
        for layer in self.layers:
            x = layer(x, mask, valid)
            hidden.append(x)
        return x, out_len, hidden

    # -- streaming ---------------------------------------------------------------------------------------
    def init_state(self, batch: int, chunk_frames: int, left_chunks: int) -> StreamState:
        """Zero state for ``batch`` streams; the cache holds ``left_chunks * chunk_frames`` frames."""
        if not self.cfg.causal:
            raise ValueError("only a causal encoder streams (this one has causal=False)")
        if chunk_frames <= 0 or left_chunks < 0:
            raise ValueError(f"streaming needs chunk_frames > 0 and left_chunks >= 0 (constant memory), got "
                             f"{chunk_frames} and {left_chunks}")
        cfg, dev = self.cfg, self.feat_mean.device
        c = left_chunks * chunk_frames
        return StreamState(
            sub_cache=torch.zeros(batch, _SUB_CONTEXT, cfg.n_mels, device=dev),
            att_key=torch.zeros(cfg.num_layers, batch, c, cfg.d_model, device=dev),
            att_value=torch.zeros(cfg.num_layers, batch, c, cfg.d_model, device=dev),
            att_mask=torch.full((batch, c), MASK_VALUE, device=dev),
            conv_cache=torch.zeros(cfg.num_layers, batch, cfg.d_model, cfg.conv_kernel - 1, device=dev))

    def step(self, feats: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        """One chunk: ``feats (B, 4 * chunk_frames, n_mels)`` -> ``(out (B, chunk_frames, d), new_state)``.

        Equals the rows of :meth:`forward` (same chunk size and left chunks) for this chunk.
        """
        x = torch.cat([state.sub_cache, self._normalise(feats)], dim=1)
        new_sub = x[:, -_SUB_CONTEXT:]
        x = self.subsample(x)  # (B, c, d)
        c = x.shape[1]
        cache = state.att_key.shape[2]
        pos = torch.arange(cache + c, device=x.device)
        mask = torch.cat([state.att_mask, torch.zeros(x.shape[0], c, device=x.device)], dim=1)  # (B, cache + c)
        keys, values, convs = [], [], []
        for i, layer in enumerate(self.layers):
            x = x + 0.5 * layer.ff1(x)
            q, k, v = layer.att.project(x)
            k_all = torch.cat([state.att_key[i], k], dim=1)
            v_all = torch.cat([state.att_value[i], v], dim=1)
            att_mask = mask[:, None, None, :] + layer.att.bias(pos[cache:], pos)[None]
            x = x + layer.att.attend(q, k_all, v_all, att_mask)
            keys.append(k_all[:, c:])
            values.append(v_all[:, c:])
            h = torch.cat([state.conv_cache[i], layer.conv.pre(x)], dim=2)  # (B, d, K - 1 + c)
            convs.append(h[:, :, c:])
            x = x + layer.conv.post(layer.conv.dw(h))
            x = x + 0.5 * layer.ff2(x)
            x = layer.norm(x)
        new = StreamState(sub_cache=new_sub, att_key=torch.stack(keys), att_value=torch.stack(values),
                          att_mask=mask[:, c:], conv_cache=torch.stack(convs))
        return x, new
