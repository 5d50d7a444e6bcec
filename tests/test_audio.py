"""Audio I/O: every bad input gets the right AudioError subclass with the file's name in the message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechedge.audio import (
    AudioError,
    AudioFormatError,
    ChannelError,
    EmptyAudioError,
    NonFiniteAudioError,
    SampleRateError,
    from_int16,
    info,
    read_audio,
    resample,
    to_int16,
    validate_audio,
    write_audio,
)


def _sine(sr=16000, seconds=0.5, freq=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_roundtrip(tmp_path, suffix):
    x = _sine()
    path = write_audio(tmp_path / f"a{suffix}", x, 16000)
    y, sr = read_audio(path)
    assert sr == 16000 and y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1.0 / 32768)  # 16-bit quantization


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    write_audio(tmp_path / "a.wav", _sine(), 16000)
    write_audio(tmp_path / "a.wav", _sine(freq=100), 16000)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]


def test_write_failure_leaves_nothing(tmp_path):
    with pytest.raises(NonFiniteAudioError):
        write_audio(tmp_path / "bad.wav", np.array([0.0, np.nan], np.float32), 16000)
    assert list(tmp_path.iterdir()) == []


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(AudioFormatError, match="empty.wav"):
        read_audio(p)


def test_zero_samples(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(p, np.zeros(0, np.float32), 16000, subtype="PCM_16")
    with pytest.raises(EmptyAudioError, match="zero.wav"):
        read_audio(p)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_file(tmp_path, bad):
    p = tmp_path / "nan.wav"
    x = _sine()
    x[100] = bad
    sf.write(p, x, 16000, subtype="FLOAT")  # float WAV can store NaN/Inf
    with pytest.raises(NonFiniteAudioError, match="nan.wav"):
        read_audio(p)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_truncated_file(tmp_path, suffix):
    p = write_audio(tmp_path / f"full{suffix}", np.tile(_sine(), 4), 16000)
    data = p.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioFormatError, match=f"cut\\{suffix}"):
        read_audio(cut)


def test_text_file_named_wav(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioFormatError, match="notes.wav"):
        read_audio(p)
    with pytest.raises(AudioFormatError, match="notes.wav"):
        info(p)


def test_missing_file(tmp_path):
    with pytest.raises(AudioFormatError, match="nope.flac"):
        read_audio(tmp_path / "nope.flac")


def test_wrong_rate_refused_when_resampling_not_allowed(tmp_path):
    p = write_audio(tmp_path / "a8k.wav", _sine(sr=8000), 8000)
    with pytest.raises(SampleRateError, match="a8k.wav.*8000 Hz.*16000 Hz"):
        read_audio(p, sample_rate=16000, resample_ok=False)


def test_48k_file_is_resampled(tmp_path):
    x = _sine(sr=48000, seconds=1.0, freq=1000.0)
    p = write_audio(tmp_path / "a48k.flac", x, 48000)
    y, sr = read_audio(p, sample_rate=16000)
    assert sr == 16000 and len(y) == 16000
    # the tone survives: its frequency is where the spectrum peaks
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert abs(np.argmax(spec) * 16000 / len(y) - 1000.0) <= 1.0


def test_stereo_policies(tmp_path):
    left, right = _sine(freq=300), _sine(freq=500)
    p = write_audio(tmp_path / "st.wav", np.stack([left, right]), 16000)
    mixed, _ = read_audio(p)
    np.testing.assert_allclose(mixed, (left + right) / 2, atol=2 / 32768)
    first, _ = read_audio(p, mono="first")
    np.testing.assert_allclose(first, left, atol=1 / 32768)
    both, _ = read_audio(p, mono=None)
    assert both.shape == (2, len(left))
    with pytest.raises(ChannelError, match="st.wav.*2 channels"):
        read_audio(p, mono="error")


def test_int16_and_float64_input_to_validate():
    x16 = np.array([0, 16384, -32768], np.int16)
    np.testing.assert_array_equal(validate_audio(x16), [0.0, 0.5, -1.0])
    x64 = np.array([0.25, -0.5], np.float64)
    out = validate_audio(x64)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [0.25, -0.5])
    with pytest.raises(AudioError, match="dtype"):
        validate_audio(np.array([1, 2], np.uint8), source="x.wav")


def test_int16_file_subtypes(tmp_path):
    x = (_sine() * 32767).astype(np.int16)
    p = tmp_path / "i16.wav"
    sf.write(p, x, 16000, subtype="PCM_16")
    y, _ = read_audio(p)
    np.testing.assert_allclose(y, x / 32768.0, atol=1e-7)
    p64 = tmp_path / "f64.wav"
    sf.write(p64, x / 32768.0, 16000, subtype="DOUBLE")
    z, _ = read_audio(p64)
    np.testing.assert_allclose(z, x / 32768.0, atol=1e-7)


def test_min_samples(tmp_path):
    p = write_audio(tmp_path / "short.wav", _sine(seconds=0.01), 16000)
    with pytest.raises(EmptyAudioError, match="short.wav.*at least 1000"):
        read_audio(p, min_samples=1000)


def test_int16_conversions_roundtrip_and_saturate():
    x = np.array([-1.0, -0.5, 0.0, 0.5, 0.999, 1.5], np.float32)
    q = to_int16(x)
    assert q.dtype == np.int16
    assert q[-1] == 32767 and q[0] == -32768  # out-of-range saturates
    np.testing.assert_allclose(from_int16(q)[:5], x[:5], atol=1 / 32768)
    with pytest.raises(AudioError):
        from_int16(np.zeros(3, np.float32))


def test_resample_lengths_and_batch():
    x = np.stack([_sine(sr=48000), _sine(sr=48000, freq=200)])
    y = resample(x, 48000, 16000)
    assert y.shape == (2, 8000)
    np.testing.assert_allclose(y[0], resample(x[0], 48000, 16000), atol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 16000)


def test_partial_read(tmp_path):
    x = np.tile(_sine(), 4)
    p = write_audio(tmp_path / "long.flac", x, 16000)
    y, _ = read_audio(p, start_s=0.5, duration_s=0.25)
    np.testing.assert_allclose(y, x[8000:12000], atol=1 / 32768)


# -- process pools: a killed parent leaves nothing behind that prints -------------------------------------------
_POOL_SCRIPT = r"""
import os, sys, time
from speechedge.io import pool_worker_init, spawn_pool_context

def task(i):
    time.sleep(1.5)
    return b"x" * 200_000  # a result large enough that writing it to a closed pipe fails

if __name__ == "__main__":
    init = dict(initializer=pool_worker_init, initargs=(os.getpid(),)) if sys.argv[1] == "ours" else {}
    with spawn_pool_context().Pool(2, **init) as pool:
        print("started", flush=True)
        for _ in pool.imap_unordered(task, range(8)):
            pass
"""


def _session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (from /proc: field 6 of ``stat`` is the session id)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


@pytest.mark.parametrize("init", ["ours", "plain"])
def test_pool_workers_die_quietly_with_a_killed_parent(init, tmp_path):
    """SIGKILL the parent of a pool mid-task: with our initializer the workers go at once and print nothing;
    a plain pool's workers (the control) outlive it and print BrokenPipe tracebacks."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "pool.py"
    script.write_text(_POOL_SCRIPT)
    err = tmp_path / "err.txt"
    with open(err, "w") as e:
        proc = subprocess.Popen([sys.executable, str(script), init], stdout=subprocess.PIPE, stderr=e,
                                start_new_session=True, text=True)
        assert proc.stdout.readline().strip() == "started"
        time.sleep(0.8)  # the workers are inside their first task
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 8
        while time.time() < deadline:  # until every process of the session is gone
            alive = _session_members(proc.pid)
            if not alive:
                break
            time.sleep(0.2)
    text = err.read_text()
    if init == "ours":
        assert not alive and text == "", text[-2000:]
    else:
        assert "BrokenPipeError" in text


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_far_field_copies_reverberate_with_the_asked_decay_and_direct_to_reverberant_ratio(rt60):
    """An impulse comes back as the room's response: the direct sound, then a tail whose Schroeder decay curve
    falls 20 dB in a third of RT60 (T20 x 3 within 10%) and whose energy is ``drr_db`` below the direct sound's;
    a clip keeps its length and RMS; the same seed gives the same copies, another seed other ones."""
    from speechedge.audio import far_field_copies

    sr = 16000
    x = np.zeros(sr, np.float32)
    x[0] = 1.0
    (y,) = far_field_copies(x, sr, rt60_s=(rt60,), drr_db=3.0, seed=1)
    e = y.astype(np.float64) ** 2
    pre = int(0.005 * sr)
    assert e[1:pre].max() < 1e-12 * e[0]  # silence between the direct sound and the tail (FFT round-off)
    assert 10 * np.log10(e[0] / e[pre:].sum()) == pytest.approx(3.0, abs=0.01)
    edc = 10 * np.log10(np.cumsum(e[pre:][::-1])[::-1] / e[pre:].sum())
    t5, t25 = np.argmax(edc <= -5) / sr, np.argmax(edc <= -25) / sr
    assert 3 * (t25 - t5) == pytest.approx(rt60, rel=0.1)
    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal(12000)).astype(np.float32)
    copies = far_field_copies(clip, sr, seed=4)
    assert len(copies) == 3 and all(c.shape == clip.shape and c.dtype == np.float32 for c in copies)
    assert all(np.sqrt(np.mean(c ** 2)) == pytest.approx(np.sqrt(np.mean(clip ** 2)), rel=1e-4) for c in copies)
    again = far_field_copies(clip, sr, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(copies, again))
    assert not np.array_equal(far_field_copies(clip, sr, seed=5)[0], copies[0])
    assert far_field_copies(clip, sr, rt60_s=()) == []
    with pytest.raises(ValueError, match="rt60_s must be positive"):
        far_field_copies(clip, sr, rt60_s=(0.0,))
