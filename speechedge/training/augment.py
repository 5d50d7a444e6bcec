"""Augmentation shared by the recipes: batched waveform augmentation (time shift, background noise at a
random SNR) and SpecAugment on features.

Augmentation runs on whole batches of tensors (on the training device), so a 2-core CPU spends its time
in the model, not in the data pipeline (``speechedge bench kws-data`` measures both).
"""

from __future__ import annotations

import torch

__all__ = ["Augmenter", "spec_augment"]


def spec_augment(feats: torch.Tensor, generator: torch.Generator, freq_masks: int = 2, freq_width: int = 7,
                 time_masks: int = 2, time_width: int = 25) -> torch.Tensor:
    """Zero random frequency bands and time spans per example. ``(B, F, T)`` -> same (a new tensor)."""
    b, f, t = feats.shape
    out = feats.clone()
    fidx = torch.arange(f, device=feats.device)[None, :]
    tidx = torch.arange(t, device=feats.device)[None, :]
    for _ in range(freq_masks):
        w = torch.randint(0, freq_width + 1, (b, 1), generator=generator).to(feats.device)
        s = (torch.rand(b, 1, generator=generator).to(feats.device) * (f - w + 1)).long()
        out = out.masked_fill(((fidx >= s) & (fidx < s + w))[:, :, None], 0.0)
    for _ in range(time_masks):
        w = torch.randint(0, time_width + 1, (b, 1), generator=generator).to(feats.device)
        s = (torch.rand(b, 1, generator=generator).to(feats.device) * (t - w + 1)).long()
        out = out.masked_fill(((tidx >= s) & (tidx < s + w))[:, None, :], 0.0)
    return out


class Augmenter:
    """Batched waveform augmentation: random time shift (zero fill) and noise mixing at a random SNR."""

    def __init__(self, noise: torch.Tensor | None, *, shift_samples: int = 1600, noise_prob: float = 0.8,
                 snr_db: tuple[float, float] = (0.0, 20.0), seed: int = 0) -> None:
        self.noise = noise
        self.shift = shift_samples
        self.noise_prob = noise_prob if noise is not None else 0.0
        self.snr_db = snr_db
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape
        g = self.gen
        if self.shift:
            shifts = torch.randint(-self.shift, self.shift + 1, (b,), generator=g)
            idx = torch.arange(n)[None, :] - shifts[:, None]
            valid = (idx >= 0) & (idx < n)
            x = torch.where(valid, x.gather(1, idx.clamp(0, n - 1)), torch.zeros(()))
        if self.noise_prob > 0:
            starts = torch.randint(0, len(self.noise) - n, (b,), generator=g)
            seg = self.noise[starts[:, None] + torch.arange(n)[None, :]]
            snr = torch.empty(b).uniform_(*self.snr_db, generator=g)
            p_sig = x.pow(2).mean(1).clamp_min(1e-8)
            p_noise = seg.pow(2).mean(1).clamp_min(1e-8)
            scale = torch.sqrt(p_sig / (p_noise * 10 ** (snr / 10)))
            use = (torch.rand(b, generator=g) < self.noise_prob).float()
            x = x + (use * scale)[:, None] * seg
        return x
