"""Several ASR models on several test sets: one CER / WER table, and paired differences with 95% intervals.

    python benchmarks/asr_table.py DIR [--chunk-ms 320] [--pair A,B ...] [--json OUT]

``DIR`` holds ``speechedge eval asr --json`` results named ``{model}_{testset}.json`` (model and test-set
names without ``_`` in the test-set part). Each cell is the model's CER / WER on that set, at ``--chunk-ms``
for streaming models and at full context for models evaluated only there (teachers). ``--by-engine TEST=SPEAKERS.TXT`` adds a column per
engine of that set's speakers. ``--pair A,B`` adds,
per test set both were evaluated on, B's CER minus A's with a 95% paired bootstrap interval over the test
speakers (:func:`speechedge.ctc.paired_bootstrap`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load(folder: Path, chunk: str) -> dict[tuple[str, str], dict]:
    """``{(model, test set): eval row}``: the row at ``chunk``, else the full-context row."""
    out = {}
    for f in sorted(folder.glob("*_*.json")):
        model, test = f.stem.rsplit("_", 1)
        try:
            rows = {str(r["chunk_ms"]): r for r in json.loads(f.read_text())}
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"{f}: not a `speechedge eval asr --json` result ({e})")
        row = rows.get(chunk) or rows.get("full")
        if row is not None:
            out[(model, test)] = row
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--chunk-ms", default="320")
    p.add_argument("--pair", action="append", default=[], help="A,B: B - A per test set")
    p.add_argument("--tests", default=None, help="comma-separated test sets in column order (default: sorted)")
    p.add_argument("--by-engine", action="append", default=[], metavar="TEST=SPEAKERS.TXT",
                   help="also split test set TEST by the engine of each speaker (the corpus's SPEAKERS.TXT)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    from speechedge.ctc import paired_bootstrap

    rows = load(args.folder, args.chunk_ms)
    if not rows:
        raise SystemExit(f"{args.folder}: no {{model}}_{{testset}}.json results")
    for item in args.by_engine:  # "picohibari" -> "picohibari:pico", "picohibari:hibari"
        test, speakers = item.split("=", 1)
        engine_of = {}
        for line in Path(speakers).read_text().splitlines():
            sid, _, voice = (x.strip() for x in line.split("|")[:3])
            name = voice.split()[0].split("=", 1)[1]
            engine_of[sid] = name.split(":")[0] if ":" in name else "espeak"
        for (m, t), r in list(rows.items()):
            if t != test:
                continue
            for engine in sorted(set(engine_of.values())):
                utts = [u for u in r["utterances"] if engine_of.get(u["id"].split("-")[0]) == engine]
                if utts:
                    rows[(m, f"{t}:{engine}")] = {
                        "chunk_ms": r["chunk_ms"], "utterances": utts,
                        "cer": 100 * sum(u["char_errors"] for u in utts) / max(1, sum(u["chars"] for u in utts)),
                        "wer": 100 * sum(u["word_errors"] for u in utts) / max(1, sum(u["words"] for u in utts))}
    models = sorted({m for m, _ in rows})
    tests = args.tests.split(",") if args.tests else sorted({t for _, t in rows})
    print("| model | " + " | ".join(f"{t} CER / WER %" for t in tests) + " |")
    print("|---|" + "---:|" * len(tests))
    for m in models:
        cells = []
        for t in tests:
            r = rows.get((m, t))
            cells.append(f"{r['cer']:.2f} / {r['wer']:.1f} ({r['chunk_ms']})" if r else "")
        print(f"| {m} | " + " | ".join(cells) + " |")
    diffs = []
    for pair in args.pair:
        a, b = pair.split(",")
        print(f"\n{b} - {a}, CER (95% interval over test speakers):")
        for t in tests:
            if (a, t) in rows and (b, t) in rows:
                r = paired_bootstrap(rows[(a, t)]["utterances"], rows[(b, t)]["utterances"], "char")
                diffs.append({"a": a, "b": b, "test": t, **r})
                print(f"  {t}: {r['a']:.2f} -> {r['b']:.2f}, {r['diff']:+.2f} [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}]")
    if args.json:
        table = [{"model": m, "test": t, "chunk_ms": r["chunk_ms"], "cer": r["cer"], "wer": r["wer"]}
                 for (m, t), r in sorted(rows.items())]
        args.json.write_text(json.dumps({"table": table, "pairs": diffs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
