"""Embeddings of a labelled word corpus (many words x many voices) through an exported few-shot model: the data a
within-class (voice) normalisation of the embedding space is estimated from.

    python benchmarks/kws_within_class.py MODEL_DIR WORK [--per-word 48] [--engines espeak,hibari] [--stream]

Synthesizes ``WORK/words`` (Speech Commands layout: the 25 splitGSC training and validation words and 25 other
words, none of them a test keyword of the few-shot evaluation or of the long-form / development streams, each
said by ``--per-word`` voices of ``--engines``; SVOX Pico is left out so that it stays an unseen engine), embeds
every clip with the window model (or the streaming model, ``--stream``) and writes
``WORK/embeddings[_stream].npz`` (``embeddings (N, D)``, ``labels (N,)`` word names, ``speakers (N,)``).
``benchmarks/kws_detector.py --within-class WORK/embeddings.npz`` then scores the whitened rules on streams.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from speechedge.audio import read_audio
from speechedge.data_prep.speech_commands import SPLIT_GSC
from speechedge.runtime import KWSModel
from speechedge.synth.corpora import synth_speech_commands

EXTRA_WORDS = ("animal", "computer", "banana", "elephant", "tomorrow", "telephone", "umbrella", "kitchen",
               "window", "garden", "yellow", "morning", "music", "paper", "river", "water", "family", "holiday",
               "chocolate", "potato", "camera", "library", "hospital", "dinosaur", "basketball")
HELD_OUT = {"pineapple", "jupiter", "lemonade", "november", *SPLIT_GSC["test"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("work", type=Path)
    p.add_argument("--per-word", type=int, default=48)
    p.add_argument("--engines", default="espeak,hibari")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--stream", action="store_true")
    args = p.parse_args(argv)
    words = sorted({*SPLIT_GSC["train"], *SPLIT_GSC["val"], *EXTRA_WORDS})
    assert not HELD_OUT & set(words), HELD_OUT & set(words)
    corpus = args.work / "words"
    if not (corpus / "synth_report.json").exists():
        synth_speech_commands(corpus, words=words, per_word=args.per_word, seed=args.seed, noise_seconds=1.0,
                              engines=tuple(args.engines.split(",")))
    model = KWSModel(args.model_dir, mode="stream" if args.stream else "window")
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]
    emb, labels, speakers = [], [], []
    for i, r in enumerate(rows):
        path = corpus / r["path"]
        emb.append(model.embed(read_audio(path, sample_rate=16000)[0]))
        labels.append(r["word"])
        speakers.append(r["speaker"])
        if i % 500 == 0:
            print(f"  {i}/{len(rows)}", file=sys.stderr)
    out = args.work / f"embeddings{'_stream' if args.stream else ''}.npz"
    np.savez(out, embeddings=np.stack(emb).astype(np.float32), labels=np.array(labels), speakers=np.array(speakers))
    print(f"{out}: {len(emb)} embeddings of {len(set(labels))} words by {len(set(speakers))} voices")
    return 0


if __name__ == "__main__":
    sys.exit(main())
