"""Augmentation stages: each does what it says, probability 0 is the identity, the generator makes it exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechedge.training.augment import AugmentConfig, Augmenter, simulate_rirs

SR = 16000
OFF = dict(shift_ms=0.0, noise_prob=0.0)


def _tone_bursts(b: int = 8, f0: float = 1000.0) -> torch.Tensor:
    """A 0.2 s tone in the middle of silent 1-second clips."""
    t = torch.arange(SR) / SR
    x = torch.zeros(b, SR)
    on = (t >= 0.4) & (t < 0.6)
    x[:, on] = 0.5 * torch.sin(2 * torch.pi * f0 * t[on])
    return x


def _peak_hz(x: torch.Tensor) -> float:
    spec = torch.fft.rfft(x).abs()
    return float(spec.argmax()) * SR / x.shape[-1]


def test_all_stages_off_is_the_identity():
    x = _tone_bursts()
    assert torch.equal(Augmenter(AugmentConfig(**OFF), SR)(x), x)


def test_same_seed_same_output_and_the_state_resumes():
    cfg = AugmentConfig(shift_ms=100, noise_prob=0.5, babble_prob=0.5, colour_prob=0.5, gain_prob=0.5,
                        speed_prob=0.5, reverb_prob=0.5, num_rooms=4, synthetic_noise=True)
    x = _tone_bursts() + 0.01 * torch.randn(8, SR, generator=torch.Generator().manual_seed(1))
    a, b = Augmenter(cfg, SR, seed=3), Augmenter(cfg, SR, seed=3)
    torch.testing.assert_close(a(x), b(x))
    state = a.gen.get_state()
    first = a(x)
    a.gen.set_state(state)
    torch.testing.assert_close(a(x), first)
    assert not torch.allclose(first, x)


def test_rooms_have_their_rt60_and_start_with_the_direct_path():
    import pyroomacoustics as pra

    rirs = simulate_rirs(6, SR, (0.3, 0.8), seed=0)
    for h in rirs:
        assert abs(float((h.astype(np.float64) ** 2).sum()) - 1.0) < 1e-4 and int(np.argmax(np.abs(h))) == 0
        rt60 = pra.experimental.measure_rt60(h, fs=SR, decay_db=30)
        assert 0.1 < rt60 < 1.6, rt60  # image-source rooms of 0.3-0.8 s by Sabine's formula (order-capped)


def test_reverb_spreads_energy_after_the_sound_ends():
    x = _tone_bursts()
    y = Augmenter(AugmentConfig(**OFF, reverb_prob=1.0, rt60_s=(0.6, 0.9), num_rooms=4), SR)(x)
    tail = slice(int(0.62 * SR), int(0.75 * SR))
    assert float(x[:, tail].abs().max()) == 0.0 and float(y[:, tail].pow(2).mean()) > 1e-5
    torch.testing.assert_close(y.pow(2).sum(1), x.pow(2).sum(1), rtol=1e-3, atol=1e-6)  # level kept


def test_speed_moves_the_pitch():
    x = _tone_bursts(4, 1000.0)
    y = Augmenter(AugmentConfig(**OFF, speed_prob=1.0, speed=(1.2, 1.2)), SR)(x)
    assert abs(_peak_hz(y[0]) - 1200.0) < 10.0


def test_colouring_band_limits():
    noise = torch.randn(16, SR, generator=torch.Generator().manual_seed(0)) * 0.1
    y = Augmenter(AugmentConfig(**OFF, colour_prob=1.0), SR)(noise)
    spec_in, spec_out = torch.fft.rfft(noise).abs().pow(2), torch.fft.rfft(y).abs().pow(2)
    f = torch.linspace(0, SR / 2, spec_in.shape[1])
    low = f < 40  # below every high-pass edge (0-400 Hz, soft)
    assert float(spec_out[:, low].sum() / spec_in[:, low].sum()) < 0.5


def test_babble_and_noise_add_energy_at_the_chosen_snr():
    x = _tone_bursts()
    x = x + torch.roll(x, 3000, 1)  # two bursts so rolled talkers overlap less
    noise = torch.randn(SR * 5, generator=torch.Generator().manual_seed(2))
    y = Augmenter(AugmentConfig(shift_ms=0, noise_prob=1.0, snr_db=(10.0, 10.0)), SR, noise)(x)
    added = (y - x).pow(2).mean(1) / x.pow(2).mean(1)
    torch.testing.assert_close(added, torch.full_like(added, 0.1), rtol=1e-3, atol=1e-6)
    z = Augmenter(AugmentConfig(**OFF, babble_prob=1.0), SR)(x)
    assert float((z - x).pow(2).mean()) > 0


def test_padded_rows_keep_their_padding_and_get_their_own_snr():
    """With ``lengths`` a short utterance padded into a long batch gets noise at the chosen SNR over its own
    samples, and its padding stays zero (reverb tails and noise end with the utterance)."""
    x = torch.zeros(2, SR)
    x[0] = 0.3 * torch.sin(2 * torch.pi * 300 * torch.arange(SR) / SR)
    x[1, :4000] = x[0, :4000]
    lengths = torch.tensor([SR, 4000])
    noise = torch.randn(SR * 5, generator=torch.Generator().manual_seed(2))
    cfg = AugmentConfig(shift_ms=0, noise_prob=1.0, snr_db=(10.0, 10.0), reverb_prob=1.0, num_rooms=2)
    y = Augmenter(cfg, SR, noise)(x, lengths)
    assert torch.count_nonzero(y[1, 4000:]) == 0 and torch.count_nonzero(y[1, :4000]) == 4000
    wet = Augmenter(AugmentConfig(shift_ms=0, noise_prob=0.0, reverb_prob=1.0, num_rooms=2), SR)(x, lengths)
    for row, n in ((0, SR), (1, 4000)):  # noise power / speech power over the row's own samples: 10 dB
        ratio = (y[row, :n] - wet[row, :n]).pow(2).mean() / wet[row, :n].pow(2).mean()
        assert abs(10 * torch.log10(ratio).item() + 10) < 0.1, (row, ratio)


def test_gain_clips_to_the_valid_range():
    x = _tone_bursts()
    y = Augmenter(AugmentConfig(**OFF, gain_prob=1.0, gain_db=(20.0, 20.0)), SR)(x)
    assert float(y.abs().max()) <= 1.0 and float(y.abs().max()) == 1.0


@pytest.mark.parametrize("bad", [dict(noise_prob=1.5), dict(snr_db=(10.0, 0.0)), dict(speed=(0.0, 1.0)),
                                 dict(num_rooms=0)])
def test_bad_config_names_the_field(bad):
    with pytest.raises(ValueError, match="augment"):
        AugmentConfig(**bad)


def test_spec_augment_masks_with_the_example_mean_not_zero():
    """On raw log-mel (silence -13.8, speech about -5) a zero mask would be the loudest thing in the clip."""
    from speechedge.training.augment import spec_augment

    feats = torch.randn(4, 40, 101, generator=torch.Generator().manual_seed(0)) - 6.0
    out = spec_augment(feats, torch.Generator().manual_seed(1), freq_width=10, time_width=30)
    changed = out != feats
    assert changed.any()
    means = feats.mean(dim=(1, 2))
    for i in range(4):
        torch.testing.assert_close(out[i][changed[i]], means[i].expand(int(changed[i].sum())))
    assert float(out.max()) <= float(feats.max())


def test_stages_run_where_the_batch_is_and_draw_on_the_cpu_generator():
    """A batch on another device is augmented there (every stage but the room, whose `any()` needs values, on
    the shape-only `meta` device; the noise bank follows the batch), and the random draws stay on the CPU
    generator: the same seed leaves the same generator state whatever device the batch is on."""
    cfg = AugmentConfig(shift_ms=100.0, noise_prob=1.0, synthetic_noise=True, babble_prob=1.0, colour_prob=1.0,
                        gain_prob=1.0, speed_prob=1.0)
    on_meta, on_cpu = Augmenter(cfg, SR, seed=5), Augmenter(cfg, SR, seed=5)
    y = on_meta(torch.randn(4, SR, device="meta"))
    assert y.device.type == "meta" and y.shape == (4, SR) and on_meta.noise.device.type == "meta"
    on_cpu(torch.randn(4, SR))
    assert torch.equal(on_meta.gen.get_state(), on_cpu.gen.get_state())
