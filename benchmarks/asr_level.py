"""Streaming transcription when the microphone is quieter than the training speech: CER / WER of an exported
streaming ASR model in the torch-free runtime per input level, without and with its input level normalization
(``level.json``, :class:`speechedge.features.InputLevel`).

    python benchmarks/asr_level.py EXPORT_DIR MANIFEST [--limit 20] [--json OUT]

``MANIFEST``: LibriSpeech-layout utterances (e.g. a quickstart's ``manifests/librispeech_test-clean.jsonl.gz``);
each level scales the audio before the frontend, pushed in 100 ms blocks as from a microphone, then flushed.
References are normalized by the character tokenizer (the quickstart's models).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from speechedge.audio import read_audio
from speechedge.ctc import CharTokenizer, ErrorCounts
from speechedge.features import InputLevel
from speechedge.manifest import UtteranceRecord, read_manifest
from speechedge.runtime import StreamingASR

LEVELS_DB = (0, -10, -20, -30, -40)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export", type=Path)
    p.add_argument("manifest", type=Path)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if not (args.export / "level.json").exists():
        raise SystemExit(f"{args.export}: no level.json (an export from before 2026-12-06); re-run `speechedge export`")
    tok = CharTokenizer()
    rows = list(read_manifest(args.manifest, UtteranceRecord))[: args.limit]
    audio = [read_audio(r.path, sample_rate=16000)[0] for r in rows]
    refs = [tok.decode(tok.encode(r.transcript)) for r in rows]
    asr = StreamingASR(args.export)
    level = InputLevel.load(args.export / "level.json")
    out = {"export": str(args.export), "utterances": len(rows), "level": level.to_dict(), "cer_wer": {}}
    print(f"{len(rows)} utterances, {sum(len(a) for a in audio) / 16000 / 60:.1f} min; level {level}\n")
    print("| input level | CER / WER, raw | CER / WER, normalized |\n|---|---:|---:|")
    for db in LEVELS_DB:
        cells = {}
        for name, lv in (("raw", None), ("normalized", level)):
            asr.level = lv
            counts = ErrorCounts()
            for a, ref in zip(audio, refs):
                asr.reset()
                x = np.clip(a * 10 ** (db / 20), -1, 1).astype(np.float32)
                for i in range(0, len(x), 1600):
                    asr.push(x[i: i + 1600])
                counts.add(ref, asr.flush())
            cells[name] = [round(counts.cer, 2), round(counts.wer, 2)]
        out["cer_wer"][str(db)] = cells
        print(f"| {db} dB | " + " | ".join(f"{c:.1f} / {w:.1f}" for c, w in cells.values()) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
