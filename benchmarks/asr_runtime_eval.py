"""An exported streaming ASR model as a user runs it: CER / WER of the torch-free runtime on a test set.

    python benchmarks/asr_runtime_eval.py EXPORT_DIR MANIFEST [--precision auto] [--limit N] [--json OUT]
        [--decoder auto|greedy|lexicon] [--words FILE] [--lm-weight W] [--word-score S] [--oov FRACTION]

Each utterance is pushed in 100 ms blocks as from a microphone (the export's input level normalization on, as in
``speechedge demo asr``), then flushed; decoded as the runtime does (the lexicon decoder where the folder has a word list, ``--decoder``
to choose). ``--oov F`` measures the lexicon's price: a fraction F of the test set's word types outside the list's
1,000 most frequent (drawn with a fixed seed) is removed from the word list, so those words cannot be output (as names and rare words of real
speech cannot). ``--json`` writes one row in the format
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
from speechedge.runtime.lexicon import LexiconCTC, WordList


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export", type=Path)
    p.add_argument("manifest", type=Path)
    p.add_argument("--precision", default="auto", help="which model_PRECISION.tflite (default: the runtime's choice)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--decoder", choices=("auto", "greedy", "lexicon"), default="auto")
    p.add_argument("--words", type=Path, default=None, help="word list (default: the folder's)")
    p.add_argument("--lm-weight", type=float, default=None)
    p.add_argument("--word-score", type=float, default=None)
    p.add_argument("--oov", type=float, default=0.0, help="fraction of the test set's word types left out of the list")
    args = p.parse_args(argv)
    opts = {k: v for k, v in (("lm_weight", args.lm_weight), ("word_score", args.word_score)) if v is not None}
    asr = StreamingASR(args.export, precision=args.precision, decoder=args.decoder, words=args.words,
                       lexicon_options=opts)
    if any(len(t) > 1 for t in asr.tokens[2:]):
        raise SystemExit(f"{args.export}: a subword model; this script normalizes references as characters")
    tok = CharTokenizer(asr.tokens)
    sr = asr.frontend_config.sample_rate
    rows = [r for r in read_manifest(args.manifest, UtteranceRecord) if tok.normalize(r.transcript)][: args.limit]
    oov = set()
    if args.oov:
        if asr.lexicon is None:
            raise SystemExit("--oov needs the lexicon decoder")
        listed, common = set(asr.word_list.words), set(asr.word_list.words[:1000])  # OOV words are rare, not "the"
        types = sorted(({w for r in rows for w in tok.normalize(r.transcript).split()} & listed) - common)
        oov = set(np.random.default_rng(0).choice(types, size=round(args.oov * len(types)), replace=False).tolist())
        wl = asr.word_list
        keep = [i for i, w in enumerate(wl.words) if w not in oov]
        asr.word_list = WordList([wl.words[i] for i in keep], wl.log_probs[keep] - np.logaddexp.reduce(wl.log_probs[keep]))
        asr.lexicon = LexiconCTC(asr.tokens, asr.word_list, **opts)
        asr.reset()
    counts, utts, audio_s = ErrorCounts(), [], 0.0
    t0 = time.perf_counter()
    for r in rows:
        a = read_audio(r.path, sample_rate=sr)[0].astype(np.float32)
        audio_s += len(a) / sr
        hyp, ref = asr.transcribe(a, sr // 10), tok.normalize(r.transcript)  # 100 ms blocks, as from a microphone
        one = ErrorCounts()
        one.add(ref, hyp)
        counts += one
        utts.append({"id": r.id, "ref": ref, "hyp": hyp, "word_errors": one.word_err, "words": one.words,
                     "char_errors": one.char_err, "chars": one.chars})
    wall = time.perf_counter() - t0
    ref_words = [w for u in utts for w in u["ref"].split()]
    listed = set(asr.word_list.words) if asr.lexicon is not None else set()
    row = {"chunk_ms": asr.meta["chunk_ms"], "left_chunks": asr.meta["left_chunks"], "precision": asr.precision, "model": asr.net.path.name,
           "decoder": asr.decoder_name, "words_in_list": len(asr.word_list) if asr.lexicon is not None else None,
           "lexicon_options": opts, "oov_types": len(oov),
           # the reference words the decoder cannot output (removed by --oov, or never in the list)
           "oov_token_rate": round(sum(w not in listed for w in ref_words) / max(1, len(ref_words)), 4)
           if asr.lexicon is not None else None,
           "cer": counts.cer, "wer": counts.wer, "words": counts.words, "audio_s": round(audio_s, 1),
           "real_time_factor": round(wall / max(audio_s, 1e-9), 5), "utterances": utts}
    note = f", {row['oov_token_rate']:.1%} of the words out of the list" if asr.lexicon is not None else ""
    print(f"{args.export} ({asr.net.path.name}, {asr.decoder_name}{note}) on {args.manifest}: "
          f"{len(rows)} utterances, {audio_s / 60:.1f} min: "
          f"CER {counts.cer:.2f} / WER {counts.wer:.2f}, real-time factor {row['real_time_factor']} "
          "(frontend + model + decoding, one thread)")
    if args.json:
        atomic_write_text(args.json, json.dumps([row], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
