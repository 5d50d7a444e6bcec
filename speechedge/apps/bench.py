"""Benchmarks printed as tables with ratios against reference implementations measured in the same run.

``speechedge bench frontend`` (and ``benchmarks/bench_frontend.py``): log-mel of one-second clips by the
Numba batch kernel, the Numba streaming kernel (10 ms and 100 ms pushes), torch on one thread and librosa, all
single-threaded, plus the first-call JIT time and peak memory of each. Each number is the best of
``repeats`` runs (the least disturbed by other work on the machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["FrontendBenchRow", "bench_frontend", "format_table"]


@dataclass
class FrontendBenchRow:
    name: str
    ms_per_audio_s: float
    first_call_s: float
    peak_rss_mb: float

    @property
    def rtf(self) -> float:
        """Real-time factor: compute time / audio time (smaller is faster)."""
        return self.ms_per_audio_s / 1000.0


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _measure_one(name: str, num_clips: int, repeats: int) -> dict:
    """Runs in a fresh process so that JIT time and peak memory belong to one implementation."""
    import resource

    from speechedge.features import FrontendConfig

    rng = np.random.default_rng(0)
    clips = (0.1 * rng.standard_normal((num_clips, 16000))).astype(np.float32)
    config = FrontendConfig.kws()  # the KWS preset: the frontend every KWS config starts from
    t0 = time.perf_counter()
    if name == "numba batch":
        from speechedge.kernels import log_mel

        log_mel(clips[:1], config)
        first = time.perf_counter() - t0
        run = lambda: log_mel(clips, config)  # noqa: E731
    elif name.startswith("numba stream"):
        from dataclasses import replace

        from speechedge.kernels import StreamingLogMel

        # "numba stream 10ms" or "numba stream 10ms, min_frames 10" (frames computed 10 at a time)
        push, _, batched = name.removeprefix("numba stream ").partition(", min_frames ")
        block = 16 * int(push.removesuffix("ms"))  # samples per push at 16 kHz
        stream = StreamingLogMel(replace(config, center=False), min_frames=int(batched or 1))
        stream.push(clips[0])
        stream.flush()
        first = time.perf_counter() - t0
        blocks = clips.reshape(num_clips, -1, block)

        def run():
            for clip in blocks:
                stream.reset()
                for block in clip:
                    stream.push(block)
                stream.flush()
    elif name == "torch (1 thread)":
        import torch

        from speechedge.models.frontend import TorchFrontend

        torch.set_num_threads(1)
        fe = TorchFrontend(config)
        x = torch.from_numpy(clips)
        with torch.inference_mode():
            fe(x[:1])
        first = time.perf_counter() - t0

        def run():
            with torch.inference_mode():
                fe(x)
    elif name == "librosa":
        import librosa

        def one(y):
            m = librosa.feature.melspectrogram(
                y=y, sr=16000, n_fft=config.n_fft, win_length=config.win_length, hop_length=config.hop_length,
                n_mels=config.n_mels, htk=True, norm=None, center=True, pad_mode="constant")
            return np.log(m + config.log_floor)

        one(clips[0])
        first = time.perf_counter() - t0

        def run():
            for y in clips:
                one(y)
    elif name == "pymicro-features 10ms":  # microWakeWord's streaming frontend (TFLM micro_frontend, its own config)
        from pymicro_features import MicroFrontend

        fe = MicroFrontend()
        pcm = [(np.clip(c, -1, 1) * 32767).astype(np.int16).reshape(-1, 160) for c in clips]
        blocks = [[b.tobytes() for b in c] for c in pcm]
        for b in blocks[0]:
            fe.process_samples(b)
        first = time.perf_counter() - t0

        def run():
            for clip in blocks:
                fe.reset()
                for b in clip:
                    fe.process_samples(b)
    else:
        raise ValueError(f"unknown implementation {name!r}")
    seconds = _best(run, repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"name": name, "ms_per_audio_s": 1000.0 * seconds / num_clips, "first_call_s": first, "peak_rss_mb": peak}


IMPLEMENTATIONS = ("numba batch", "numba stream 10ms", "numba stream 10ms, min_frames 10", "numba stream 10ms, min_frames 32",
                   "numba stream 100ms",
                   "torch (1 thread)", "librosa", "pymicro-features 10ms")


# peers measured where their package is installed (pip install pymicro-features)
PEER_MODULES = {"pymicro-features 10ms": "pymicro_features"}


def bench_frontend(num_clips: int = 100, repeats: int = 5, implementations=IMPLEMENTATIONS) -> list[FrontendBenchRow]:
    """Measure each implementation in its own single-threaded subprocess."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1")
    import importlib.util

    rows = []
    for name in implementations:
        if name in PEER_MODULES and importlib.util.find_spec(PEER_MODULES[name]) is None:
            continue  # a peer that is not installed here
        code = (f"import json; from speechedge.apps.bench import _measure_one; "
                f"print(json.dumps(_measure_one({name!r}, {num_clips}, {repeats})))")
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark of {name} failed:\n{proc.stderr[-2000:]}")
        rows.append(FrontendBenchRow(**json.loads(proc.stdout.strip().splitlines()[-1])))
    return rows


def format_table(rows: list[FrontendBenchRow], num_clips: int) -> str:
    by_name = {r.name: r for r in rows}
    lines = [
        f"log-mel frontend, {num_clips} one-second 16 kHz clips, 40 mels, single thread (best of repeats)",
        "| implementation | ms per audio s | real-time factor | speed vs librosa | speed vs torch | first call s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        vs = lambda ref: f"{by_name[ref].ms_per_audio_s / r.ms_per_audio_s:.2f}x" if ref in by_name else "-"  # noqa: E731
        lines.append(f"| {r.name} | {r.ms_per_audio_s:.3f} | {r.rtf:.5f} | {vs('librosa')} | {vs('torch (1 thread)')} "
                     f"| {r.first_call_s:.2f} | {r.peak_rss_mb:.0f} |")
    ratios = [f"streaming ({name.removeprefix('numba stream ')} pushes) cost / batch cost per frame: "
              f"{by_name[name].ms_per_audio_s / by_name['numba batch'].ms_per_audio_s:.2f} (target <= 2)"
              for name in ("numba stream 10ms", "numba stream 10ms, min_frames 10", "numba stream 10ms, min_frames 32",
                           "numba stream 100ms")
              if name in by_name and "numba batch" in by_name]
    if ratios:
        lines += ["", *ratios]
    return "\n".join(lines)


def bench_libriword(corpus: str | None = None, hours: float = 1.0, workers=(1, 2), num_words: int = 100,
                    clips_per_word: int = 20) -> str:
    """Clip-cutting throughput of the LibriWord builder on a synthesized corpus, 1 vs 2 workers.

    Each run starts from an empty output folder; the scan/selection time is reported separately from
    the cutting time (clips per second counts the cutting, which is what the workers share).
    """
    import resource
    import tempfile
    from pathlib import Path

    from speechedge.data_prep.libriword import LibriWordConfig, build_libriword
    from speechedge.synth.corpora import synth_librispeech

    tmp = Path(tempfile.mkdtemp(prefix="speechedge-bench-"))
    if corpus is None:
        corpus = tmp / "LibriSpeech"
        synth_librispeech(corpus, hours=hours, num_speakers=20, seed=0, progress=False)
    corpus = Path(corpus)
    cfg = LibriWordConfig(num_words=num_words, clips_per_word=clips_per_word, min_word_seconds=0.1)
    rows = []
    for w in workers:
        stats = build_libriword(corpus, corpus / "alignments", tmp / f"out{w}", cfg, workers=w, progress=False)
        shard = json.loads((tmp / f"out{w}" / "stats.shard-0-of-1.json").read_text())
        rows.append((w, stats["clips"], shard["cut_wall_s"], shard["wall_s"] - shard["cut_wall_s"]))
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    base = rows[0][1] / rows[0][2]
    lines = [f"LibriWord clip cutting, {num_words} words x {clips_per_word} clips from {corpus}",
             "| workers | clips | cut s | clips/s | clips/s per worker | speed-up vs 1 worker | scan+select s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for w, n, cut_s, scan_s in rows:
        rate = n / cut_s
        lines.append(f"| {w} | {n} | {cut_s:.2f} | {rate:.0f} | {rate / w:.0f} | {rate / base:.2f}x | {scan_s:.2f} |")
    lines.append(f"\npeak RSS: main process {peak_self:.0f} MB, largest worker {peak_child:.0f} MB")
    return "\n".join(lines)


def bench_kws_data(batch: int = 100, repeats: int = 10, taus=(1.0, 8.0), threads: int = 2) -> str:
    """Data pipeline vs model cost per training batch on the CPU (the model should dominate).

    Data, two ways: "basic" (time shift + background noise) and "realistic" (every stage of
    :class:`speechedge.training.augment.Augmenter` on: speed, shift, simulated rooms, babble, noise incl.
    synthetic music/hum, microphone colouring, gain), each followed by the torch log-mel and SpecAugment.
    Model: BC-ResNet forward + backward + SGD step. Median of ``repeats`` batches of ``batch`` one-second clips.
    """
    import torch

    from speechedge.features import FrontendConfig
    from speechedge.models.bcresnet import BCResNet
    from speechedge.models.frontend import TorchFrontend
    from speechedge.training.augment import AugmentConfig, Augmenter, spec_augment

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(batch * 4, 16000, generator=g) * 0.1
    noise = torch.randn(16000 * 30, generator=g) * 0.05
    pipelines = {
        "basic": Augmenter(AugmentConfig(shift_ms=100, noise_prob=0.8), 16000, noise),
        "realistic": Augmenter(AugmentConfig(shift_ms=100, noise_prob=0.8, synthetic_noise=True, reverb_prob=0.5,
                                             babble_prob=0.3, colour_prob=0.5, gain_prob=0.5, speed_prob=0.5,
                                             num_rooms=50), 16000, noise),
    }
    fe = TorchFrontend(FrontendConfig.kws())  # the KWS preset, as in bench_frontend

    def timed(fn):
        times = []
        for i in range(repeats + 2):
            t0 = time.perf_counter()
            fn(i)
            times.append(time.perf_counter() - t0)
        return float(np.median(times[2:]))

    def data_step(aug):
        def step(i):
            x = aug(audio[(i % 4) * batch : (i % 4 + 1) * batch])
            with torch.no_grad():
                return spec_augment(fe(x), g)
        return step

    t_data = {name: timed(data_step(aug)) for name, aug in pipelines.items()}
    feats = data_step(pipelines["basic"])(0)
    labels = torch.randint(0, 12, (batch,), generator=g)
    lines = [f"KWS training batch of {batch} one-second clips, {threads} torch threads (median of {repeats})",
             "| model | model fwd+bwd+step ms | basic data ms | share | realistic data ms | share |",
             "|---|---:|---:|---:|---:|---:|"]
    for tau in taus:
        model = BCResNet(tau, 12)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def model_step(i):
            loss = torch.nn.functional.cross_entropy(model(feats.unsqueeze(1)), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()

        t_model = timed(model_step)
        b, r = t_data["basic"], t_data["realistic"]
        lines.append(f"| BC-ResNet-{tau:g} | {1000 * t_model:.1f} | {1000 * b:.1f} | {b / (b + t_model):.0%} | "
                     f"{1000 * r:.1f} | {r / (r + t_model):.0%} |")
    return "\n".join(lines)
