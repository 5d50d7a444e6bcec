"""The log-mel / MFCC frontend in torch (training, batched, GPU); the same numbers as the Numba kernel.

See :mod:`speechedge.features` for the math and the config; parity with librosa and the Numba kernel is tested.
"""

from __future__ import annotations

import torch
from torch import nn

from speechedge.features import FrontendConfig, analysis_window, dct_matrix, mel_filterbank, num_frames

__all__ = ["TorchFrontend"]

# without gradients, inputs longer than this many frames are computed this many frames at a time (bounded
# memory for long utterances: the complex spectrogram of 10 minutes alone is 120 MB); same numbers
BLOCK_FRAMES = 4096


class TorchFrontend(nn.Module):
    """Batched log-mel / MFCC in torch (training; runs on GPU).

    Shape: ``(batch, num_samples)`` or ``(num_samples,)`` -> ``(..., num_features, num_frames)``.
    The constants are buffers, so ``.to(device)`` moves them.
    """

    def __init__(self, config: FrontendConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.from_numpy(analysis_window(config)).float(), persistent=False)
        self.register_buffer("fb", torch.from_numpy(mel_filterbank(config)).float(), persistent=False)
        if config.n_mfcc:
            self.register_buffer("dct", torch.from_numpy(dct_matrix(config.n_mfcc, config.n_mels)).float(),
                                 persistent=False)
        else:
            self.dct = None

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        squeeze = audio.dim() == 1
        x = audio.unsqueeze(0) if squeeze else audio
        if x.dim() != 2:
            raise ValueError(f"audio must be (num_samples,) or (batch, num_samples), got {tuple(audio.shape)}")
        c = self.config
        frames = num_frames(x.shape[1], c)
        x = x.float()
        if c.center:  # zero padding ("constant", as librosa's pad_mode="constant")
            x = nn.functional.pad(x, (c.n_fft // 2, c.n_fft // 2))
        if torch.is_grad_enabled() or frames <= BLOCK_FRAMES:
            out = self._frames(x)
        else:  # frame t reads x[t*hop : t*hop + n_fft] only: blocks of frames give the same frames
            out = torch.cat([self._frames(x[:, t * c.hop_length: (min(t + BLOCK_FRAMES, frames) - 1) * c.hop_length
                                              + c.n_fft]) for t in range(0, frames, BLOCK_FRAMES)], dim=-1)
        return out.squeeze(0) if squeeze else out

    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        """Features of every complete frame of the (already padded) ``(B, S)`` signal."""
        c = self.config
        # the window is already zero-padded to n_fft, so win_length=n_fft here
        spec = torch.stft(x, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.n_fft,
                          window=self.window, center=False, return_complex=True)
        power = spec.real.square() + spec.imag.square()  # (B, n_freqs, T)
        mel = torch.matmul(self.fb.T, power)  # (B, n_mels, T)
        out = torch.log(mel + c.log_floor)
        if self.dct is not None:
            out = torch.matmul(self.dct, out)
        return out

