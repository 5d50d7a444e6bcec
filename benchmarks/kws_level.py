"""Few-shot keyword spotting when the microphone is quieter than the training clips: 5-way 5-shot accuracy per
input level, without and with the runtime's input level normalization (``InputLevel``, a model's ``level.json``).

    python benchmarks/kws_level.py WORK [--models speechedge/pretrained/kws_fewshot,speechedge/pretrained/kws_mcu]
        [--write] [--json OUT]

``WORK/calibration``: the 15 splitGSC training words x 40 clips (espeak-ng, hibari, Pico speakers; seed 600), whose
10th percentile of peak frame energy is the target level. ``WORK/test``: the 10 held-out commands x 60 clips
(other speakers of the same engines; seed 610). ``--write`` writes ``level.json`` (that target, 40 dB of gain at
most, a streaming host's 2-second window) into every model folder given. Each level (0 to -40 dB) scales the test clips before the frontend; the
table has the enrolment at the same level (one microphone for both) and at 0 dB (enrolled close, used far), 400
episodes each (the same episodes for every cell), 95% confidence intervals.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from speechedge.audio import read_audio
from speechedge.data_prep.speech_commands import SPLIT_GSC
from speechedge.features import LEVEL_WINDOW_S, InputLevel
from speechedge.kernels.frontend import log_mel
from speechedge.runtime import KWSModel
from speechedge.synth.corpora import synth_speech_commands

LEVELS_DB = (0, -10, -20, -30, -40)
ENGINES = ("espeak", "hibari", "pico")


def _corpus(folder: Path, words, per_word: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    if not (folder / "synth_report.json").exists():
        synth_speech_commands(folder, words=words, per_word=per_word, seed=seed, noise_seconds=1.0, engines=ENGINES,
                              progress=False)
    clips, labels = [], []
    for i, w in enumerate(words):
        for f in sorted((folder / w).glob("*.wav")):
            clips.append(read_audio(f, sample_rate=16000)[0])
            labels.append(i)
    return clips, np.array(labels)


def target_db(model: KWSModel, clips: list[np.ndarray], quantile: float = 0.1) -> float:
    """The ``quantile`` of the clips' peak frame energy (dB): the level normalization's target."""
    return InputLevel.peak_db((log_mel(model.fit_length(c), model.frontend) for c in clips), model.frontend.log_floor,
                              quantile)


def episodes(support: np.ndarray, query: np.ndarray, labels: np.ndarray, n: int = 400, seed: int = 0
             ) -> tuple[float, float]:
    """5-way 5-shot nearest-prototype accuracy (mean, 95% CI half-width) over ``n`` episodes."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    acc = []
    for _ in range(n):
        protos, q, ql = [], [], []
        for j, c in enumerate(rng.choice(classes, 5, replace=False)):
            idx = rng.permutation(np.flatnonzero(labels == c))
            protos.append(support[idx[:5]].mean(0))
            q.append(query[idx[5:10]])
            ql += [j] * len(idx[5:10])
        pred = ((np.vstack(q)[:, None] - np.stack(protos)[None]) ** 2).sum(-1).argmin(1)
        acc.append(float((pred == np.array(ql)).mean()))
    return float(np.mean(acc)), float(1.96 * np.std(acc) / np.sqrt(n))


def conditions(m: KWSModel, clips: list[np.ndarray], labels: np.ndarray, clean: np.ndarray) -> dict:
    """5-way 5-shot accuracy under other microphone faults, enrolled clean and enrolled under the same fault."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000

    def noise(c, snr_db):
        return c + rng.normal(0, np.sqrt((c ** 2).mean() / 10 ** (snr_db / 10)), len(c))

    faults = {"DC offset 0.01": lambda c: c + 0.01, "DC offset 0.1": lambda c: c + 0.1,
              "50 Hz hum, amplitude 0.02": lambda c: c + 0.02 * np.sin(2 * np.pi * 50 * t[: len(c)]),
              "white noise, 10 dB SNR": lambda c: noise(c, 10), "white noise, 0 dB SNR": lambda c: noise(c, 0),
              "+20 dB, clipped": lambda c: c * 10}
    print("\n| condition | enrolled clean | enrolled the same way |\n|---|---:|---:|")
    out = {}
    for name, f in faults.items():
        e = np.stack([m.embed(np.clip(f(c), -1, 1).astype(np.float32)) for c in clips])
        out[name] = {"enrolled_clean": episodes(clean, e, labels), "enrolled_same": episodes(e, e, labels)}
        print(f"| {name} | " + " | ".join(f"{a:.3f} +-{ci:.3f}" for a, ci in out[name].values()) + " |")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work", type=Path)
    p.add_argument("--models", default="speechedge/pretrained/kws_fewshot,speechedge/pretrained/kws_mcu")
    p.add_argument("--write", action="store_true", help="write level.json into the model folders")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--conditions", action="store_true",
                   help="also: DC offset, 50 Hz hum, white noise, clipping (other faults of real microphones)")
    args = p.parse_args(argv)
    cal_clips, _ = _corpus(args.work / "calibration", SPLIT_GSC["train"], 40, 600)
    test_clips, labels = _corpus(args.work / "test", SPLIT_GSC["test"], 60, 610)
    out = {"levels_db": list(LEVELS_DB), "test_clips": len(test_clips), "models": {}}
    print(f"{len(cal_clips)} calibration clips, {len(test_clips)} test clips of {len(SPLIT_GSC['test'])} held-out words")
    for folder in map(Path, args.models.split(",")):
        m = KWSModel(folder, keywords_file=args.work / "unused_keywords.json")
        target = target_db(m, cal_clips)
        level = InputLevel(round(target, 2), window_s=LEVEL_WINDOW_S)
        if args.write:
            level.save(folder / "level.json")
        print(f"\n{folder.name} ({m.precision}): target level {target:.2f} dB (10th percentile of the calibration clips' "
              f"peak frame energy){'; written to ' + str(folder / 'level.json') if args.write else ''}\n")
        print("| input level | raw, enrolled at that level | raw, enrolled at 0 dB | normalized, enrolled at that level "
              "| normalized, enrolled at 0 dB |\n|---|---:|---:|---:|---:|")
        emb = {}
        for norm in (False, True):
            m.level = level if norm else None
            for db in LEVELS_DB:
                g = 10 ** (db / 20)
                emb[norm, db] = np.stack([m.embed(np.clip(c * g, -1, 1)) for c in test_clips])
        rows = {}
        for db in LEVELS_DB:
            cells = {f"{'normalized' if norm else 'raw'}_{'same' if same else 'enrolled_0db'}":
                     episodes(emb[norm, db] if same else emb[norm, 0], emb[norm, db], labels)
                     for norm in (False, True) for same in (True, False)}
            rows[str(db)] = cells
            print(f"| {db} dB | " + " | ".join(f"{a:.3f} +-{ci:.3f}" for a, ci in cells.values()) + " |")
        out["models"][folder.name] = {"target_db": target, "precision": m.precision, "accuracy": rows}
        if args.conditions:
            m.level = level
            out["models"][folder.name]["conditions"] = conditions(m, test_clips, labels, emb[True, 0])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
