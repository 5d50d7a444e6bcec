"""A LibriSpeech-layout copy of one split under recording conditions: rooms, noise, other talkers, microphones.

    python benchmarks/asr_degraded_test.py --corpus LibriSpeech --split test-clean --out DIR [--seed 777]

Synthesized speech is clean and close-talking; real recordings are not. This writes ``DIR/{split}`` (same
speakers, chapters, file names and transcripts; alignments copied, since every stage keeps the timing) with
each utterance passed through :class:`speechedge.training.augment.Augmenter` at test-time settings: a simulated
room with probability 0.7 (RT60 0.2-1.0 s), background noise always (synthetic music, hum, pink and brown
noise, 0-20 dB SNR, made from ``--seed``: other realisations than any training run's), another talker from
the same split with probability 0.3 (5-20 dB), microphone colouring and band-limiting with probability 0.5,
gain with probability 0.3. The rooms and noise come from ``--seed``, not from a training seed, so a model
trained with ``[augment]`` has not seen these impulse responses. Then ``speechedge prepare librispeech
--corpus DIR`` and ``speechedge eval asr --data`` as for any split.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, type=Path, help="LibriSpeech-layout folder")
    p.add_argument("--split", default="test-clean")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=777)
    args = p.parse_args(argv)
    from tqdm import tqdm

    from speechedge.audio import read_audio, write_audio
    from speechedge.training.augment import AugmentConfig, Augmenter

    src = args.corpus / args.split
    if not src.is_dir():
        raise SystemExit(f"{src}: no such split folder")
    cfg = AugmentConfig(shift_ms=0.0, reverb_prob=0.7, rt60_s=(0.2, 1.0), num_rooms=100, noise_prob=1.0,
                        snr_db=(0.0, 20.0), synthetic_noise=True, babble_prob=0.3, colour_prob=0.5,
                        gain_prob=0.3, gain_db=(-12.0, 6.0))
    aug = Augmenter(cfg, 16000, seed=args.seed)
    files = sorted(src.glob("*/*/*.flac"))
    if not files:
        raise SystemExit(f"{src}: no .flac files")
    rng = np.random.default_rng(args.seed)
    out = args.out / args.split
    for f in tqdm(files, desc=f"degrade {args.split}", unit="utt"):
        x, sr = read_audio(f, sample_rate=16000)
        # rows 1-3: other utterances, the talkers the Augmenter may roll onto row 0 (only row 0 is kept)
        rows = [x] + [read_audio(files[int(i)], sample_rate=16000)[0] for i in rng.integers(len(files), size=3)]
        n = len(x)
        batch = np.zeros((4, max(len(r) for r in rows)), np.float32)
        for i, r in enumerate(rows):
            batch[i, : len(r)] = r
        y = aug(torch.from_numpy(batch), torch.tensor([len(r) for r in rows]))[0, :n].numpy()
        target = out / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_audio(target, y, 16000)
    for t in sorted(src.glob("*/*/*.trans.txt")):
        shutil.copyfile(t, out / t.relative_to(src))
    align = args.corpus / "alignments" / args.split
    if align.is_dir():
        shutil.copytree(align, args.out / "alignments" / args.split, dirs_exist_ok=True)
    (args.out / "degrade.json").write_text(json.dumps({"source": str(src), "seed": args.seed,
                                                       "files": len(files), "augment": cfg.__dict__}, indent=1))
    print(f"wrote {len(files)} utterances to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
