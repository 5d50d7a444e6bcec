"""Augmentation shared by the recipes: realistic recording conditions on batches of waveforms, and SpecAugment.

:class:`Augmenter` runs on whole batches of tensors (on the training device), each stage with its own
probability per example (:class:`AugmentConfig`, the ``[augment]`` table of a recipe config), in the order a
sound travels: speed (speaking rate and pitch), time shift, room reverberation, other talkers (babble),
background noise, microphone colouring and band-limiting, gain (with clipping).

- Rooms are simulated with pyroomacoustics (image source method, shoe-box rooms of random size with the
  absorption that gives a random RT60 by Sabine's formula, random source and microphone positions); a bank
  of impulse responses is made once and convolved through the FFT per batch.
- Babble is other speech from the same batch (1 to 3 talkers, circularly shifted).
- Noise comes from the background files (Speech Commands' ``_background_noise_``) plus, with
  ``synthetic_noise``, generated music-like, hum, pink and brown noise.
- Colouring is a random smooth EQ curve (+-``eq_db``) with random high-pass (0-400 Hz) and low-pass
  (3.4-8 kHz) edges: phones, cheap microphones, telephone bands.

``speechedge bench kws-data`` measures what it costs next to a training step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from speechedge.audio import read_audio

__all__ = ["AugmentConfig", "Augmenter", "load_noise_bank", "spec_augment", "simulate_rirs"]


@dataclass(frozen=True)
class AugmentConfig:
    """Per-example probabilities and ranges of each augmentation stage (0 switches a stage off)."""

    shift_ms: float = 100.0  # random time shift +-shift_ms (zero fill)
    noise_prob: float = 0.8  # background noise
    snr_db: tuple[float, float] = (0.0, 20.0)
    synthetic_noise: bool = False  # add generated music-like, hum, pink and brown noise to the noise bank
    reverb_prob: float = 0.0  # a simulated room
    rt60_s: tuple[float, float] = (0.15, 0.9)
    num_rooms: int = 200  # impulse responses simulated once per run
    babble_prob: float = 0.0  # other talkers from the batch
    babble_snr_db: tuple[float, float] = (5.0, 20.0)
    colour_prob: float = 0.0  # microphone colouring and band-limiting
    eq_db: float = 6.0
    gain_prob: float = 0.0  # level change, clipped to [-1, 1]
    gain_db: tuple[float, float] = (-18.0, 12.0)
    speed_prob: float = 0.0  # resampling: rate and pitch together
    speed: tuple[float, float] = (0.9, 1.1)

    def __post_init__(self) -> None:
        for name in ("noise_prob", "reverb_prob", "babble_prob", "colour_prob", "gain_prob", "speed_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("snr_db", "rt60_s", "babble_snr_db", "gain_db", "speed"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"augment.{name}: low {lo} > high {hi}")
        if self.speed[0] <= 0 or self.rt60_s[0] <= 0:
            raise ValueError("augment.speed and augment.rt60_s must be positive")
        if self.shift_ms < 0 or self.num_rooms < 1:
            raise ValueError("augment.shift_ms must be >= 0 and augment.num_rooms >= 1")


def simulate_rirs(num: int, sample_rate: int, rt60_s: tuple[float, float], seed: int = 0,
                  max_order: int = 17) -> list[np.ndarray]:
    """``num`` room impulse responses (float32, direct path first, unit energy) from pyroomacoustics.

    Each room: a shoe box of 3-10 x 3-8 x 2.4-4 m with uniform absorption chosen by Sabine's formula for a
    random RT60 in ``rt60_s``, source and microphone at random positions at least 0.5 m from the walls.
    """
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    out = []
    while len(out) < num:
        dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
        rt60 = rng.uniform(*rt60_s)
        try:
            e_abs, order = pra.inverse_sabine(rt60, dims)
        except ValueError:  # an RT60 this room cannot have
            continue
        room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(e_abs), max_order=min(order, max_order))
        room.add_source(rng.uniform(0.5, dims - 0.5))
        room.add_microphone(rng.uniform(0.5, dims - 0.5))
        room.compute_rir()
        h = np.asarray(room.rir[0][0], np.float64)
        h = h[int(np.argmax(np.abs(h))):]  # align the direct path to sample 0 (no added delay)
        h = h[: int(sample_rate * min(1.2, 1.5 * rt60))]
        out.append((h / np.sqrt((h**2).sum())).astype(np.float32))
    return out


def load_noise_bank(noise_dir: str | Path | None, sample_rate: int = 16000) -> torch.Tensor | None:
    """Concatenated background noise (float32 1-D tensor), or None when no folder is given."""
    if not noise_dir:
        return None
    files = sorted(Path(noise_dir).glob("*.wav"))
    if not files:
        raise FileNotFoundError(f"{noise_dir}: no .wav noise files")
    return torch.from_numpy(np.concatenate([read_audio(f, sample_rate=sample_rate)[0] for f in files]))


def _synthetic_noise(sample_rate: int, seconds: float, seed: int) -> torch.Tensor:
    from speechedge.synth.corpora import music_signal, noise_signal

    rng = np.random.default_rng(seed)
    n = int(sample_rate * seconds)
    parts = [music_signal(n, rng), noise_signal("hum", n, rng), noise_signal("pink_noise", n, rng),
             noise_signal("brown_noise", n, rng)]
    return torch.from_numpy(np.concatenate(parts))


class Augmenter:
    """Batched waveform augmentation ``(B, S) -> (B, S)`` (see the module docstring).

    Args:
        config: stage probabilities and ranges.
        sample_rate: of the audio.
        noise: concatenated background noise (1-D), or None.
        seed: the generator's seed (its state is part of a training checkpoint: ``self.gen``).
    """

    def __init__(self, config: AugmentConfig, sample_rate: int, noise: torch.Tensor | None = None,
                 seed: int = 0) -> None:
        self.config = config
        self.sample_rate = sample_rate
        self.gen = torch.Generator().manual_seed(seed)
        self._dev = torch.device("cpu")
        if config.synthetic_noise:
            extra = _synthetic_noise(sample_rate, 30.0, seed)
            noise = extra if noise is None else torch.cat([noise, extra])
        self.noise = noise
        self.rirs = None
        if config.reverb_prob > 0:
            rirs = simulate_rirs(config.num_rooms, sample_rate, config.rt60_s, seed)
            length = max(len(h) for h in rirs)
            self.rirs = torch.zeros(len(rirs), length)
            for i, h in enumerate(rirs):
                self.rirs[i, : len(h)] = torch.from_numpy(h)

    # Random draws come from the CPU generator ``self.gen`` (so a seed gives the same augmentation on any
    # device, and its state checkpoints); the arithmetic runs where the batch is (the GPU when training there).
    def _uniform(self, b: int, lo: float, hi: float) -> torch.Tensor:
        return torch.empty(b).uniform_(lo, hi, generator=self.gen).to(self._dev)

    def _pick(self, b: int, p: float) -> torch.Tensor:
        return (torch.rand(b, generator=self.gen) < p).to(self._dev)

    def _randint(self, lo: int, hi: int, size: tuple) -> torch.Tensor:
        return torch.randint(lo, hi, size, generator=self.gen).to(self._dev)

    def _on(self, name: str, dev: torch.device) -> torch.Tensor | None:
        """The noise bank or room bank on ``dev`` (copied there once)."""
        t = getattr(self, name)
        if t is not None and t.device != dev:
            t = t.to(dev)
            setattr(self, name, t)
        return t

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Augment a batch ``(B, S)``. ``lengths`` (``(B,)`` samples; utterances padded with zeros): levels and
        SNRs are measured over each row's own samples and the padding stays zero, so a short utterance in a
        batch of long ones gets the same conditions as alone (speed and time shift would move its end: the
        ASR recipe refuses them)."""
        c, g = self.config, self.gen
        x = x.float()
        b, n = x.shape
        dev = self._dev = x.device
        inside = None if lengths is None else (torch.arange(n, device=dev)[None, :] < lengths.to(dev)[:, None])
        if c.speed_prob > 0:  # read the clip at rate `factor` (linear interpolation), centred
            use = self._pick(b, c.speed_prob)
            factor = torch.where(use, self._uniform(b, *c.speed), torch.ones(b, device=dev))
            pos = (torch.arange(n, device=dev)[None, :] - n / 2) * factor[:, None] + n / 2
            lo = pos.floor().long()
            frac = pos - lo
            valid = (lo >= 0) & (lo + 1 < n)
            lo = lo.clamp(0, n - 2)
            y = x.gather(1, lo) * (1 - frac) + x.gather(1, lo + 1) * frac
            x = torch.where(valid, y, torch.zeros((), device=dev))
        shift = int(c.shift_ms * self.sample_rate / 1000)
        if shift:
            shifts = self._randint(-shift, shift + 1, (b,))
            idx = torch.arange(n, device=dev)[None, :] - shifts[:, None]
            valid = (idx >= 0) & (idx < n)
            x = torch.where(valid, x.gather(1, idx.clamp(0, n - 1)), torch.zeros((), device=dev))
        if self._on("rirs", dev) is not None:
            use = self._pick(b, c.reverb_prob)
            if use.any():
                h = self.rirs[self._randint(0, len(self.rirs), (b,))]
                m = 1 << math.ceil(math.log2(n + h.shape[1]))
                wet = torch.fft.irfft(torch.fft.rfft(x, m) * torch.fft.rfft(h, m), m)[:, :n]
                # keep the level: reverberant energy scaled to the dry clip's
                wet = wet * torch.sqrt(x.pow(2).sum(1, keepdim=True) / wet.pow(2).sum(1, keepdim=True).clamp_min(1e-10))
                x = torch.where(use[:, None], wet, x)
        if inside is not None:
            x = x * inside  # the reverberant tail ends with the utterance, as a recording would

        def power(t: torch.Tensor) -> torch.Tensor:  # mean power of each row's own samples
            if inside is None:
                return t.pow(2).mean(1).clamp_min(1e-8)
            return ((t * inside).pow(2).sum(1) / inside.sum(1).clamp_min(1)).clamp_min(1e-8)

        p_sig = power(x)
        if c.babble_prob > 0 and b > 1:
            use = self._pick(b, c.babble_prob).float()
            talkers = self._randint(1, 4, (b,))
            babble = torch.zeros_like(x)
            for k in range(1, 4):
                other = torch.roll(x, shifts=k, dims=0)
                other = torch.roll(other, shifts=int(torch.randint(0, n, (1,), generator=g)), dims=1)
                babble = babble + other * (talkers >= k).float()[:, None]
            snr = self._uniform(b, *c.babble_snr_db)
            scale = torch.sqrt(p_sig / (power(babble) * 10 ** (snr / 10)))
            x = x + (use * scale)[:, None] * babble
        if c.noise_prob > 0 and self._on("noise", dev) is not None:
            starts = self._randint(0, len(self.noise) - n, (b,))
            seg = self.noise[starts[:, None] + torch.arange(n, device=dev)[None, :]]
            snr = self._uniform(b, *c.snr_db)
            scale = torch.sqrt(p_sig / (power(seg) * 10 ** (snr / 10)))
            use = self._pick(b, c.noise_prob).float()
            x = x + (use * scale)[:, None] * seg
        if c.colour_prob > 0:
            use = self._pick(b, c.colour_prob)
            spec = torch.fft.rfft(x)
            f = torch.linspace(0, self.sample_rate / 2, spec.shape[1], device=dev)
            # a smooth random EQ: three Gaussian bumps on a log-frequency axis, +-eq_db
            logf = torch.log2(f.clamp_min(50.0))[None, :]
            gain_db = torch.zeros(b, spec.shape[1], device=dev)
            for _ in range(3):
                centre = self._uniform(b, math.log2(100), math.log2(self.sample_rate / 2))[:, None]
                width = self._uniform(b, 0.5, 2.0)[:, None]
                gain_db = gain_db + self._uniform(b, -c.eq_db, c.eq_db)[:, None] * torch.exp(
                    -0.5 * ((logf - centre) / width) ** 2)
            hp = self._uniform(b, 0.0, 400.0)[:, None]
            lp = self._uniform(b, 3400.0, self.sample_rate / 2)[:, None]
            band = torch.sigmoid((f[None] - hp) / 30.0) * torch.sigmoid((lp - f[None]) / 150.0)
            coloured = torch.fft.irfft(spec * (10 ** (gain_db / 20)) * band, n)
            x = torch.where(use[:, None], coloured, x)
        if c.gain_prob > 0:
            use = self._pick(b, c.gain_prob)
            gain = torch.where(use, 10 ** (self._uniform(b, *c.gain_db) / 20), torch.ones(b, device=dev))
            x = (x * gain[:, None]).clamp(-1.0, 1.0)
        return x if inside is None else x * inside


def spec_augment(feats: torch.Tensor, generator: torch.Generator, freq_masks: int = 2, freq_width: int = 7,
                 time_masks: int = 2, time_width: int = 25) -> torch.Tensor:
    """Mask random frequency bands and time spans per example. ``(B, F, T)`` -> same (a new tensor).

    Masked cells take the example's mean feature value. (Zero is the mean only of normalised features: on raw
    log-mel, whose silence is log(1e-6) = -13.8 and speech around -5, a zero mask is a band far louder than
    anything in the clip, and it stopped few-shot training from learning at all.)
    """
    b, f, t = feats.shape
    fill = feats.mean(dim=(1, 2), keepdim=True).expand(b, f, t)
    mask = torch.zeros(b, f, t, dtype=torch.bool, device=feats.device)
    fidx = torch.arange(f, device=feats.device)[None, :]
    tidx = torch.arange(t, device=feats.device)[None, :]
    for _ in range(freq_masks):
        w = torch.randint(0, freq_width + 1, (b, 1), generator=generator).to(feats.device)
        s = (torch.rand(b, 1, generator=generator).to(feats.device) * (f - w + 1)).long()
        mask |= ((fidx >= s) & (fidx < s + w))[:, :, None]
    for _ in range(time_masks):
        w = torch.randint(0, time_width + 1, (b, 1), generator=generator).to(feats.device)
        s = (torch.rand(b, 1, generator=generator).to(feats.device) * (t - w + 1)).long()
        mask |= ((tidx >= s) & (tidx < s + w))[:, None, :]
    return torch.where(mask, fill, feats)
