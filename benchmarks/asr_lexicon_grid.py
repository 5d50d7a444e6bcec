"""The lexicon decoder's two weights on a dev set: CER / WER of greedy decoding and of every (lm_weight, word_score).

    python benchmarks/asr_lexicon_grid.py EXPORT_DIR DEV_MANIFEST [--words FILE] [--lm-weights 0,0.25,0.5,0.75,1]
        [--word-scores -1,0,1] [--json OUT]

The exported step model runs once per utterance (100 ms pushes, as ``benchmarks/asr_runtime_eval.py``); its
log-probabilities are then decoded with each setting. Choose the defaults of
:class:`speechedge.runtime.lexicon.LexiconCTC` on a dev set and report on the test sets.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from speechedge.audio import read_audio
from speechedge.ctc import CharTokenizer, ErrorCounts
from speechedge.io import atomic_write_text
from speechedge.manifest import UtteranceRecord, read_manifest
from speechedge.runtime import StreamingASR
from speechedge.runtime.lexicon import WORD_LIST_NAMES, LexiconCTC, find_word_list, read_word_list


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export", type=Path)
    p.add_argument("manifest", type=Path)
    p.add_argument("--words", type=Path, default=None, help="word list (default: the folder's words.txt.gz)")
    p.add_argument("--lm-weights", type=_floats, default=_floats("0,0.25,0.5,0.75,1"))
    p.add_argument("--word-scores", type=_floats, default=_floats("-1,0,1"))
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    asr = StreamingASR(args.export, decoder="greedy", keep_log_probs=True)
    found = args.words or find_word_list(args.export)
    if found is None:
        raise SystemExit(f"{args.export}: no {' or '.join(WORD_LIST_NAMES)}; give --words FILE (`speechedge prepare "
                         "words`)")
    words = read_word_list(found, asr.tokens)
    tok = CharTokenizer(asr.tokens)
    sr = asr.frontend_config.sample_rate
    refs, greedy, lps = [], ErrorCounts(), []
    rows = [r for r in read_manifest(args.manifest, UtteranceRecord) if tok.normalize(r.transcript)][: args.limit]
    for r in rows:
        a = read_audio(r.path, sample_rate=sr)[0].astype(np.float32)
        refs.append(tok.normalize(r.transcript))
        greedy.add(refs[-1], asr.transcribe(a, sr // 10))
        lps.append(np.concatenate(asr.log_probs))
    table = [{"decoder": "greedy", "cer": greedy.cer, "wer": greedy.wer}]
    for lw in args.lm_weights:
        for ws in args.word_scores:
            dec, counts = LexiconCTC(asr.tokens, words, lm_weight=lw, word_score=ws), ErrorCounts()
            for ref, lp in zip(refs, lps):
                counts.add(ref, dec.decode(lp))
            table.append({"decoder": "lexicon", "lm_weight": lw, "word_score": ws, "cer": counts.cer,
                          "wer": counts.wer})
    print(f"{args.export} on {args.manifest} ({len(rows)} utterances, {len(words)} words)")
    print("| decoder | lm_weight | word_score | CER | WER |\n|---|---:|---:|---:|---:|")
    for t in table:
        print(f"| {t['decoder']} | {t.get('lm_weight', '')} | {t.get('word_score', '')} | {t['cer']:.2f} | "
              f"{t['wer']:.2f} |")
    if args.json:
        atomic_write_text(args.json, json.dumps({"manifest": str(args.manifest), "words": len(words),
                                                 "utterances": len(rows), "table": table}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
