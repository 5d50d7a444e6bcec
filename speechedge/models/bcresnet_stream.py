"""BC-ResNet run chunk by chunk with explicit state: the streaming (stateful) keyword-spotting graph.

The window detector re-runs the whole 1-second window every stride (every layer recomputes ~100 frames to
move 10); this graph computes each frame once. BC-ResNet never strides in time, so every layer is either
per-frame (1x1 and frequency convolutions, batch norm, the broadcast, the frequency mean) or a temporal
convolution, and streaming needs only three kinds of state, as in kws_streaming:

- a **ring buffer** in front of each temporal convolution: the last ``(k - 1) * dilation`` frames of its
  input (the stem's 5x5, each block's dilated 1x3, the neck's 5x5), which the convolution reads with
  *valid* padding in time;
- a **delay line** on each block's residual path: the temporal convolution is centred, so its output for
  frame ``t`` needs frames up to ``t + dilation``; the residual (``x2``, plus the block input where the
  width is unchanged) is held back by ``dilation`` frames to meet it;
- the **pooling window**: the last ``window - chunk`` neck frames, so that each step's embedding is the mean
  over the last ``window`` frames, as in the non-streaming model.

The output therefore lags the input by :attr:`StreamingBCResNet.lag_frames` = 2 + sum of the dilations + 2 =
58 frames (0.58 s at a 10 ms hop): the price of the centred convolutions the model was trained with.

Equivalence (tested): after enough frames, the embedding a step returns equals the non-streaming network's
neck output averaged over the same ``window`` frames of a longer input (the network sees the audio around
the window instead of zero padding). The initial state is all zeros; the first ``lag`` frames of a stream
are warm-up (their values differ slightly from a zero-padded start). What the streaming embedding does *not*
equal is the embedding of the isolated 1-second window (zero padding at both ends inside the network); how
much that matters for accuracy is measured
(README, ``benchmarks/kws_streaming.py``), and enrolment and the background set use the streaming embedding
of the clip in silence (:func:`context_embeddings`) so that the detector compares like with like.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .bcresnet import BCResNet

__all__ = ["StreamingBCResNet", "context_embeddings", "lag_frames"]


def _temporal(conv: nn.Conv2d) -> tuple[int, int]:
    """(kernel, dilation) of a convolution along time (the last axis)."""
    return conv.kernel_size[1], conv.dilation[1]


def _valid_in_time(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` with its frequency padding but no time padding."""
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, (conv.padding[0], 0), conv.dilation, conv.groups)


def lag_frames(net: BCResNet) -> int:
    """Frames by which the streaming output lags its input: half the temporal receptive field."""
    lag = _temporal(net.stem[0])[0] // 2
    for block in net.stages.children():
        for b in block:
            lag += _temporal(b.f1[0][0])[1]
    return lag + _temporal(net.neck[0])[0] // 2


class StreamingBCResNet(nn.Module):
    """One step of a BC-ResNet embedding network: ``chunk`` new feature frames in, the embedding out.

    ``forward(feats, **state)`` takes ``feats (1, 1, n_mels, chunk)`` and every state tensor by name
    (:meth:`state_shapes`) and returns ``{"embedding": (1, dim), **new_state}``. The initial state is all
    zeros. Built from a frozen network (:func:`speechedge.models.bcresnet.freeze_for_export`, eval mode).

    Args:
        net: the trained BC-ResNet (its SubSpectralNorms frozen).
        n_mels: feature bands.
        window: frames the embedding averages (the non-streaming model's input length).
        chunk: frames per step (10 = one decision every 100 ms at a 10 ms hop).
    """

    def __init__(self, net: BCResNet, n_mels: int, window: int, chunk: int) -> None:
        super().__init__()
        if not 1 <= chunk <= window:
            raise ValueError(f"chunk must be 1..window ({window}) frames, got {chunk}")
        self.net = net.eval()
        self.window, self.chunk, self.n_mels = window, chunk, n_mels
        self.lag_frames = lag_frames(net)
        self.blocks = [b for stage in net.stages.children() for b in stage]
        self._shapes = self._infer_shapes()

    def _infer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each state tensor's channels-last shape ``(1, F, frames, C)``, from one frame through the network."""
        net, shapes = self.net, {}
        with torch.no_grad():
            k, d = _temporal(net.stem[0])
            shapes["stem"] = (1, self.n_mels, (k - 1) * d, 1)
            x = net.stem(torch.zeros(1, 1, self.n_mels, 1))
            for i, b in enumerate(self.blocks):
                x = b.f2(x)
                k, d = _temporal(b.f1[0][0])
                shapes[f"block{i}_conv"] = (1, 1, (k - 1) * d, x.shape[1])
                shapes[f"block{i}_delay"] = (1, x.shape[2], d, x.shape[1])
            k, d = _temporal(net.neck[0])
            shapes["neck"] = (1, x.shape[2], (k - 1) * d, x.shape[1])
            shapes["pool"] = (1, 1, self.window - self.chunk, net.neck[1].out_channels)
        return shapes

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` of the state tensors (channels-last ``(1, F, T, C)``), in the graph's order."""
        return dict(self._shapes)

    def init_state(self) -> dict[str, torch.Tensor]:
        return {k: torch.zeros(s) for k, s in self.state_shapes().items()}

    @staticmethod
    def _push(buf: torch.Tensor, x: torch.Tensor, channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(buffer + new NCHW frames along time, the new buffer: the last ``buf``-length frames of that), both
        channels-last ``(1, F, T, C)``: the layout TFLite computes in, so the converter's own NCHW <-> NHWC
        transposes around each convolution cancel against these permutes (8 transposes left in BC-ResNet-1's
        step graph instead of 56). ``channels_last``: ``x`` is already ``(1, F, T, C)``."""
        cat = torch.cat([buf, x if channels_last else x.permute(0, 2, 3, 1)], dim=2)
        keep = buf.shape[2]
        return cat, cat[:, :, cat.shape[2] - keep:]

    def forward(self, feats: torch.Tensor, **state: torch.Tensor) -> dict[str, torch.Tensor]:
        net, new = self.net, {}
        nchw = lambda t: t.permute(0, 3, 1, 2)  # noqa: E731
        x, new["stem"] = self._push(state["stem"], feats)
        x = nchw(x)
        stem = net.stem
        x = stem[2](stem[1](_valid_in_time(stem[0], x)))  # (1, C, F/2, chunk)
        s = feats.shape[3]
        for i, b in enumerate(self.blocks):
            x2 = b.f2(x)
            # the frequency mean taken channels-last (axis 1 of (1, F, T, C)), where TFLite computes it: taken on
            # NCHW the converter wraps it in two TRANSPOSEs (ops a microcontroller's arena pays for)
            m, new[f"block{i}_conv"] = self._push(state[f"block{i}_conv"],
                                                  x2.permute(0, 2, 3, 1).mean(dim=1, keepdim=True), True)
            conv = b.f1[0]
            x1 = b.f1[1](conv[2](conv[1](_valid_in_time(conv[0], nchw(m)))))  # (1, C, 1, chunk); dropout is off
            residual = x2 if b.transition else x2 + x
            delayed, new[f"block{i}_delay"] = self._push(state[f"block{i}_delay"], residual)
            x = F.relu(nchw(delayed[:, :, :s]) + x1)
        neck = net.neck
        z, new["neck"] = self._push(state["neck"], x)
        z = neck[3](neck[2](neck[1](_valid_in_time(neck[0], nchw(z)))))  # (1, dim, F'', chunk); F'' = 1 at 40 mels
        z = z.mean(dim=2, keepdim=True)  # the frequency half of the pooling (equal-sized groups: same mean)
        pooled, new["pool"] = self._push(state["pool"], z)  # (1, 1, window, dim)
        return {"embedding": pooled.mean(dim=(1, 2)), **new}


def context_embeddings(net: BCResNet, feats: torch.Tensor, start: int, window: int, grad: bool = False) -> torch.Tensor:
    """The streaming embedding, computed in one pass: the neck output of the whole (non-streaming) network
    over ``feats (B, 1, F, T)`` averaged over frames ``start .. start + window``. Equal to what
    :class:`StreamingBCResNet` returns for those frames when ``start >= lag`` and the input runs ``lag``
    frames past the window (tested); used for enrolment, the background set and evaluation, and (``grad=True``)
    for streaming-aware training."""
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        z = net.neck(net.stages(net.stem(feats)))
    return z[..., start: start + window].mean(dim=(2, 3))
