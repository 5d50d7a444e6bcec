"""An exported streaming ASR model as a user runs it: CER / WER of the torch-free runtime on a test set.

    python benchmarks/asr_runtime_eval.py EXPORT_DIR MANIFEST [--precision auto] [--limit N] [--json OUT]

Each utterance is pushed in 100 ms blocks as from a microphone (the export's input level normalization on, as in
``speechedge demo asr``), then flushed; greedy CTC as the runtime decodes. ``--json`` writes one row in the format
of ``speechedge eval asr --json`` (``chunk_ms``, ``cer``, ``wer`` and every utterance's errors), so
``benchmarks/asr_table.py`` puts the exported model beside the torch evaluations (name the file
``{model}_{testset}.json``) and pairs it with them. References are normalized by the model's token table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from speechedge.audio import read_audio
from speechedge.ctc import CharTokenizer, ErrorCounts
from speechedge.io import atomic_write_text
from speechedge.manifest import UtteranceRecord, read_manifest
from speechedge.runtime import StreamingASR


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export", type=Path)
    p.add_argument("manifest", type=Path)
    p.add_argument("--precision", default="auto", help="which model_PRECISION.tflite (default: the runtime's choice)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    asr = StreamingASR(args.export, precision=args.precision)
    if any(len(t) > 1 for t in asr.tokens[2:]):
        raise SystemExit(f"{args.export}: a subword model; this script normalizes references as characters")
    tok = CharTokenizer(asr.tokens)
    sr = asr.frontend_config.sample_rate
    rows = [r for r in read_manifest(args.manifest, UtteranceRecord) if tok.normalize(r.transcript)][: args.limit]
    counts, utts, audio_s = ErrorCounts(), [], 0.0
    t0 = time.perf_counter()
    for r in rows:
        a = read_audio(r.path, sample_rate=sr)[0].astype(np.float32)
        audio_s += len(a) / sr
        asr.reset()
        for i in range(0, len(a), sr // 10):  # 100 ms blocks, as from a microphone
            asr.push(a[i: i + sr // 10])
        hyp, ref = asr.flush(), tok.normalize(r.transcript)
        one = ErrorCounts()
        one.add(ref, hyp)
        counts += one
        utts.append({"id": r.id, "ref": ref, "hyp": hyp, "word_errors": one.word_err, "words": one.words,
                     "char_errors": one.char_err, "chars": one.chars})
    wall = time.perf_counter() - t0
    row = {"chunk_ms": asr.meta["chunk_ms"], "left_chunks": asr.meta["left_chunks"], "precision": asr.precision, "model": asr.net.path.name,
           "cer": counts.cer, "wer": counts.wer, "words": counts.words, "audio_s": round(audio_s, 1),
           "real_time_factor": round(wall / max(audio_s, 1e-9), 5), "utterances": utts}
    print(f"{args.export} ({asr.net.path.name}) on {args.manifest}: {len(rows)} utterances, {audio_s / 60:.1f} min: "
          f"CER {counts.cer:.2f} / WER {counts.wer:.2f}, real-time factor {row['real_time_factor']} "
          "(frontend + model + decoding, one thread)")
    if args.json:
        atomic_write_text(args.json, json.dumps([row], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
