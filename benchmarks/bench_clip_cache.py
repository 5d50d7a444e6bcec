"""KWS clip loading at scale: build time, batch throughput and memory of the memory-mapped clip cache against
decoding everything into memory, at 10k and 100k clips.

    python benchmarks/bench_clip_cache.py [--work work/clip_cache] [--sizes 10000 100000] [--in-memory-max 10000]

The manifests point at 1,000 distinct one-second WAV clips, cycled (the loader decodes and caches every row,
so the cache holds N rows; the operating system's file cache makes decoding cheaper than on a real corpus of
N files). Each size runs in a fresh process so peak RSS is its own: ``build`` decodes into the cache file,
``train-like`` memory-maps it and draws 200 random batches of 100 clips (as the episodic and supervised
samplers do). RSS counts resident mapped file pages too: shared page cache the kernel drops under pressure
(right after a build the whole file is cached and the kernel maps cached neighbours of every touched page,
so RSS approaches the file size); ``anonymous`` is the memory a process really holds (RssAnon).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _mem() -> dict:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmHWM", "RssAnon", "VmRSS"):
            out[k] = int(v.split()[0]) / 1024  # MB
    return out


def _child(manifest: str, mode: str) -> dict:
    from speechedge.training.kws_data import load_manifest_clips

    t0 = time.perf_counter()
    clips = load_manifest_clips(manifest, cache=mode != "in-memory")
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    n = 0
    for _ in range(200):
        x = clips.batch(rng.integers(0, len(clips), 100))
        n += len(x)
    batch_s = time.perf_counter() - t0
    m = _mem()
    return {"clips": len(clips), "load_s": round(load_s, 2), "batch_clips_per_s": round(n / batch_s),
            "peak_rss_mb": round(m["VmHWM"]), "anon_mb": round(m["RssAnon"])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("work/clip_cache"))
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--in-memory-max", type=int, default=10_000, help="largest size also run without the cache")
    p.add_argument("--child", nargs=2, metavar=("MANIFEST", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0
    from speechedge.audio import write_audio

    work = args.work.resolve()
    clips_dir = work / "clips"
    if not (clips_dir / "0999.wav").exists():
        rng = np.random.default_rng(0)
        for i in range(1000):
            write_audio(clips_dir / f"{i:04d}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    env = {**os.environ, "SPEECHEDGE_CACHE": str(work / "cache")}
    rows = []
    for n in args.sizes:
        man = work / f"manifest_{n}.jsonl"
        if not man.exists():
            with man.open("w") as f:
                for i in range(n):
                    f.write(json.dumps({"id": f"w{i % 50}/c{i:06d}", "word": f"w{i % 50}", "speaker": f"s{i % 300}",
                                        "path": str(clips_dir / f"{i % 1000:04d}.wav"), "split": "train",
                                        "label": f"w{i % 50}"}) + "\n")
        modes = ["build", "train-like"] + (["in-memory"] if n <= args.in_memory_max else [])
        for old in (work / "cache").glob(f"{man.stem}-*"):  # "build" really builds
            old.unlink()
        for mode in modes:
            out = subprocess.run([sys.executable, __file__, "--child", str(man), mode], env=env, check=True,
                                 capture_output=True, text=True).stdout
            r = {"size": n, "mode": mode, **json.loads(out.strip().splitlines()[-1])}
            rows.append(r)
            print(r, file=sys.stderr)
    print("| clips | mode | load s | batches: clips/s | peak RSS MB | anonymous MB |\n|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['size']:,} | {r['mode']} | {r['load_s']} | {r['batch_clips_per_s']:,} | {r['peak_rss_mb']} | "
              f"{r['anon_mb']} |")
    (work / "result.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
