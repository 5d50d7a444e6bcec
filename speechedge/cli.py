"""The ``speechedge`` command: thin verbs over importable functions.

    speechedge synth librispeech --out DIR [--hours H] [--speakers N] [--seed S]
    speechedge synth speech-commands --out DIR [--words W ...] [--per-word N] [--seed S]
    speechedge bench frontend [--clips N] [--repeats R]
    speechedge quickstart [--work DIR]

Verbs that later milestones fill in (prepare, train, eval, export, demo) say so and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__

NOT_BUILT = 2


def _not_built(verb: str):
    def run(args: argparse.Namespace) -> int:
        print(f"speechedge {verb}: not built yet in this version ({__version__}); "
              "see the project's issues for its status", file=sys.stderr)
        return NOT_BUILT

    return run


def _synth_librispeech(args: argparse.Namespace) -> int:
    from .synth.corpora import synth_librispeech

    report = synth_librispeech(args.out, hours=args.hours, num_speakers=args.speakers, seed=args.seed,
                               progress=not args.quiet)
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def _synth_speech_commands(args: argparse.Namespace) -> int:
    from .synth.corpora import SPEECH_COMMANDS_V2_WORDS, synth_speech_commands

    report = synth_speech_commands(args.out, words=args.words or SPEECH_COMMANDS_V2_WORDS, per_word=args.per_word,
                                   num_speakers=args.speakers, seed=args.seed, progress=not args.quiet)
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def _bench_frontend(args: argparse.Namespace) -> int:
    from .bench import bench_frontend, format_table

    rows = bench_frontend(num_clips=args.clips, repeats=args.repeats)
    print(format_table(rows, args.clips))
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from .quickstart import run_quickstart

    return run_quickstart(Path(args.work), seed=args.seed, progress=not args.quiet)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechedge", description="Streaming ASR and few-shot keyword spotting for small devices.")
    p.add_argument("--version", action="version", version=f"speechedge {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    synth = verbs.add_parser("synth", help="synthesize corpora in the real layouts with espeak-ng")
    synth_kinds = synth.add_subparsers(dest="kind", metavar="CORPUS", required=True)
    ls = synth_kinds.add_parser("librispeech", help="LibriSpeech tree + MFA-format word alignments")
    ls.add_argument("--out", required=True, type=Path, help="output folder (created)")
    ls.add_argument("--hours", type=float, default=0.05, help="audio to synthesize in hours (default 0.05)")
    ls.add_argument("--speakers", type=int, default=12, help="number of synthetic speakers, >= 3 (default 12)")
    ls.add_argument("--seed", type=int, default=0)
    ls.add_argument("--quiet", action="store_true", help="no progress bar")
    ls.set_defaults(func=_synth_librispeech)
    sc = synth_kinds.add_parser("speech-commands", help="Speech Commands v2 tree (1 s clips, lists, noise)")
    sc.add_argument("--out", required=True, type=Path, help="output folder (created)")
    sc.add_argument("--words", nargs="+", help="words to synthesize (default: the 35 v2 words)")
    sc.add_argument("--per-word", type=int, default=20, help="clips per word (default 20)")
    sc.add_argument("--speakers", type=int, default=None, help="number of speakers (default: --per-word)")
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--quiet", action="store_true", help="no progress bar")
    sc.set_defaults(func=_synth_speech_commands)

    bench = verbs.add_parser("bench", help="benchmarks that print tables with ratios against references")
    bench_kinds = bench.add_subparsers(dest="kind", metavar="WHAT", required=True)
    bf = bench_kinds.add_parser("frontend", help="log-mel: Numba batch / streaming vs torch vs librosa")
    bf.add_argument("--clips", type=int, default=100, help="one-second clips per run (default 100)")
    bf.add_argument("--repeats", type=int, default=5, help="runs per implementation; the best counts (default 5)")
    bf.set_defaults(func=_bench_frontend)

    qs = verbs.add_parser("quickstart", help="run the whole pipeline offline on synthesized data")
    qs.add_argument("--work", default="work/quickstart", help="work folder (default work/quickstart)")
    qs.add_argument("--seed", type=int, default=0)
    qs.add_argument("--quiet", action="store_true", help="no progress bars")
    qs.set_defaults(func=_quickstart)

    for verb, text in (("prepare", "build manifests and keyword datasets from corpora"),
                       ("train", "train a recipe"), ("eval", "evaluate an experiment"),
                       ("export", "export TFLite models"), ("demo", "live microphone demos")):
        v = verbs.add_parser(verb, help=f"{text} (not built yet)", description=f"{text}: not built yet.")
        v.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        v.set_defaults(func=_not_built(verb))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:  # bad input: one clear line, no traceback
        print(f"speechedge {args.verb}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
