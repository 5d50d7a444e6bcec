"""Numba log-mel / MFCC kernels: whole clips, batches, and frame-by-frame streaming.

The math is the one documented in :mod:`speechedge.features`; the constants (window, filterbank, DCT)
come from there, so this module and the torch frontend cannot drift apart. NumPy arrays in and out,
no torch. The FFT is our own radix-2 kernel laid out across frames (see ``_power_spectrum``): it
vectorizes over frames for batches and, unlike a library call, needs no per-call plan, which keeps the
one-frame streaming path cheap.

Layout: a public function validates, casts and allocates; a private ``@njit(cache=True)`` kernel only
computes into the arrays it is given.
"""

from __future__ import annotations

from functools import lru_cache

import numba as nb
import numpy as np

from speechedge.features import FrontendConfig, analysis_window, dct_matrix, mel_filterbank, num_frames

__all__ = ["log_mel", "StreamingLogMel", "FrontendConstants", "constants"]


class FrontendConstants:
    """Float32 constants of a config in the layout the kernels want (immutable, cached per config).

    The mel filterbank is stored sparsely: filter ``m`` has weights ``fb_weights[fb_offsets[m]:fb_offsets[m+1]]``
    for the consecutive FFT bins starting at ``fb_first_bin[m]`` (a triangle touches few bins).
    """

    def __init__(self, config: FrontendConfig) -> None:
        self.config = config
        self.window = analysis_window(config).astype(np.float32)
        fb = mel_filterbank(config).T  # (n_mels, n_freqs)
        first, offsets, weights = [], [0], []
        for row in fb:
            nz = np.flatnonzero(row > 0)
            lo, hi = (nz[0], nz[-1] + 1) if nz.size else (0, 0)
            first.append(lo)
            weights.append(row[lo:hi])
            offsets.append(offsets[-1] + hi - lo)
        self.fb_first_bin = np.array(first, dtype=np.int64)
        self.fb_offsets = np.array(offsets, dtype=np.int64)
        self.fb_weights = np.concatenate(weights).astype(np.float32)
        n_mfcc = config.n_mfcc or 0
        self.dct = np.ascontiguousarray(dct_matrix(n_mfcc, config.n_mels), dtype=np.float32) if n_mfcc else \
            np.zeros((0, config.n_mels), np.float32)
        self.log_floor = np.float32(config.log_floor)
        # FFT tables: the real n_fft-point FFT is a complex (n_fft/2)-point FFT of the even/odd samples
        # followed by one split step (see _power_spectrum).
        half = config.n_fft // 2
        if half & (half - 1):
            raise ValueError(f"the Numba frontend needs a power-of-two n_fft, got {config.n_fft}")
        bits = max(1, half.bit_length() - 1)
        self.bitrev = np.array([int(format(i, f"0{bits}b")[::-1], 2) if half > 1 else 0 for i in range(half)],
                               dtype=np.int64)
        # twiddles of each radix-2 stage, stage after stage: exp(-2 pi i j / size), j < size / 2
        stages, size = [], 2
        while size <= half:
            stages.append(np.exp(-2j * np.pi * np.arange(size // 2) / size))
            size *= 2
        self.twiddles = np.concatenate(stages or [np.ones(1)]).astype(np.complex64)
        self.split = np.exp(-2j * np.pi * np.arange(half + 1) / config.n_fft).astype(np.complex64)
        self.tables = (self.window, self.bitrev, self.twiddles, self.split,
                       self.fb_first_bin, self.fb_offsets, self.fb_weights, self.dct)
        for a in self.tables:
            a.setflags(write=False)


# below this many frames the per-frame scalar FFT beats the loops vectorized across frames
_VECTOR_MIN_FRAMES = 8
_BLOCK_FRAMES = 128


@lru_cache(maxsize=16)
def constants(config: FrontendConfig) -> FrontendConstants:
    return FrontendConstants(config)


@nb.njit(cache=True, nogil=True)
def _log_inplace(x):
    """Natural log of positive float32 values in place, ~1 ulp (the Cephes ``logf`` polynomial).

    Written branch-free so that LLVM vectorizes it; libm's scalar ``logf`` was 40% of the kernel's time.
    log(x) = e*ln2 + log(m) with x = m * 2**e and m in [sqrt(1/2), sqrt(2)).
    """
    bits = x.view(np.int32)
    for i in range(x.shape[0]):
        b = bits[i]
        e = np.float32(((b >> 23) & 0xFF) - 126)
        bits[i] = (b & 0x7FFFFF) | 0x3F000000  # mantissa in [0.5, 1)
        m = x[i]
        small = m < np.float32(0.70710678)
        e = e - np.float32(1.0) if small else e
        m = (m + m - np.float32(1.0)) if small else (m - np.float32(1.0))
        z = m * m
        y = np.float32(7.0376836292e-2)
        y = y * m - np.float32(1.1514610310e-1)
        y = y * m + np.float32(1.1676998740e-1)
        y = y * m - np.float32(1.2420140846e-1)
        y = y * m + np.float32(1.4249322787e-1)
        y = y * m - np.float32(1.6668057665e-1)
        y = y * m + np.float32(2.0000714765e-1)
        y = y * m - np.float32(2.4999993993e-1)
        y = y * m + np.float32(3.3333331174e-1)
        y = y * m * z + np.float32(-2.12194440e-4) * e - np.float32(0.5) * z
        x[i] = m + y + np.float32(0.693359375) * e


@nb.njit(cache=True, nogil=True, inline="always")
def _split_power(ar, ai, br, bi, cr, ci):
    """|X[k]|^2 from Z[k] = a, Z[M-k] = b and W^k = c (see :func:`_power_spectrum`)."""
    er = np.float32(0.5) * (ar + br)  # E = (a + conj b) / 2
    ei = np.float32(0.5) * (ai - bi)
    orr = np.float32(0.5) * (ai + bi)  # O = (a - conj b) / 2i
    oi = np.float32(0.5) * (br - ar)
    xr = er + (cr * orr - ci * oi)
    xi = ei + (cr * oi + ci * orr)
    return xr * xr + xi * xi


@nb.njit(cache=True, nogil=True)
def _power_spectrum(signal, n_frames, hop, window, bitrev, twiddles, split):
    """|rfft(window * frame_t)|^2 for every frame, shape ``(n_fft // 2 + 1, n_frames)`` float32.

    A radix-2 decimation-in-time FFT written so that every inner loop runs across frames (the arrays
    are ``(bin, frame)``), which LLVM vectorizes. Real input of length N = 2M is packed as the complex
    sequence z[n] = x[2n] + i x[2n+1]; after the M-point FFT Z, the split step gives
    X[k] = E[k] + W^k O[k] with E[k] = (Z[k] + conj(Z[M-k])) / 2, O[k] = (Z[k] - conj(Z[M-k])) / 2i
    and W = exp(-2 pi i / N). :func:`_power_spectrum_one` is the same arithmetic for one frame.
    """
    m = bitrev.shape[0]
    nt = n_frames
    # real and imaginary parts in separate arrays: LLVM vectorizes these loops across frames, which it
    # does not do for complex64 arrays
    zr = np.empty((m, nt), dtype=np.float32)
    zi = np.empty((m, nt), dtype=np.float32)
    for n in range(m):
        r = bitrev[n]
        w0 = window[2 * n]
        w1 = window[2 * n + 1]
        for t in range(nt):
            zr[r, t] = signal[t * hop + 2 * n] * w0
            zi[r, t] = signal[t * hop + 2 * n + 1] * w1
    size = 2
    off = 0
    while size <= m:
        half = size // 2
        for start in range(0, m, size):
            for j in range(half):
                wr = twiddles[off + j].real
                wi = twiddles[off + j].imag
                a = start + j
                b = a + half
                for t in range(nt):
                    # p = w * z[b] spelled out exactly as numba's complex multiply computes it
                    pr = wr * zr[b, t] - wi * zi[b, t]
                    pi = wr * zi[b, t] + wi * zr[b, t]
                    xr = zr[a, t]
                    xi = zi[a, t]
                    zr[b, t] = xr - pr
                    zi[b, t] = xi - pi
                    zr[a, t] = xr + pr
                    zi[a, t] = xi + pi
        off += half
        size *= 2
    power = np.empty((m + 1, nt), dtype=np.float32)
    for k in range(m + 1):
        ka = k & (m - 1)  # k mod m (m is a power of two; integer % was a third of the kernel)
        kb = (m - k) & (m - 1)
        cr = split[k].real
        ci = split[k].imag
        for t in range(nt):
            power[k, t] = _split_power(zr[ka, t], zi[ka, t], zr[kb, t], zi[kb, t], cr, ci)
    return power


@nb.njit(cache=True, nogil=True)
def _power_spectrum_one(signal, offset, window, bitrev, twiddles, split, power, col):
    """The arithmetic of :func:`_power_spectrum` for the single frame at ``signal[offset:]``.

    With a run-time frame count of 1, the loops of ``_power_spectrum`` spend more time setting up
    vector code than computing; this scalar copy keeps the streaming path (one frame per 10 ms push)
    fast. Here complex64 arithmetic is 3x faster than split real/imaginary arrays; numba multiplies
    complex numbers with exactly the operations ``_power_spectrum`` spells out, so the results are
    bit-identical (tested).
    """
    m = bitrev.shape[0]
    z = np.empty(m, dtype=np.complex64)
    for n in range(m):
        z[bitrev[n]] = complex(signal[offset + 2 * n] * window[2 * n], signal[offset + 2 * n + 1] * window[2 * n + 1])
    size = 2
    off = 0
    while size <= m:
        half = size // 2
        for start in range(0, m, size):
            for j in range(half):
                w = twiddles[off + j]
                a = start + j
                p = w * z[a + half]
                x = z[a]
                z[a + half] = x - p
                z[a] = x + p
        off += half
        size *= 2
    for k in range(m + 1):
        zk = z[k & (m - 1)]
        zc = z[(m - k) & (m - 1)]
        power[k, col] = _split_power(zk.real, zk.imag, zc.real, zc.imag, split[k].real, split[k].imag)


@nb.njit(cache=True, nogil=True)
def _frames_kernel(signal, n_frames, hop, window, bitrev, twiddles, split,
                   fb_first_bin, fb_offsets, fb_weights, dct, log_floor, out):
    """Features of ``n_frames`` frames of ``signal`` (frame t starts at ``t*hop``) into ``out[:, :n_frames]``.

    out[m, t] = log(sum_k fb[m, k] * |rfft(window * frame_t)[k]|^2 + log_floor), then optionally DCT.
    Every frame's numbers depend only on that frame's samples and the loops keep the same order of
    operations for any ``n_frames``, so streaming (one frame at a time) gives bit-identical results.
    """
    n_mels = fb_first_bin.shape[0]
    n_mfcc = dct.shape[0]
    if n_frames <= 0:
        return
    mel = np.zeros((n_mels, n_frames), dtype=np.float32)
    # blocks of frames small enough that the FFT work arrays stay in L1/L2 cache
    for b0 in range(0, n_frames, _BLOCK_FRAMES):
        nb_ = min(_BLOCK_FRAMES, n_frames - b0)
        if nb_ >= _VECTOR_MIN_FRAMES:
            power = _power_spectrum(signal[b0 * hop :], nb_, hop, window, bitrev, twiddles, split)
            for m in range(n_mels):
                acc = mel[m, b0 : b0 + nb_]
                for j in range(fb_offsets[m + 1] - fb_offsets[m]):
                    w = fb_weights[fb_offsets[m] + j]
                    prow = power[fb_first_bin[m] + j]
                    for t in range(nb_):  # vectorized across frames; per frame the order over j is fixed
                        acc[t] += w * prow[t]
                for t in range(nb_):
                    acc[t] += log_floor
        else:  # scalar loops, same operations in the same order (see _power_spectrum_one)
            power = np.empty((bitrev.shape[0] + 1, 1), dtype=np.float32)
            for t in range(b0, b0 + nb_):
                _power_spectrum_one(signal, t * hop, window, bitrev, twiddles, split, power, 0)
                for m in range(n_mels):
                    acc1 = np.float32(0.0)
                    first = fb_first_bin[m]
                    for j in range(fb_offsets[m + 1] - fb_offsets[m]):
                        acc1 += fb_weights[fb_offsets[m] + j] * power[first + j, 0]
                    mel[m, t] = acc1 + log_floor
    flat = mel.reshape(-1)
    _log_inplace(flat)
    if n_mfcc == 0:
        out[:, :n_frames] = mel
    else:
        for j in range(n_mfcc):
            o = out[j]
            for t in range(n_frames):
                o[t] = 0.0
            for m in range(n_mels):
                w = dct[j, m]
                lm = mel[m]
                for t in range(n_frames):
                    o[t] += w * lm[t]


def _run(signal: np.ndarray, n_frames: int, c: FrontendConstants, out: np.ndarray) -> None:
    _frames_kernel(signal, n_frames, c.config.hop_length, *c.tables, c.log_floor, out)


def _as_signal(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    audio = np.asarray(audio)
    if audio.dtype == np.int16:
        audio = audio.astype(np.float32) / 32768.0
    elif audio.dtype.kind != "f":
        raise ValueError(f"{name}: expected float or int16 samples, got dtype {audio.dtype}")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if not np.isfinite(audio).all():
        raise ValueError(f"{name}: contains NaN or Inf samples")
    return audio


def log_mel(audio: np.ndarray, config: FrontendConfig | None = None) -> np.ndarray:
    """Log-mel (or MFCC when ``config.n_mfcc`` is set) features of one clip or a batch.

    Args:
        audio: ``(num_samples,)`` or ``(batch, num_samples)``; float (any precision) or int16.
        config: the frontend (the model's: from its recipe config, checkpoint or ``frontend.json``).

    Returns:
        float32 ``(..., num_features, num_frames)``; ``num_frames`` is
        :func:`speechedge.features.num_frames` (0 for a clip shorter than one frame with ``center=False``).

    Raises:
        ValueError: wrong rank, dtype, or non-finite samples.
    """
    if config is None:
        raise ValueError("log_mel: pass the frontend config (the model's, from its recipe config or frontend.json)")
    audio = _as_signal(audio)
    if audio.ndim not in (1, 2):
        raise ValueError(f"audio must be (num_samples,) or (batch, num_samples), got shape {audio.shape}")
    c = constants(config)
    batch = audio.reshape(-1, audio.shape[-1])
    n = num_frames(batch.shape[-1], config)
    out = np.empty((batch.shape[0], config.num_features, n), dtype=np.float32)
    pad = config.n_fft // 2 if config.center else 0
    padded = np.zeros(batch.shape[-1] + 2 * pad, dtype=np.float32)
    for b in range(batch.shape[0]):
        padded[pad : pad + batch.shape[-1]] = batch[b]
        _run(padded, n, c, out[b])
    return out.reshape(*audio.shape[:-1], config.num_features, n)


@nb.njit(cache=True, nogil=True)
def _stream_push(buf, fill, samples, hop, window, bitrev, twiddles, split,
                 fb_first_bin, fb_offsets, fb_weights, dct, log_floor):
    """Append ``samples`` to ``buf[:fill[0]]``, compute every complete frame, keep the tail.

    Returns ``(features, status)``; status -1 means a non-finite sample (nothing is consumed then).
    """
    n_fft = window.shape[0]
    n_feat = dct.shape[0] if dct.shape[0] else fb_first_bin.shape[0]
    for i in range(samples.shape[0]):
        if not np.isfinite(samples[i]):
            return np.empty((n_feat, 0), dtype=np.float32), -1
    f = fill[0]
    buf[f : f + samples.shape[0]] = samples
    f += samples.shape[0]
    n = 1 + (f - n_fft) // hop if f >= n_fft else 0
    out = np.empty((n_feat, n), dtype=np.float32)
    if n > 0:
        _frames_kernel(buf, n, hop, window, bitrev, twiddles, split,
                       fb_first_bin, fb_offsets, fb_weights, dct, log_floor, out)
        used = n * hop
        buf[: f - used] = buf[used:f].copy()
        f -= used
    fill[0] = f
    return out, n


@nb.njit(cache=True, nogil=True)
def _stream_store(buf, fill, samples):
    """Append ``samples`` to ``buf[:fill[0]]`` without computing frames; False (nothing stored) for NaN/Inf."""
    for i in range(samples.shape[0]):
        if not np.isfinite(samples[i]):
            return False
    f = fill[0]
    buf[f: f + samples.shape[0]] = samples
    fill[0] = f + samples.shape[0]
    return True


class StreamingLogMel:
    """Frame-by-frame features from a stream of sample blocks of any size.

    The frames are exactly those of ``log_mel(whole_stream, config)`` for ``center=False`` (frame ``t``
    covers samples ``t*hop .. t*hop + n_fft``), whatever block sizes are pushed. Fewer than ``n_fft``
    samples are held between calls; the buffer grows only for a block larger than any seen before.

    ``min_frames`` batches the work: frames are computed when the count of complete frames reaches the next
    multiple of ``min_frames`` (or on :meth:`flush`); a push before that only stores its samples (no kernel
    call) and returns no frames. The frames are the same; a consumer that acts on every N-th frame (a
    detector's stride, an ASR chunk) passes ``min_frames=N`` and gets each N-th frame from the same push as
    without batching, while small blocks (10 ms microphone callbacks) stop paying for one scalar FFT kernel
    call each.

    Example:
        >>> stream = StreamingLogMel(FrontendConfig.kws(center=False))
        >>> feats = stream.push(block)  # (n_mels, new_frames), new_frames may be 0
    """

    def __init__(self, config: FrontendConfig, *, min_frames: int = 1) -> None:
        if config.center:
            raise ValueError(
                "StreamingLogMel needs FrontendConfig(center=False): a stream has no future samples to pad "
                "the first frame with; use dataclasses.replace(config, center=False)"
            )
        if min_frames < 1:
            raise ValueError(f"min_frames must be >= 1, got {min_frames}")
        self.config, self.min_frames = config, int(min_frames)
        c = self._c = constants(config)
        self._args = (config.hop_length, *c.tables, c.log_floor)
        self._buf = np.zeros(config.n_fft + (4 + self.min_frames) * config.hop_length, dtype=np.float32)
        self._none = np.zeros((config.num_features, 0), dtype=np.float32)
        self._fill = np.zeros(1, dtype=np.int64)
        self.num_samples_seen = 0
        self.num_frames_emitted = 0
        self._next_batch()

    def reset(self) -> None:
        """Forget all buffered samples and start a new stream."""
        self._fill[0] = 0
        self.num_samples_seen = 0
        self.num_frames_emitted = 0
        self._next_batch()

    def _next_batch(self) -> None:
        """Buffered samples at which the next kernel call is due: when the frame count reaches the next
        multiple of ``min_frames`` (counted from the start of the stream, so a consumer that acts on every
        ``min_frames``-th frame gets each such frame from the same push as without batching)."""
        target = (self.num_frames_emitted // self.min_frames + 1) * self.min_frames  # frames in all
        self._batch_at = self.config.n_fft + (target - 1 - self.num_frames_emitted) * self.config.hop_length

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add a block of samples; return the features of every frame it completes.

        Shape: ``(block,)`` float32 (other float types and int16 are converted) ->
        ``(num_features, new_frames)`` float32.

        Raises:
            ValueError: the block is not 1-D, or contains NaN/Inf (the stream is left unchanged).
        """
        if not (type(samples) is np.ndarray and samples.dtype == np.float32 and samples.ndim == 1):
            samples = _as_signal(samples, "samples")
            if samples.ndim != 1:
                raise ValueError(f"samples must be 1-D (one stream), got shape {samples.shape}")
        fill = int(self._fill[0])
        need = fill + samples.shape[0]
        if need > self._buf.shape[0]:
            grown = np.zeros(max(need, 2 * self._buf.shape[0]), dtype=np.float32)
            grown[:fill] = self._buf[:fill]
            self._buf = grown
        if need < self._batch_at:  # the next multiple of min_frames frames is not complete: only store
            if not _stream_store(self._buf, self._fill, samples):
                raise ValueError("samples: block contains NaN or Inf; the stream was left unchanged")
            self.num_samples_seen += samples.shape[0]
            return self._none
        out = self._run_kernel(samples)
        self.num_samples_seen += samples.shape[0]
        return out

    def flush(self) -> np.ndarray:
        """The frames the samples pushed so far complete but ``min_frames`` held back: ``(F, frames)``."""
        return self._run_kernel(np.zeros(0, np.float32))

    def _run_kernel(self, samples: np.ndarray) -> np.ndarray:
        out, n = _stream_push(self._buf, self._fill, samples, *self._args)
        if n < 0:
            raise ValueError("samples: block contains NaN or Inf; the stream was left unchanged")
        self.num_frames_emitted += n
        self._next_batch()
        return out
