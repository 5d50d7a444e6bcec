"""Audio sources for the demos: the microphone (sounddevice/PortAudio), a file, or raw PCM on stdin.

Every source yields float32 mono blocks at 16 kHz. The microphone callback never raises: it copies the
block into a bounded queue and counts overflows (PortAudio could not keep up) and drops (the queue was full
because the consumer is behind). Problems that stop a demo before it starts -- no PortAudio library, no
input device, a device that cannot record -- raise :class:`AudioInputError` with a message that says how
to fix them.
"""

from __future__ import annotations

import itertools
import queue
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from speechedge.audio import AudioFormatError, EmptyAudioError, from_int16, info, validate_audio

__all__ = ["AudioInputError", "MicSource", "FileSource", "StdinSource", "open_source"]

SAMPLE_RATE = 16000


class AudioInputError(RuntimeError):
    """The audio input cannot be opened; the message says why and what to do."""


def _sounddevice():
    try:
        import sounddevice as sd
    except OSError as e:  # sounddevice imports fine but cannot load libportaudio
        raise AudioInputError(f"cannot use the microphone: {e}. Install PortAudio (Debian/Ubuntu: "
                              "`sudo apt install libportaudio2`; macOS: `brew install portaudio`) or use "
                              "--input FILE") from e
    except ImportError as e:
        raise AudioInputError("cannot use the microphone: the sounddevice package is missing "
                              "(pip install 'speechedge[demo]') or use --input FILE") from e
    return sd


class MicSource:
    """Blocks from the default (or a named) input device.

    Args:
        block: samples per block (1600 = 100 ms).
        device: a PortAudio device name or index (``None`` = the default input).
        max_seconds: stop after this much audio (``None`` = until :meth:`stop` or Ctrl-C).
        backlog_s: audio the queue may hold before blocks are dropped.
    """

    def __init__(self, *, block: int = 1600, device=None, max_seconds: float | None = None,
                 backlog_s: float = 60.0) -> None:
        sd = _sounddevice()
        self.block = block
        self.max_samples = int(max_seconds * SAMPLE_RATE) if max_seconds else None
        self.q: queue.Queue = queue.Queue(maxsize=max(2, int(backlog_s * SAMPLE_RATE / block)))
        self.captured = self.overflows = self.dropped = self.callback_errors = 0
        self.done = False
        try:
            info = sd.query_devices(device, kind="input")
        except (ValueError, sd.PortAudioError) as e:
            raise AudioInputError(f"no audio input device ({e}). Plug in a microphone, check `python -m "
                                  "sounddevice` for the device list, pass --device, or use --input FILE") from e
        self.device_name = info["name"]
        self.rate = SAMPLE_RATE
        try:
            sd.check_input_settings(device=device, samplerate=SAMPLE_RATE, channels=1, dtype="int16")
        except Exception:
            # the device cannot record at 16 kHz: record at its own rate and resample each block
            self.rate = int(info["default_samplerate"])
            try:
                sd.check_input_settings(device=device, samplerate=self.rate, channels=1, dtype="int16")
            except Exception as e:
                raise AudioInputError(f"input device {self.device_name!r} records neither 16000 Hz nor its default "
                                      f"{self.rate} Hz mono 16-bit ({e}); choose another with --device") from e
        self._resampler = None
        if self.rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="float32")
        # int16: the format microphones deliver (and the raw-file test device passes through unconverted)
        self.stream = sd.InputStream(samplerate=self.rate, channels=1, dtype="int16", device=device,
                                     blocksize=int(block * self.rate / SAMPLE_RATE), callback=self._callback)

    def _callback(self, indata, frames, time_info, status) -> None:  # PortAudio's thread: never raise
        try:
            if status.input_overflow:
                self.overflows += 1
            if self.done:
                return
            self.q.put_nowait(indata[:, 0].copy())
            self.captured += frames
            if self.max_samples is not None and self.captured * SAMPLE_RATE / self.rate >= self.max_samples:
                self.done = True
        except queue.Full:
            self.dropped += 1
        except Exception:
            self.callback_errors += 1

    @property
    def backlog(self) -> int:
        return self.q.qsize()

    def stop(self) -> None:
        self.done = True

    def __iter__(self) -> Iterator[np.ndarray]:
        self.done = False
        self.captured = 0
        self.stream.start()
        try:
            while True:
                try:
                    raw = self.q.get(timeout=0.1)
                except queue.Empty:
                    if self.done:
                        return
                    continue
                x = from_int16(raw)
                if self._resampler is not None:
                    x = self._resampler.resample_chunk(x)
                yield x
        finally:
            self.stream.stop()

    def record(self, seconds: float) -> np.ndarray:
        """Blocking capture of ``seconds`` of audio (enrolment prompts)."""
        out, need = [], int(seconds * SAMPLE_RATE)
        self.done = False
        self.stream.start()
        try:
            while sum(map(len, out)) < need:
                try:
                    raw = self.q.get(timeout=2.0)
                except queue.Empty:
                    raise AudioInputError(f"input device {self.device_name!r} delivers no audio") from None
                x = from_int16(raw)
                out.append(self._resampler.resample_chunk(x) if self._resampler is not None else x)
        finally:
            self.stream.stop()
        while not self.q.empty():  # leftovers belong to this take
            self.q.get_nowait()
        return np.concatenate(out)[:need]


class FileSource:
    """Blocks of an audio file (mixed to mono, resampled to 16 kHz), as fast as possible or paced at real time.

    The file is decoded block by block (libsndfile) and resampled with a streaming soxr resampler, so memory
    does not grow with the file's length. The header is checked when the source is opened (missing, not
    audio, truncated WAV, no samples); a block that holds NaN/Inf or a file that decodes shorter than its
    header says raise an :class:`~speechedge.audio.AudioError` naming the file when reached.
    """

    def __init__(self, path: str | Path, *, block: int = 1600, realtime: bool = False,
                 max_seconds: float | None = None) -> None:
        self.path = Path(path)
        self.meta = info(self.path)
        if self.meta.num_samples == 0:
            raise EmptyAudioError(f"{self.path}: audio file has no samples")
        self.max_samples = int(max_seconds * SAMPLE_RATE) if max_seconds else None
        self.block, self.realtime = block, realtime
        self.overflows = self.dropped = 0
        self.backlog = 0
        self.device_name = str(path)
        # decode the first block now: a file that cannot be decoded at all fails here, before a demo saves an
        # enrolment (a file corrupt further on fails when that block is reached)
        decoded = self._decoded()
        first = next(decoded, None)
        self._chunks = itertools.chain([] if first is None else [first], decoded)

    def stop(self) -> None:
        pass

    def _decoded(self) -> Iterator[np.ndarray]:
        """Mono float32 blocks at 16 kHz, of any length (the resampler's output)."""
        import soundfile as sf

        sr, name = self.meta.sample_rate, str(self.path)
        resampler = None
        if sr != SAMPLE_RATE:
            import soxr

            resampler = soxr.ResampleStream(sr, SAMPLE_RATE, 1, dtype="float32")
        read_block = max(1, int(self.block * sr / SAMPLE_RATE))
        seen = 0
        try:
            for data in sf.blocks(name, blocksize=read_block, dtype="float32", always_2d=True):
                seen += data.shape[0]
                x = validate_audio(data.T, source=name)
                x = x.mean(axis=0, dtype=np.float32) if x.shape[0] > 1 else x[0]
                yield resampler.resample_chunk(x) if resampler is not None else x
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioFormatError(f"{name}: could not decode audio ({e}); the file may be truncated or corrupt") from e
        if seen < self.meta.num_samples and (self.max_samples is None or seen * SAMPLE_RATE < self.max_samples * sr):
            raise AudioFormatError(f"{name}: header says {self.meta.num_samples} samples but only {seen} decode; "
                                   "the file is truncated")
        if resampler is not None:
            yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)

    def __iter__(self) -> Iterator[np.ndarray]:
        t0 = time.perf_counter()
        sent, pending = 0, np.zeros(0, np.float32)
        limit = self.max_samples
        for x in self._chunks:
            pending = np.concatenate([pending, x]) if len(pending) else x
            while len(pending) >= self.block:
                out, pending = pending[: self.block], pending[self.block:]
                if limit is not None and sent + len(out) > limit:
                    out = out[: limit - sent]
                self._pace(t0, sent)
                if len(out):
                    yield out
                sent += len(out)
                if limit is not None and sent >= limit:
                    return
        if len(pending) and (limit is None or sent < limit):
            self._pace(t0, sent)
            yield pending[: None if limit is None else limit - sent]

    def _pace(self, t0: float, sent: int) -> None:
        if self.realtime:
            wait = t0 + sent / SAMPLE_RATE - time.perf_counter()
            if wait > 0:
                time.sleep(wait)


class StdinSource:
    """Raw 16-bit little-endian mono 16 kHz PCM from stdin (``arecord -f S16_LE -r 16000 | speechedge ...``)."""

    def __init__(self, *, block: int = 1600, max_seconds: float | None = None) -> None:
        self.block = block
        self.max_samples = int(max_seconds * SAMPLE_RATE) if max_seconds else None
        self.overflows = self.dropped = 0
        self.backlog = 0
        self.device_name = "stdin"

    def stop(self) -> None:
        pass

    def __iter__(self) -> Iterator[np.ndarray]:
        buf, seen = sys.stdin.buffer, 0
        while self.max_samples is None or seen < self.max_samples:
            data = buf.read(2 * self.block)
            if not data:
                return
            seen += len(data) // 2
            yield from_int16(np.frombuffer(data[: len(data) // 2 * 2], "<i2"))


def open_source(spec: str, *, block: int = 1600, realtime: bool = False, device=None,
                max_seconds: float | None = None):
    """``mic`` -> :class:`MicSource`; ``-`` -> :class:`StdinSource`; anything else is an audio file."""
    if spec == "mic":
        return MicSource(block=block, device=device, max_seconds=max_seconds)
    if spec == "-":
        return StdinSource(block=block, max_seconds=max_seconds)
    if not Path(spec).exists():
        raise FileNotFoundError(f"--input {spec}: no such file (use 'mic', '-' for raw PCM on stdin, or a file)")
    if Path(spec).is_dir():
        raise IsADirectoryError(f"--input {spec}: is a folder; give one audio file (or 'mic', or '-' for stdin)")
    return FileSource(spec, block=block, realtime=realtime, max_seconds=max_seconds)
