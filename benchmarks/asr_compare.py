"""Two ASR models on the same test utterances: the CER (or WER) difference with a 95% paired bootstrap interval.

    python benchmarks/asr_compare.py A.json B.json [--chunk-ms 320] [--unit char|word] [--by speaker|utterance]

``A.json`` / ``B.json`` are ``speechedge eval asr --json`` outputs of the two models on the same manifest (they
carry every utterance's error counts). Prints one row per chunk size both evaluated: A's and B's rate, B - A and
its interval (the test speakers resampled 10,000 times: one voice's errors go together; ``--by utterance``
resamples utterances, a narrower and less honest interval). One training seed per model: the interval is over
test speakers, not over training runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--chunk-ms", nargs="*", default=None, help="chunk sizes to compare (default: all in both)")
    p.add_argument("--unit", choices=("char", "word"), default="char")
    p.add_argument("--by", choices=("speaker", "utterance"), default="speaker")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    from speechedge.ctc import paired_bootstrap

    rows = {}
    for path in (args.a, args.b):
        try:
            data = json.loads(path.read_text())
            rows[path] = {str(r["chunk_ms"]): r for r in data}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"{path}: not a `speechedge eval asr --json` result ({e})")
        if any("utterances" not in r for r in data):
            raise SystemExit(f"{path}: no per-utterance results; re-run `speechedge eval asr --json` with this version")
    chunks = [c for c in rows[args.a] if c in rows[args.b] and (args.chunk_ms is None or c in args.chunk_ms)]
    if not chunks:
        raise SystemExit("the two results share no chunk size")
    metric = "CER" if args.unit == "char" else "WER"
    print(f"A = {args.a}\nB = {args.b}\n| chunk | A {metric} % | B {metric} % | B - A | 95% CI (bootstrap by {args.by}) | "
          f"P(B not better) |\n|---|---:|---:|---:|---|---:|")
    out = []
    for c in chunks:
        r = paired_bootstrap(rows[args.a][c]["utterances"], rows[args.b][c]["utterances"], args.unit, by=args.by)
        out.append({"chunk_ms": c, **r})
        print(f"| {c}{'' if c == 'full' else ' ms'} | {r['a']:.2f} | {r['b']:.2f} | {r['diff']:+.2f} | "
              f"[{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}] | {r['p_b_not_better']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
