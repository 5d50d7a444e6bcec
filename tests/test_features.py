"""Frontend parity: Numba vs a float64 librosa reference, torch vs Numba, streaming vs whole clip.

Tolerances (natural-log domain): broadband signals (noise, speech-like, impulse, silence) agree to 2e-5
(plus 1e-6 relative for MFCC c0, a float32 sum of 40 log values).
Pure tones (sine, chirp, clipped sine) put mel bands 100+ dB below the tone's band, where float32
FFT rounding (about 1e-7 of the frame's peak power, the same in torch) is a visible fraction of the
band's energy; there we assert 2e-3 in the log domain and, more telling, 5e-6 of the frame's peak
mel energy in the linear domain (a few float32 ulps of the peak band, measured up to 1e-6).
"""

from __future__ import annotations

from dataclasses import replace

import librosa
import numpy as np
import pytest
import scipy.fft
import torch
from conftest import SIGNALS, make_signal

from speechedge.models.frontend import TorchFrontend
from speechedge.features import FrontendConfig, analysis_window, dct_matrix, mel_filterbank, num_frames
from speechedge.kernels import StreamingLogMel, log_mel

TONAL = {"sine", "chirp", "clipped"}
CONFIGS = {
    "kws": FrontendConfig.kws(),
    "asr": FrontendConfig.asr(),
    "slaney": FrontendConfig.kws(mel_scale="slaney", mel_norm="slaney", f_min=20.0, f_max=7600.0),
    "mfcc": FrontendConfig.kws(n_mfcc=13),
    "nocenter": FrontendConfig.kws(center=False),
}

KWS = FrontendConfig.kws()


def librosa_reference(x: np.ndarray, c: FrontendConfig) -> np.ndarray:
    m = librosa.feature.melspectrogram(
        y=x.astype(np.float64), sr=c.sample_rate, n_fft=c.n_fft, win_length=c.win_length, hop_length=c.hop_length,
        n_mels=c.n_mels, fmin=c.f_min, fmax=c.f_max, htk=c.mel_scale == "htk", norm=c.mel_norm, center=c.center,
        pad_mode="constant", power=2.0, dtype=np.float64)
    out = np.log(m + c.log_floor)
    if c.n_mfcc:
        out = scipy.fft.dct(out, axis=0, type=2, norm="ortho")[: c.n_mfcc]
    return out


def assert_features_close(a: np.ndarray, b: np.ndarray, kind: str, config: FrontendConfig) -> None:
    assert a.shape == b.shape
    if kind not in TONAL:
        # rtol: MFCC c0 sums 40 log-mels (|c0| up to ~90), so float32 keeps ~1e-5 absolute there
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-6)
        return
    np.testing.assert_allclose(a, b, atol=2e-3, rtol=0)
    if not config.n_mfcc:
        ea, eb = np.exp(a.astype(np.float64)), np.exp(b.astype(np.float64))
        peak = eb.max(axis=0, keepdims=True)
        worst = float((np.abs(ea - eb) / peak).max())
        assert worst <= 5e-6, f"linear-domain error {worst:.2e} of the frame's peak band"


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("kind", SIGNALS)
def test_numba_matches_librosa_float64(name, kind):
    config = CONFIGS[name]
    x = make_signal(kind)
    out = log_mel(x, config)
    assert out.dtype == np.float32
    assert out.shape == (config.num_features, num_frames(len(x), config))
    assert_features_close(out, librosa_reference(x, config), kind, config)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("kind", SIGNALS)
def test_torch_matches_numba(name, kind):
    config = CONFIGS[name]
    x = make_signal(kind)
    with torch.inference_mode():
        t = TorchFrontend(config)(torch.from_numpy(x)).numpy()
    assert_features_close(t, log_mel(x, config), kind, config)


def test_kws_preset_shape_is_40_by_101():
    assert log_mel(np.zeros(16000, np.float32), KWS).shape == (40, 101)
    c = FrontendConfig.asr()
    assert (c.n_mels, c.win_length, c.hop_length) == (80, 400, 160)


@pytest.mark.parametrize("mel_scale,mel_norm", [("htk", None), ("slaney", None), ("htk", "slaney"), ("slaney", "slaney")])
@pytest.mark.parametrize("n_mels,f_min,f_max", [(40, 0.0, None), (80, 20.0, 7600.0), (23, 300.0, 4000.0)])
def test_filterbank_matches_librosa(mel_scale, mel_norm, n_mels, f_min, f_max):
    c = FrontendConfig(n_mels=n_mels, f_min=f_min, f_max=f_max, mel_scale=mel_scale, mel_norm=mel_norm)
    ref = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max,
                              htk=mel_scale == "htk", norm=mel_norm, dtype=np.float64)
    np.testing.assert_allclose(mel_filterbank(c), ref.T, rtol=1e-10, atol=1e-12)


def test_window_and_dct_match_references():
    c = FrontendConfig.kws()
    ref = librosa.util.pad_center(librosa.filters.get_window("hann", c.win_length, fftbins=True), size=c.n_fft)
    np.testing.assert_allclose(analysis_window(c), ref, atol=1e-12)
    eye = np.eye(40)
    np.testing.assert_allclose(dct_matrix(13, 40), scipy.fft.dct(eye, axis=0, norm="ortho")[:13], atol=1e-12)


@pytest.mark.parametrize("name", ["kws", "asr", "mfcc"])
@pytest.mark.parametrize("block", [1, 7, 160, 161, 1000, None])
def test_streaming_equals_whole_clip_exactly(name, block):
    config = replace(CONFIGS[name], center=False)
    x = make_signal("speechlike", num_samples=23456, seed=5)
    whole = log_mel(x, config)
    stream = StreamingLogMel(config)
    step = block or len(x)
    parts = [stream.push(x[i : i + step]) for i in range(0, len(x), step)]
    assert all(p.shape[0] == config.num_features for p in parts)
    got = np.concatenate(parts, axis=1)
    np.testing.assert_array_equal(got, whole)  # bit-identical, not just close
    assert stream.num_frames_emitted == whole.shape[1]
    assert stream.num_samples_seen == len(x)


def test_streaming_reset_and_buffer_growth():
    config = FrontendConfig.kws(center=False)
    x = make_signal("noise", num_samples=40000)
    stream = StreamingLogMel(config)
    stream.push(make_signal("sine", 5000))
    stream.reset()
    got = np.concatenate([stream.push(x[:100]), stream.push(x[100:30100]), stream.push(x[30100:])], axis=1)
    np.testing.assert_array_equal(got, log_mel(x, config))


@pytest.mark.parametrize("min_frames", [7, 10, 32])
def test_streaming_batched_pushes_give_the_same_frames_on_time(min_frames):
    """``min_frames=N`` computes frames N at a time: the same frames, bit for bit, and every N-th frame comes
    with the same push as without batching (random block sizes), the rest with ``flush``; a NaN block held
    back unprocessed is still refused and leaves the stream unchanged."""
    config = FrontendConfig.kws(center=False)
    x = make_signal("speechlike", num_samples=40000, seed=6)
    plain, batched = StreamingLogMel(config), StreamingLogMel(config, min_frames=min_frames)
    rng = np.random.default_rng(min_frames)
    parts, i = [], 0
    while i < len(x):
        block = x[i: i + int(rng.integers(1, 1200))]
        i += len(block)
        plain.push(block)
        parts.append(batched.push(block))
        assert parts[-1].shape[1] in (0, batched.num_frames_emitted - sum(p.shape[1] for p in parts[:-1]))
        assert batched.num_frames_emitted >= plain.num_frames_emitted // min_frames * min_frames
        assert batched.num_frames_emitted <= plain.num_frames_emitted
    parts.append(batched.flush())
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), log_mel(x, config))
    before = batched.num_samples_seen
    with pytest.raises(ValueError, match="NaN or Inf"):
        batched.push(np.array([0.0, np.inf], np.float32))
    assert batched.num_samples_seen == before and batched.flush().shape[1] == 0
    with pytest.raises(ValueError, match="min_frames"):
        StreamingLogMel(config, min_frames=0)


def test_streaming_rejects_center_and_bad_blocks():
    with pytest.raises(ValueError, match="center=False"):
        StreamingLogMel(FrontendConfig.kws())
    stream = StreamingLogMel(FrontendConfig.kws(center=False))
    with pytest.raises(ValueError, match="1-D"):
        stream.push(np.zeros((2, 100), np.float32))
    before = stream.num_samples_seen
    with pytest.raises(ValueError, match="NaN or Inf"):
        stream.push(np.array([0.0, np.nan], np.float32))
    assert stream.num_samples_seen == before


def test_batch_equals_itemwise():
    x = np.stack([make_signal(k, seed=i) for i, k in enumerate(["noise", "speechlike", "chirp"])])
    batch = log_mel(x, FrontendConfig.kws())
    for i in range(len(x)):
        np.testing.assert_array_equal(batch[i], log_mel(x[i], KWS))
    with torch.inference_mode():
        fe = TorchFrontend(FrontendConfig.kws())
        tb = fe(torch.from_numpy(x))
        for i in range(len(x)):
            torch.testing.assert_close(tb[i], fe(torch.from_numpy(x[i])), atol=1e-5, rtol=0)


def test_int16_and_float64_inputs():
    x = make_signal("speechlike")
    q = np.round(x * 32767).astype(np.int16)
    np.testing.assert_allclose(log_mel(q, KWS), log_mel(q.astype(np.float32) / 32768.0, KWS), atol=0)
    np.testing.assert_array_equal(log_mel(x.astype(np.float64), KWS), log_mel(x, KWS))


def test_short_and_bad_inputs():
    c = FrontendConfig.kws(center=False)
    assert log_mel(np.zeros(100, np.float32), c).shape == (40, 0)
    assert log_mel(np.zeros(100, np.float32), KWS).shape == (40, 1)  # centred: one padded frame
    with pytest.raises(ValueError, match="NaN or Inf"):
        log_mel(np.array([0.0, np.inf], np.float32), KWS)
    with pytest.raises(ValueError, match="shape"):
        log_mel(np.zeros((2, 2, 100), np.float32), KWS)
    with pytest.raises(ValueError, match="dtype"):
        log_mel(np.zeros(100, np.uint8), KWS)


@pytest.mark.parametrize("field,value", [("n_fft", 511), ("win_length", 1024), ("hop_length", 0), ("n_mels", 0),
                                         ("f_max", 9000.0), ("mel_scale", "bark"), ("mel_norm", "l2"),
                                         ("log_floor", 0.0), ("n_mfcc", 41)])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"FrontendConfig.{field}"):
        FrontendConfig.kws(**{field: value})


def test_config_roundtrip():
    c = FrontendConfig.asr(n_mfcc=20)
    assert FrontendConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown"):
        FrontendConfig.from_dict({**c.to_dict(), "pad_mode": "reflect"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_torch_frontend_on_gpu():
    x = torch.from_numpy(make_signal("speechlike")).cuda()
    fe = TorchFrontend(FrontendConfig.kws()).cuda()
    np.testing.assert_allclose(fe(x).cpu().numpy(), log_mel(x.cpu().numpy()), atol=1e-4)


def test_bench_frontend_measures_installed_peers_and_skips_missing_ones(monkeypatch):
    """`speechedge bench frontend` rows: ours and the peers whose package is installed (pymicro-features is a
    dependency of the demo extra), each measured in its own process; a peer that is not installed is left
    out, not an error."""
    from speechedge.apps import bench

    monkeypatch.setitem(bench.PEER_MODULES, "no-such-peer", "no_such_module_xyz")
    rows = bench.bench_frontend(num_clips=2, repeats=1,
                                implementations=("numba stream 10ms, min_frames 10", "pymicro-features 10ms",
                                                 "no-such-peer"))
    assert [r.name for r in rows] == ["numba stream 10ms, min_frames 10", "pymicro-features 10ms"]
    assert all(r.ms_per_audio_s > 0 and r.peak_rss_mb > 0 for r in rows)
    assert "pymicro-features 10ms" in bench.format_table(rows, 2)


def test_input_level_equals_the_features_of_amplified_audio():
    """A window quieter than the target is brought to it: the normalized features are those of the audio
    amplified by sqrt(gain) (up to float32 rounding near the log floor); two quiet copies of one clip end up
    the same; louder windows, silence and steady noise are left as they are; the gain stops at max_gain_db."""
    from speechedge.features import InputLevel

    fe = FrontendConfig.kws()
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    clip = (0.3 * np.sin(2 * np.pi * 300 * t) * (t > 0.3) * (t < 0.7) + rng.normal(0, 0.003, 16000)).astype(np.float32)
    loud = log_mel(clip, fe)
    peak_db = 10 * np.log10(InputLevel.frame_energy(loud, fe.log_floor).max())
    level = InputLevel(target_db=peak_db - 6.0)
    assert level.apply(loud, fe.log_floor) is loud  # above the target: untouched
    quiet = log_mel(0.01 * clip, fe)  # -40 dB
    g = level.gain(InputLevel.frame_energy(quiet, fe.log_floor).max())
    assert g == pytest.approx(10 ** ((peak_db - 6.0 - (peak_db - 40)) / 10), rel=1e-3)
    expected = log_mel(0.01 * np.sqrt(g) * clip, fe)
    got = level.apply(quiet, fe.log_floor)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-2)
    assert np.abs(got - expected).mean() < 1e-3
    assert np.abs(quiet - expected).mean() > 1.0  # the test can tell: without it the features are far off
    np.testing.assert_allclose(level.apply(log_mel(0.03 * clip, fe), fe.log_floor), got, atol=3e-2)
    silence = log_mel(np.zeros(16000, np.float32), fe)
    np.testing.assert_array_equal(level.apply(silence, fe.log_floor), silence)
    # steady noise alone is not speech: it keeps the gain held from the last speech (none: unchanged)
    noise = log_mel((0.001 * rng.normal(size=16000)).astype(np.float32), fe)
    assert level.window_gain(InputLevel.frame_energy(noise, fe.log_floor), held=3.0) == 3.0
    assert level.apply(noise, fe.log_floor) is noise
    assert level.window_gain(np.array([np.nan, np.nan])) == 1.0  # nothing seen yet
    capped = InputLevel(target_db=peak_db - 6.0, max_gain_db=10.0)
    assert capped.gain(InputLevel.frame_energy(quiet, fe.log_floor).max()) == pytest.approx(10.0)


def test_input_level_file_errors_name_the_file(tmp_path):
    from speechedge.features import InputLevel

    path = tmp_path / "level.json"
    InputLevel(28.5).save(path)
    assert InputLevel.load(path) == InputLevel(28.5, 40.0) and "window_s" not in path.read_text()
    InputLevel(20.0, 30.0, window_s=2.0).save(path)
    assert InputLevel.load(path) == InputLevel(20.0, 30.0, 2.0)
    for text in ("{", "[1]", '{"target_db": 28.5, "gain": 3}', '{"target_db": "loud"}', '{"target_db": 1, "window_s": 0}',
                 '{"target_db": 28.5, "max_gain_db": -3}', '{"target_db": NaN}'):
        path.write_text(text)
        with pytest.raises(ValueError, match="level.json"):
            InputLevel.load(path)
