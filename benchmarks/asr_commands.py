"""A streaming ASR export as a command recognizer: its lexicon decoder restricted to a folder's command words.

    python benchmarks/asr_commands.py EXPORT_DIR SPEECH_COMMANDS_DIR [--list testing_list.txt] [--json OUT]

Every clip of the list (Speech Commands layout: ``{word}/{file}.wav``, the words are the folders) is pushed in
100 ms blocks and flushed, as ``speechedge demo asr --words COMMANDS.txt`` would; the text must be the clip's
word exactly. Reports the accuracy with the word list of the folder's words (uniform weights), with the 20,000-word
English list (``speechedge prepare words``, the shipped default) and with greedy decoding, per engine where the
folder's ``voices.jsonl`` names them.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from speechedge.audio import read_audio
from speechedge.io import atomic_write_text
from speechedge.runtime import StreamingASR


def _engines(folder: Path) -> dict[str, str]:
    """speaker hash -> engine, from voices.jsonl (``speechedge synth speech-commands``) when present."""
    out = {}
    vf = folder / "voices.jsonl"
    if vf.exists():
        for line in vf.read_text().splitlines():
            v = json.loads(line)
            out[v["speaker"]] = v.get("engine", "espeak")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export", type=Path)
    p.add_argument("folder", type=Path)
    p.add_argument("--list", default="testing_list.txt", help="clip list in the folder (default testing_list.txt)")
    p.add_argument("--word-score", type=float, default=None, help="the command decoder's word score (default: the "
                   "decoder's)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    opts = {} if args.word_score is None else {"word_score": args.word_score}
    clips = [c for c in (args.folder / args.list).read_text().split() if c]
    commands = sorted({c.split("/")[0] for c in clips})
    engine_of = _engines(args.folder)
    with tempfile.TemporaryDirectory() as tmp:
        cmd_file = Path(tmp) / "commands.txt"
        cmd_file.write_text("\n".join(commands) + "\n")
        decoders = {"commands": StreamingASR(args.export, words=cmd_file, lexicon_options=opts),
                    "english": StreamingASR(args.export, decoder="lexicon"),
                    "greedy": StreamingASR(args.export, decoder="greedy")}
        right = {k: defaultdict(int) for k in decoders}
        total = defaultdict(int)
        confusions = defaultdict(int)
        for c in clips:
            word = c.split("/")[0]
            engine = engine_of.get(Path(c).name.split("_")[0], "all")
            a = read_audio(args.folder / c, sample_rate=16000)[0].astype(np.float32)
            total[engine] += 1
            for name, asr in decoders.items():
                text = asr.transcribe(a)
                right[name][engine] += text == word
                if name == "commands" and text != word:
                    confusions[f"{word} -> {text or '(nothing)'}"] += 1
    rows = {}
    print(f"{args.export} on {args.folder / args.list}: {len(clips)} clips, {len(commands)} command words")
    print("| decoder | " + " | ".join(f"{e} ({total[e]})" for e in sorted(total)) + " | all |")
    print("|---|" + "---:|" * (len(total) + 1))
    for name in decoders:
        acc = {e: right[name][e] / total[e] for e in sorted(total)}
        acc["all"] = sum(right[name].values()) / len(clips)
        rows[name] = acc
        print(f"| {name} | " + " | ".join(f"{acc[e]:.3f}" for e in [*sorted(total), "all"]) + " |")
    top = sorted(confusions.items(), key=lambda kv: -kv[1])[:10]
    print("most frequent errors with the command list: " + ", ".join(f"{k} ({v})" for k, v in top))
    if args.json:
        atomic_write_text(args.json, json.dumps({"clips": len(clips), "commands": commands, "accuracy": rows,
                                                 "errors": dict(top)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
