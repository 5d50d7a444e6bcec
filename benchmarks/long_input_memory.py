"""Peak memory of `eval asr`, `demo asr --input` and `demo kws --input` on 1- and 10-minute inputs.

    python benchmarks/long_input_memory.py --asr-exp EXP --asr-export DIR [--minutes 1 10] [--kws-model DIR]

Builds one long utterance per length by looping the 16 kHz FLAC files of a LibriSpeech-layout corpus
(``--corpus``: a split folder such as ``LibriSpeech/test-clean``), writes it as
a FLAC file and a one-utterance LibriSpeech-layout corpus with its manifest, and runs each command in its
own process, reading that process's peak resident memory from the kernel (``wait4``). Prints a table of
peak RSS per length and the ratio of the longest to the shortest: flat memory means a ratio near 1.

``--asr-exp``: a trained ASR experiment (``eval asr`` runs the masked full-sequence forward at every chunk
size given by ``--chunk-ms``). ``--asr-export``: its exported folder (``demo asr`` streams through the step
model). ``--kws-model``: an exported KWS folder (default: the shipped pretrained model), enrolled from three
clips of the long file before detection.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

EXE = str(Path(sys.executable).with_name("speechedge"))


def peak_rss_mb(args: list[str]) -> tuple[float, float, int, str]:
    """Run ``speechedge ARGS`` in its own process: ``(peak RSS MB, wall s, exit code, stderr tail)``."""
    t0 = time.perf_counter()
    p = subprocess.Popen([EXE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, time.perf_counter() - t0, p.returncode, err[-400:]


def long_corpus(sources: list[Path], minutes: float, root: Path) -> tuple[Path, Path]:
    """A LibriSpeech-layout corpus with one ``minutes``-long utterance looped from ``sources``, and its
    test-clean manifest: ``(flac, manifest)``."""
    from speechedge.data_prep.librispeech import prepare_librispeech

    need = int(minutes * 60 * 16000)
    pieces, texts, have = [], [], 0
    while have < need:
        for src in sources:
            a, sr = sf.read(src, dtype="int16")
            assert sr == 16000, f"{src}: {sr} Hz, expected 16 kHz"
            pieces.append(a)
            have += len(a)
            trans = next(src.parent.glob("*.trans.txt")).read_text().splitlines()
            texts.append(next(line.split(" ", 1)[1] for line in trans if line.startswith(src.stem + " ")))
            if have >= need:
                break
    chapter = root / "LibriSpeech" / "test-clean" / "1" / "1"
    chapter.mkdir(parents=True, exist_ok=True)
    flac = chapter / "1-1-0000.flac"
    sf.write(flac, np.concatenate(pieces)[:need], 16000)
    (chapter / "1-1.trans.txt").write_text(f"1-1-0000 {' '.join(texts)}\n")
    prepare_librispeech(root / "LibriSpeech", root / "manifests", splits=["test-clean"])
    return flac, root / "manifests" / "librispeech_test-clean.jsonl.gz"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--asr-exp", required=True)
    p.add_argument("--asr-export", required=True)
    p.add_argument("--corpus", required=True, help="LibriSpeech-layout split folder whose FLAC files are looped")
    p.add_argument("--kws-model", default=None, help="exported KWS folder (default: the shipped model)")
    p.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    p.add_argument("--chunk-ms", nargs="+", default=["full", "320"])
    p.add_argument("--json", default=None)
    args = p.parse_args()

    sources = sorted(Path(args.corpus).glob("*/*/*.flac"))[:40]
    if not sources:
        raise SystemExit(f"--corpus {args.corpus}: no */*/*.flac files")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            root = Path(tmp) / f"{minutes:g}min"
            flac, manifest = long_corpus(sources, minutes, root)
            kws = ["--model", args.kws_model] if args.kws_model else []
            cmds = {
                "eval asr": ["eval", "asr", "--exp-dir", args.asr_exp, "--data", str(manifest),
                             "--chunk-ms", *args.chunk_ms],
                "demo asr --input": ["demo", "asr", "--model", args.asr_export, "--input", str(flac), "--json"],
                "demo kws --input": ["demo", "kws", *kws, "--keywords", str(root / "kw.json"), "--enroll",
                                     *map(str, sources[:3]), "--name", "probe", "--input", str(flac), "--json"],
            }
            for name, cmd in cmds.items():
                mb, wall, rc, err = peak_rss_mb(cmd)
                if rc != 0:
                    raise SystemExit(f"{name} on {minutes:g} min failed (exit {rc}): {err}")
                rows.append({"command": name, "minutes": minutes, "peak_rss_mb": round(mb, 1), "wall_s": round(wall, 1)})
                print(f"{name:<18} {minutes:5g} min  peak RSS {mb:8.1f} MB  {wall:6.1f} s", flush=True)
    lo, hi = min(args.minutes), max(args.minutes)
    print(f"\n| command | {' | '.join(f'{m:g} min' for m in args.minutes)} | {hi:g} min / {lo:g} min |")
    print("|---|" + "---|" * (len(args.minutes) + 1))
    for name in dict.fromkeys(r["command"] for r in rows):
        by = {r["minutes"]: r["peak_rss_mb"] for r in rows if r["command"] == name}
        print(f"| {name} | " + " | ".join(f"{by[m]:.0f} MB" for m in args.minutes) + f" | {by[hi] / by[lo]:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
