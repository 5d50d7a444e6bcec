"""Numba log-mel / MFCC kernels: whole clips, batches, and frame-by-frame streaming.

The math is the one documented in :mod:`speechedge.features`; the constants (window, filterbank, DCT)
come from there, so this module and the torch frontend cannot drift apart. NumPy arrays in and out,
no torch. The FFT is our own four-step radix-2 kernel (see ``_power_spectrum``): its loops run over
independent sub-transforms of every frame at once, so LLVM vectorizes them for one frame (a 10 ms streaming
push) as for a batch, with the same operations per frame (streaming is bit-identical to whole clips), and
unlike a library call it needs no per-call plan.

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
        # FFT tables. The real n_fft-point FFT is a complex M-point FFT (M = n_fft / 2) of the even/odd samples
        # followed by one split step; the M-point FFT is a "four-step" FFT of M = N1 x N2 points (see
        # _power_spectrum), whose radix-2 passes run over rows of N2 (or N1) independent transforms.
        half = config.n_fft // 2
        if half & (half - 1):
            raise ValueError(f"the Numba frontend needs a power-of-two n_fft, got {config.n_fft}")
        bits = half.bit_length() - 1
        n1, n2 = 1 << (bits // 2), 1 << (bits - bits // 2)

        def bitrev(n: int) -> np.ndarray:
            b = n.bit_length() - 1
            return np.array([int(format(i, f"0{b}b")[::-1], 2) if n > 1 else 0 for i in range(n)], dtype=np.int64)

        def stage_twiddles(n: int) -> np.ndarray:  # exp(-2 pi i j / size), j < size / 2, stage after stage
            stages, size = [], 2
            while size <= n:
                stages.append(np.exp(-2j * np.pi * np.arange(size // 2) / size))
                size *= 2
            return np.concatenate(stages or [np.ones(1)]).astype(np.complex64)

        self.bitrev1, self.bitrev2 = bitrev(n1), bitrev(n2)
        self.twiddles1, self.twiddles2 = stage_twiddles(n1), stage_twiddles(n2)
        # between the passes: exp(-2 pi i k1 n2 / M), (N1, N2)
        self.twiddles_mid = np.exp(-2j * np.pi * np.outer(np.arange(n1), np.arange(n2)) / half).astype(np.complex64)
        self.split = np.exp(-2j * np.pi * np.arange(half + 1) / config.n_fft).astype(np.complex64)
        self.tables = (self.window, self.bitrev1, self.bitrev2, self.twiddles1, self.twiddles2, self.twiddles_mid,
                       self.split, self.fb_first_bin, self.fb_offsets, self.fb_weights, self.dct)
        # the same tables packed into three arrays (+ a header of sizes) for the streaming kernel: a Numba
        # call pays for every argument it types, and a 10 ms push is mostly that call
        f32 = [self.window, self.fb_weights, self.dct.ravel(), np.array([self.log_floor], np.float32)]
        c64 = [self.twiddles1, self.twiddles2, self.twiddles_mid.ravel(), self.split]
        i64 = [self.bitrev1, self.bitrev2, self.fb_first_bin, self.fb_offsets]
        header = [config.hop_length, n1, n2, self.fb_weights.size, self.dct.shape[0], len(first),
                  self.twiddles1.size, self.twiddles2.size]
        self.packed = (np.concatenate(f32).astype(np.float32), np.concatenate(c64).astype(np.complex64),
                       np.concatenate([np.array(header, np.int64), *i64]).astype(np.int64))
        for a in (*self.tables, *self.packed):
            a.setflags(write=False)


# frames per FFT block: the work arrays (2 x 2 x n_fft/2 x frames floats) stay in L1/L2 cache
_BLOCK_FRAMES = 32


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


@nb.njit(cache=True, nogil=True, inline="always")
def _radix2_rows(zr, zi, twiddles):
    """In-place radix-2 decimation-in-time FFT along the rows of ``zr + i zi`` (rows in bit-reversed order in,
    natural order out); each butterfly's loop runs along a row, over independent transforms (vectorized)."""
    n = zr.shape[0]
    lanes = zr.shape[1]
    size = 2
    off = 0
    while size <= n:
        half = size // 2
        for start in range(0, n, size):
            for j in range(half):
                wr = twiddles[off + j].real
                wi = twiddles[off + j].imag
                a = start + j
                b = a + half
                for t in range(lanes):  # 2-D indexing, no row views: a view costs an atomic refcount pair
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


@nb.njit(cache=True, nogil=True)
def _power_spectrum(signal, n_frames, hop, window, bitrev1, bitrev2, twiddles1, twiddles2, twiddles_mid, split):
    """|rfft(window * frame_t)|^2 for every frame, shape ``(n_fft // 2 + 1, n_frames)`` float32.

    Real input of length N = 2M is packed as the complex sequence z[n] = x[2n] + i x[2n+1]; after the
    M-point FFT Z, the split step gives X[k] = E[k] + W^k O[k] with E[k] = (Z[k] + conj(Z[M-k])) / 2,
    O[k] = (Z[k] - conj(Z[M-k])) / 2i and W = exp(-2 pi i / N).

    The M-point FFT is a four-step FFT of M = N1 x N2 points (n = N2 n1 + n2, k = k1 + N1 k2): N2 FFTs of
    N1 points over n1, a twiddle exp(-2 pi i n2 k1 / M), N1 FFTs of N2 points over n2. Each radix-2 pass
    works on rows of N2 (then N1) independent transforms for every frame at once, so its loops are long
    and contiguous and LLVM vectorizes them whatever the number of frames: one frame (a 10 ms streaming
    push) runs the same vector code as a batch, and every frame gets the same operations in the same
    order for any ``n_frames`` (streaming is bit-identical to whole clips). Real and imaginary parts are
    separate arrays: LLVM vectorizes those loops, not complex64 ones.
    """
    n1 = bitrev1.shape[0]
    n2 = bitrev2.shape[0]
    m = n1 * n2
    nt = n_frames
    # pass 1: rows n1 (bit-reversed), lanes (n2, frame): frames innermost, so that every later loop over
    # frames is contiguous too (a batch vectorizes across frames, one frame across the N2 transforms)
    zr = np.empty((n1, n2 * nt), dtype=np.float32)
    zi = np.empty((n1, n2 * nt), dtype=np.float32)
    # (with one frame, the loops run over b / k1 / k instead: the same operations per element, without a
    # one-iteration loop over frames for each of them)
    for a in range(n1):
        r = bitrev1[a]
        if nt == 1:
            for b in range(n2):
                n = 2 * (n2 * a + b)
                zr[r, b] = signal[n] * window[n]
                zi[r, b] = signal[n + 1] * window[n + 1]
            continue
        for b in range(n2):
            n = 2 * (n2 * a + b)
            w0 = window[n]
            w1 = window[n + 1]
            for t in range(nt):
                zr[r, b * nt + t] = signal[t * hop + n] * w0
                zi[r, b * nt + t] = signal[t * hop + n + 1] * w1
    _radix2_rows(zr, zi, twiddles1)
    # twiddles between the passes, then rows n2 (bit-reversed), lanes (k1, frame)
    yr = np.empty((n2, n1 * nt), dtype=np.float32)
    yi = np.empty((n2, n1 * nt), dtype=np.float32)
    for k1 in range(n1):
        if nt == 1:
            for b in range(n2):
                wr = twiddles_mid[k1, b].real
                wi = twiddles_mid[k1, b].imag
                xr = zr[k1, b]
                xi = zi[k1, b]
                yr[bitrev2[b], k1] = wr * xr - wi * xi
                yi[bitrev2[b], k1] = wr * xi + wi * xr
            continue
        for b in range(n2):
            wr = twiddles_mid[k1, b].real
            wi = twiddles_mid[k1, b].imag
            r = bitrev2[b]
            for t in range(nt):
                xr = zr[k1, b * nt + t]
                xi = zi[k1, b * nt + t]
                yr[r, k1 * nt + t] = wr * xr - wi * xi
                yi[r, k1 * nt + t] = wr * xi + wi * xr
    _radix2_rows(yr, yi, twiddles2)
    # Z_t[k1 + N1 k2] = y[k2, k1 nt + t]; the split step, across frames
    power = np.empty((m + 1, nt), dtype=np.float32)
    sh = 0
    while (1 << sh) < n1:
        sh += 1
    mask = n1 - 1
    if nt == 1:
        for k in range(m + 1):
            ka = k & (m - 1)
            kb = (m - k) & (m - 1)
            power[k, 0] = _split_power(yr[ka >> sh, ka & mask], yi[ka >> sh, ka & mask], yr[kb >> sh, kb & mask],
                                       yi[kb >> sh, kb & mask], split[k].real, split[k].imag)
        return power
    for k in range(m + 1):
        ka = k & (m - 1)  # k mod m (m is a power of two; integer % was a third of the kernel)
        kb = (m - k) & (m - 1)
        ra, ca = ka >> sh, (ka & mask) * nt
        rb, cb = kb >> sh, (kb & mask) * nt
        cr = split[k].real
        ci = split[k].imag
        for t in range(nt):
            power[k, t] = _split_power(yr[ra, ca + t], yi[ra, ca + t], yr[rb, cb + t], yi[rb, cb + t], cr, ci)
    return power


@nb.njit(cache=True, nogil=True)
def _frames_kernel(signal, n_frames, hop, window, bitrev1, bitrev2, twiddles1, twiddles2, twiddles_mid, split,
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
        power = _power_spectrum(signal[b0 * hop:], nb_, hop, window, bitrev1, bitrev2, twiddles1, twiddles2,
                                twiddles_mid, split)
        for m in range(n_mels):
            if nb_ == 1:  # the same sum in the same order, without one-iteration loops
                acc = mel[m, b0]
                for j in range(fb_offsets[m + 1] - fb_offsets[m]):
                    acc += fb_weights[fb_offsets[m] + j] * power[fb_first_bin[m] + j, 0]
                mel[m, b0] = acc + log_floor
                continue
            acc = mel[m, b0: b0 + nb_]
            for j in range(fb_offsets[m + 1] - fb_offsets[m]):
                w = fb_weights[fb_offsets[m] + j]
                prow = power[fb_first_bin[m] + j]
                for t in range(nb_):  # vectorized across frames; per frame the order over j is fixed
                    acc[t] += w * prow[t]
            for t in range(nb_):
                acc[t] += log_floor
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
def _stream_push(buf, fill, samples, hop, window, bitrev1, bitrev2, twiddles1, twiddles2, twiddles_mid, split,
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
        _frames_kernel(buf, n, hop, window, bitrev1, bitrev2, twiddles1, twiddles2, twiddles_mid, split,
                       fb_first_bin, fb_offsets, fb_weights, dct, log_floor, out)
        used = n * hop
        buf[: f - used] = buf[used:f].copy()
        f -= used
    fill[0] = f
    return out, n


@nb.njit(cache=True, nogil=True)
def _stream_push_packed(buf, fill, samples, f32, c64, i64):
    """:func:`_stream_push` with the tables of :attr:`FrontendConstants.packed` (6 arguments instead of 16)."""
    hop, n1, n2, n_w, n_mfcc, n_mels, n_t1, n_t2 = i64[0], i64[1], i64[2], i64[3], i64[4], i64[5], i64[6], i64[7]
    n_fft = 2 * n1 * n2
    o = 8
    bitrev1 = i64[o: o + n1]
    bitrev2 = i64[o + n1: o + n1 + n2]
    o += n1 + n2
    fb_first_bin = i64[o: o + n_mels]
    fb_offsets = i64[o + n_mels: o + 2 * n_mels + 1]
    window = f32[:n_fft]
    fb_weights = f32[n_fft: n_fft + n_w]
    dct = f32[n_fft + n_w: n_fft + n_w + n_mfcc * n_mels].reshape((n_mfcc, n_mels))
    log_floor = f32[n_fft + n_w + n_mfcc * n_mels]
    twiddles1 = c64[:n_t1]
    twiddles2 = c64[n_t1: n_t1 + n_t2]
    twiddles_mid = c64[n_t1 + n_t2: n_t1 + n_t2 + n1 * n2].reshape((n1, n2))
    split = c64[n_t1 + n_t2 + n1 * n2:]
    return _stream_push(buf, fill, samples, hop, window, bitrev1, bitrev2, twiddles1, twiddles2, twiddles_mid,
                        split, fb_first_bin, fb_offsets, fb_weights, dct, log_floor)


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
        self._args = c.packed
        self._buf = np.zeros(config.n_fft + (4 + self.min_frames) * config.hop_length, dtype=np.float32)
        self._none = np.zeros((config.num_features, 0), dtype=np.float32)
        self._fill = np.zeros(1, dtype=np.int64)
        self._filled = 0  # = self._fill[0], kept as a Python int (reading the array costs more than the store)
        self.num_samples_seen = 0
        self.num_frames_emitted = 0
        self._next_batch()

    def reset(self) -> None:
        """Forget all buffered samples and start a new stream."""
        self._fill[0] = 0
        self._filled = 0  # = self._fill[0], kept as a Python int (reading the array costs more than the store)
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
        n = samples.shape[0]
        need = self._filled + n
        if need > self._buf.shape[0]:
            grown = np.zeros(max(need, 2 * self._buf.shape[0]), dtype=np.float32)
            grown[:self._filled] = self._buf[:self._filled]
            self._buf = grown
        if need < self._batch_at:  # the next multiple of min_frames frames is not complete: only store
            if not _stream_store(self._buf, self._fill, samples):
                raise ValueError("samples: block contains NaN or Inf; the stream was left unchanged")
            self._filled = need
            self.num_samples_seen += n
            return self._none
        out = self._run_kernel(samples)
        self.num_samples_seen += n
        return out

    def flush(self) -> np.ndarray:
        """The frames the samples pushed so far complete but ``min_frames`` held back: ``(F, frames)``."""
        return self._run_kernel(np.zeros(0, np.float32))

    def _run_kernel(self, samples: np.ndarray) -> np.ndarray:
        out, n = _stream_push_packed(self._buf, self._fill, samples, *self._args)
        if n < 0:
            raise ValueError("samples: block contains NaN or Inf; the stream was left unchanged")
        self._filled = int(self._fill[0])
        self.num_frames_emitted += n
        self._next_batch()
        return out
