"""ASR data loading at scale: building the utterance store, batch throughput and memory against decoding every
utterance into memory, at 1 h and 10 h of synthesized speech.

    python benchmarks/bench_asr_data.py [--work work/asr_data] [--hours 10] [--steps 300]

A LibriSpeech-layout corpus is synthesized once under ``WORK/LibriSpeech`` (``--hours`` of espeak-ng speech,
200 voices; skipped when present) and its three splits are listed in one manifest (``all``) and in a 1 h
prefix of it. Each row runs in a fresh process so that peak RSS is its own:

- ``build``: decode the manifest into the utterance store (worker processes, one per core);
- ``mapped, N workers``: memory-map the store, then draw ``--steps`` training batches (20,000 padded frames,
  the tiny configs' budget) through :class:`~speechedge.training.asr_data.BatchStream` built in the process
  (0 workers) or ahead by worker processes;
- ``in memory``: ``load_utterances(cache=False)``, the loader before the store, then the same batches.

Utterances/s counts utterances delivered in batches; padding is the share of padded frames in them. RSS
counts the mapped file pages the process touched (page cache the kernel shares and drops under pressure);
``anonymous`` (RssAnon) is what the process itself holds. Worker processes' memory is not included.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _mem() -> dict:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmHWM", "RssAnon"):
            out[k] = int(v.split()[0]) / 1024  # MB
    return out


def _child(manifest: str, mode: str, steps: int) -> dict:
    import torch

    from speechedge.ctc import CharTokenizer
    from speechedge.training.asr_data import BatchStream, TrainBatches, build_utterance_store, load_utterances

    torch.set_num_threads(1)
    tok = CharTokenizer()
    t0 = time.perf_counter()
    if mode == "build":
        store, ids, meta = build_utterance_store(manifest, progress=False)
        return {"utterances": len(ids), "hours": round(int(store.lengths().sum()) / 16000 / 3600, 2),
                "load_s": round(time.perf_counter() - t0, 1), "utts_per_s": round(len(ids) / (time.perf_counter() - t0)),
                "padding": None, "peak_rss_mb": round(_mem()["VmHWM"]), "anon_mb": round(_mem()["RssAnon"]),
                "skipped": len(meta["skipped"])}
    workers = int(mode.split(":")[1]) if mode.startswith("mapped") else 0
    data = load_utterances(manifest, tok, cache=mode.startswith("mapped"), max_duration_s=20.0)
    load_s = time.perf_counter() - t0
    stream = BatchStream(TrainBatches(data, tok, batch_frames=20000, seed=0), steps, workers=workers)
    stream.next_for(1)  # workers started, first batch ready
    t0 = time.perf_counter()
    utts = frames = padded = 0
    for s in range(2, steps + 1):
        x, n, _ = stream.next_for(s)
        utts += len(n)
        frames += int(n.sum()) // 160
        padded += x.shape[0] * x.shape[1] // 160
    dt = time.perf_counter() - t0
    m = _mem()
    return {"utterances": len(data), "hours": round(sum(len(a) for a in data.audio) / 16000 / 3600, 2),
            "load_s": round(load_s, 1), "utts_per_s": round(utts / dt), "padding": round(1 - frames / padded, 3),
            "peak_rss_mb": round(m["VmHWM"]), "anon_mb": round(m["RssAnon"])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("work/asr_data"))
    p.add_argument("--hours", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=300, help="training batches drawn per row")
    p.add_argument("--child", nargs=3, metavar=("MANIFEST", "MODE", "STEPS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], int(args.child[2]))))
        return 0
    from speechedge.data_prep.librispeech import prepare_librispeech
    from speechedge.synth.corpora import synth_librispeech

    work = args.work.resolve()
    corpus = work / "LibriSpeech"
    if not (corpus / "synth_report.json").exists() and not any(corpus.glob("test-clean/*")):
        synth_librispeech(corpus, hours=args.hours, num_speakers=200, seed=3)
    man_dir = work / "manifests"
    if not (man_dir / "all.jsonl.gz").exists():
        prepare_librispeech(corpus, man_dir)
        rows = [line for split in ("train-clean-100", "dev-clean", "test-clean")
                for line in gzip.open(man_dir / f"librispeech_{split}.jsonl.gz", "rt")]
        with gzip.open(man_dir / "all.jsonl.gz", "wt") as f:
            f.writelines(rows)
        hour, total = [], 0.0
        for line in rows:
            if total >= 3600:
                break
            hour.append(line)
            total += json.loads(line)["duration_s"]
        with gzip.open(man_dir / "1h.jsonl.gz", "wt") as f:
            f.writelines(hour)
    env = {**os.environ, "SPEECHEDGE_CACHE": str(work / "cache")}
    results = []
    for name in ("1h", "all"):
        man = man_dir / f"{name}.jsonl.gz"
        for old in (work / "cache").glob(f"{name}-*"):  # "build" really builds
            old.unlink()
        for mode in ("build", "mapped:0", "mapped:2", "in-memory"):
            out = subprocess.run([sys.executable, __file__, "--child", str(man), mode, str(args.steps)], env=env,
                                 check=True, capture_output=True, text=True).stdout
            r = {"manifest": name, "mode": mode, **json.loads(out.strip().splitlines()[-1])}
            results.append(r)
            print(r, file=sys.stderr)
    label = {"build": f"build the store ({min(8, os.cpu_count() or 1)} worker processes)", "mapped:0": "memory-mapped, batches in the process",
             "mapped:2": "memory-mapped, 2 worker processes", "in-memory": "decoded into memory (before)"}
    print("| audio | utterances | mode | load s | utterances/s | padding | peak RSS MB | anonymous MB |\n"
          "|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        pad = f"{100 * r['padding']:.1f}%" if r["padding"] is not None else ""
        print(f"| {r['hours']} h | {r['utterances']:,} | {label[r['mode']]} | {r['load_s']} | {r['utts_per_s']:,} | "
              f"{pad} | {r['peak_rss_mb']:,} | {r['anon_mb']:,} |")
    (work / "result.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
