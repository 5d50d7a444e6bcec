"""The ``speechedge`` command: thin verbs over importable functions.

    speechedge synth librispeech --out DIR [--hours H] [--speakers N] [--seed S]
    speechedge synth speech-commands --out DIR [--words W ...] [--per-word N] [--seed S]
    speechedge prepare librispeech --corpus DIR --out DIR [--splits ...]
    speechedge prepare libriword --librispeech DIR --alignments DIR --out DIR [options]
    speechedge prepare speech-commands --corpus DIR --out DIR
    speechedge prepare words --out FILE [--size N] [--add FILE ...]
    speechedge bench frontend [--clips N] [--repeats R]
    speechedge quickstart [--work DIR]

Verbs that later milestones fill in (train, eval, export, demo) say so and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from speechedge import __version__

STREAM_HELP = ("run the few-shot model's streaming step model (stream_fp32.tflite: each 10 ms frame computed once, "
               "2-3x less CPU, decisions 0.58 s later) instead of re-running the 1-second window every 100 ms")


def _peak_margin(value: str) -> float:
    if value.strip().lower() == "off":
        return math.inf
    try:
        m = float(value)
    except ValueError:
        m = math.nan
    if not m >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'off', got {value!r}")
    return m


def _demo_kws(args: argparse.Namespace) -> int:
    from speechedge.demos.kws import run_kws

    return run_kws(args.model, enroll=args.enroll, enroll_mic=args.enroll_mic, name=args.name, input_spec=args.input,
                   threshold=args.threshold, agree=args.agree, peak_margin=args.peak_margin, realtime=args.realtime,
                   as_json=args.json,
                   device=args.device, max_seconds=args.max_seconds, precision=args.precision,
                   keywords_file=args.keywords, mode="stream" if args.stream else "window",
                   enroll_text=args.enroll_text, say=args.say, enroll_far_field=args.enroll_far_field)


def _demo_asr(args: argparse.Namespace) -> int:
    from speechedge.demos.asr import run_asr

    return run_asr(args.model, input_spec=args.input, realtime=args.realtime, device=args.device,
                   max_seconds=args.max_seconds, precision=args.precision, as_json=args.json,
                   decoder=args.decoder, words=args.words)


def _eval_kws_stream(args: argparse.Namespace) -> int:
    from speechedge.apps.longform import evaluate_cli

    return evaluate_cli(args.model, positives=args.positives, negatives=args.negatives, synth_dir=args.synth_dir,
                        json_path=args.json, png_path=args.det_png, precision=args.precision, seed=args.seed,
                        keywords_file=args.keywords, negative_hours=args.negative_hours,
                        mode="stream" if args.stream else "window")


def _synth_librispeech(args: argparse.Namespace) -> int:
    from speechedge.synth.corpora import synth_librispeech

    report = synth_librispeech(args.out, hours=args.hours, num_speakers=args.speakers, seed=args.seed,
                               progress=not args.quiet, engines=args.engines.split(","),
                               held_out_engines=[e for e in args.held_out_engines.split(",") if e])
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def _synth_speech_commands(args: argparse.Namespace) -> int:
    from speechedge.synth.corpora import SPEECH_COMMANDS_V2_WORDS, synth_speech_commands

    report = synth_speech_commands(args.out, words=args.words or SPEECH_COMMANDS_V2_WORDS, per_word=args.per_word,
                                   num_speakers=args.speakers, seed=args.seed, engines=args.engines.split(","),
                                   held_out_engines=[e for e in args.held_out_engines.split(",") if e],
                                   progress=not args.quiet)
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def _prepare_librispeech(args: argparse.Namespace) -> int:
    from speechedge.data_prep.librispeech import prepare_librispeech

    stats = prepare_librispeech(args.corpus, args.out, args.splits)
    print(json.dumps(stats, indent=2))
    return 0


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like I/N (for example 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= I < N")
    return i, n


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text == "on"


def _prepare_libriword(args: argparse.Namespace) -> int:
    from speechedge.data_prep.libriword import LibriWordConfig, build_libriword

    cfg = LibriWordConfig(
        splits=tuple(args.splits) if args.splits else None, num_words=args.num_words,
        clips_per_word=args.clips_per_word, clip_seconds=args.clip_seconds, min_word_seconds=args.min_word_seconds,
        max_word_seconds=args.max_word_seconds, min_chars=args.min_chars, merge_forms=args.merge_forms,
        stop_words=args.stop_words, max_clips_per_speaker=args.max_clips_per_speaker,
        val_fraction=args.val_fraction, seed=args.seed)
    stats = build_libriword(args.librispeech, args.alignments, args.out, cfg, workers=args.workers,
                            shard=args.shard, progress=not args.quiet)
    print(json.dumps({k: v for k, v in stats.items() if k not in ("config", "bad_source_files")}, indent=2))
    return 0


def _prepare_libriword_merge(args: argparse.Namespace) -> int:
    from speechedge.data_prep.libriword import merge_shards

    stats = merge_shards(args.out)
    print(json.dumps({k: v for k, v in stats.items() if k != "config"}, indent=2))
    return 0


def _prepare_words(args: argparse.Namespace) -> int:
    from speechedge.data_prep.words import write_word_list

    print(json.dumps(write_word_list(args.out, args.size, args.add or ()), indent=2))
    return 0


def _prepare_speech_commands(args: argparse.Namespace) -> int:
    from speechedge.data_prep.speech_commands import prepare_speech_commands

    print(json.dumps(prepare_speech_commands(args.corpus, args.out), indent=2))
    return 0


def _bench_frontend(args: argparse.Namespace) -> int:
    from speechedge.apps.bench import bench_frontend, format_table

    rows = bench_frontend(num_clips=args.clips, repeats=args.repeats)
    print(format_table(rows, args.clips))
    return 0


def _bench_libriword(args: argparse.Namespace) -> int:
    from speechedge.apps.bench import bench_libriword

    print(bench_libriword(args.corpus, hours=args.hours))
    return 0


def _train_kws_fewshot(args: argparse.Namespace) -> int:
    from speechedge.recipes.kws_fewshot import main as fewshot_main

    return fewshot_main(args.config, args.exp_dir, args.set)


def _train_kws(args: argparse.Namespace) -> int:
    from speechedge.recipes.kws import main as kws_main

    return kws_main(args.config, args.exp_dir, args.set)


def _train_asr(args: argparse.Namespace) -> int:
    from speechedge.recipes.asr import main

    return main(args.config, args.exp_dir, args.set)


def _eval_asr(args: argparse.Namespace) -> int:
    from speechedge.recipes.asr import evaluate_cli

    return evaluate_cli(args.exp_dir, args.data, args.chunk_ms, beam=args.beam, json_path=args.json,
                        alignments=args.alignments, left_chunks=args.left_chunks)


def _align(args: argparse.Namespace) -> int:
    from speechedge.apps.align import align_corpus

    stats = align_corpus(args.exp_dir, args.librispeech, args.out, splits=args.splits,
                         reference=args.reference, progress=not args.quiet)
    print(json.dumps(stats, indent=2))
    return 0 if stats["aligned"] else 1


def _eval_kws_fewshot(args: argparse.Namespace) -> int:
    from speechedge.recipes.kws_fewshot import evaluate_cli

    if args.exp_dir is not None and (args.model is not None or args.precision is not None):
        raise SystemExit("eval kws-fewshot: --exp-dir (a training experiment) or --model (an exported folder), "
                         "not both; --precision goes with --model")
    return evaluate_cli(args.exp_dir, args.data, model=args.model, precision=args.precision or "fp32",
                        ways=args.ways, shots=tuple(int(s) for s in args.shots.split(",")), queries=args.queries,
                        episodes=args.episodes, seed=args.seed, json_path=args.json, roc_png=args.roc_png)


def _bench_kws_data(args: argparse.Namespace) -> int:
    from speechedge.apps.bench import bench_kws_data

    print(bench_kws_data(batch=args.batch))
    return 0


def _export(args: argparse.Namespace) -> int:
    from speechedge.export import ExportError
    from speechedge.export.asr import export_asr
    from speechedge.export.kws import export_kws

    config = Path(args.exp_dir) / "config.json"
    if not config.exists():
        raise FileNotFoundError(f"{config}: missing; --exp-dir must be a trained experiment folder")
    try:
        if json.loads(config.read_text()).get("recipe") == "ASRConfig":
            if args.target == "mcu" or args.fallback_phone:
                raise ValueError("--target mcu (and --fallback-phone) is for KWS models; a streaming ASR encoder "
                                 "targets phones")
            report = export_asr(args.exp_dir, args.out, int8=args.int8, int16x8=args.int16x8,
                                dynamic_int8=args.dynamic_int8,
                                held_out=args.held_out, calibration=args.calibration, invokes=args.invokes,
                                int8_ranges=args.int8_ranges or "average", int8_weights=args.int8_weights or "channel")
        else:
            if args.int16x8 or args.dynamic_int8:
                raise ValueError(f"--{'int16x8' if args.int16x8 else 'dynamic-int8'} is for the streaming ASR step "
                                 "model; a KWS model exports int8 (--int8)")
            report = export_kws(args.exp_dir, args.out, int8=args.int8, calibration=args.calibration,
                                target=args.target, held_out=args.held_out, invokes=args.invokes,
                                flash_kb=args.flash_kb, ram_kb=args.ram_kb, mcu_model=args.mcu_model,
                                fallback_phone=args.fallback_phone, background_manifest=args.background_manifest,
                                stream_chunk_ms=args.stream_chunk_ms,
                                int8_ranges=args.int8_ranges or "mse", int8_weights=args.int8_weights or "tensor")
    except ExportError as e:
        print(f"speechedge export: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from speechedge.apps.quickstart import check_asr_engines, run_quickstart, run_quickstart_asr

    for name in ("asr_steps", "kws_steps", "kws_clips", "asr_hours", "kws_hours"):
        if not getattr(args, name) > 0:
            print(f"speechedge quickstart: --{name.replace('_', '-')} must be positive, got {getattr(args, name)}",
                  file=sys.stderr)
            return 2
    if args.pipeline == "asr":
        try:
            engines = check_asr_engines(e for e in args.asr_engines.split(",") if e)
        except ValueError as e:
            print(f"speechedge quickstart: --asr-engines: {e}", file=sys.stderr)
            return 2
        return run_quickstart_asr(Path(args.work or "work/quickstart_asr"), seed=args.seed, progress=not args.quiet,
                                  steps=args.asr_steps, hours=args.asr_hours, engines=engines)
    return run_quickstart(Path(args.work or "work/quickstart"), seed=args.seed, progress=not args.quiet,
                          steps=args.kws_steps, clips=args.kws_clips, hours=args.kws_hours)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechedge", description="Streaming ASR and few-shot keyword spotting for small devices.")
    p.add_argument("--version", action="version", version=f"speechedge {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    synth = verbs.add_parser("synth", help="synthesize corpora in the real layouts with espeak-ng")
    synth_kinds = synth.add_subparsers(dest="kind", metavar="CORPUS", required=True)
    ls = synth_kinds.add_parser("librispeech", help="LibriSpeech tree + MFA-format word alignments (espeak's speakers)")
    ls.add_argument("--out", required=True, type=Path, help="output folder (created)")
    ls.add_argument("--hours", type=float, default=0.05, help="audio to synthesize in hours (default 0.05)")
    ls.add_argument("--speakers", type=int, default=12, help="number of synthetic speakers, >= 3 (default 12)")
    ls.add_argument("--engines", default="espeak",
                    help="comma-separated speech engines speakers are drawn from in turn: espeak, pico, hibari, "
                         "kokoro, flite (default espeak; only espeak's utterances get word alignments)")
    ls.add_argument("--held-out-engines", default="",
                    help="engines whose speakers all go to test-clean (an unseen synthesizer), e.g. kokoro")
    ls.add_argument("--seed", type=int, default=0)
    ls.add_argument("--quiet", action="store_true", help="no progress bar")
    ls.set_defaults(func=_synth_librispeech)
    sc = synth_kinds.add_parser("speech-commands", help="Speech Commands v2 tree (1 s clips, lists, noise)")
    sc.add_argument("--out", required=True, type=Path, help="output folder (created)")
    sc.add_argument("--words", nargs="+", help="words to synthesize (default: the 35 v2 words)")
    sc.add_argument("--per-word", type=int, default=20, help="clips per word (default 20)")
    sc.add_argument("--speakers", type=int, default=None, help="number of speakers (default: --per-word)")
    sc.add_argument("--engines", default="espeak",
                    help="comma-separated speech engines speakers are drawn from: espeak, pico, hibari, kokoro, "
                         "flite (apt-get install flite) (default espeak)")
    sc.add_argument("--held-out-engines", default="",
                    help="engines whose speakers all go to the test list (an unseen synthesizer), e.g. hibari")
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--quiet", action="store_true", help="no progress bar")
    sc.set_defaults(func=_synth_speech_commands)

    prep = verbs.add_parser("prepare", help="build manifests and keyword datasets from corpora")
    prep_kinds = prep.add_subparsers(dest="kind", metavar="DATASET", required=True)
    pl = prep_kinds.add_parser("librispeech", help="one utterance manifest per LibriSpeech split")
    pl.add_argument("--corpus", required=True, type=Path, help="folder holding dev-clean/, train-clean-100/, ...")
    pl.add_argument("--out", required=True, type=Path, help="output folder for librispeech_{split}.jsonl.gz")
    pl.add_argument("--splits", nargs="+", help="splits to prepare (default: all found)")
    pl.set_defaults(func=_prepare_librispeech)
    lw = prep_kinds.add_parser("libriword", help="keyword clips cut from LibriSpeech with word alignments")
    lw.add_argument("--librispeech", required=True, type=Path, help="LibriSpeech folder")
    lw.add_argument("--alignments", required=True, type=Path,
                    help="folder of *.alignment.txt (MFA text format) or {utt}.TextGrid files")
    lw.add_argument("--out", required=True, type=Path, help="output folder (clips/, manifest.jsonl, stats)")
    lw.add_argument("--splits", nargs="+", help="LibriSpeech splits to use (default: all found)")
    lw.add_argument("--num-words", type=int, default=1000, help="words to keep, most frequent first (default 1000)")
    lw.add_argument("--clips-per-word", type=int, default=300, help="clips per word (default 300)")
    lw.add_argument("--clip-seconds", type=float, default=1.0, help="clip length in seconds (default 1.0)")
    lw.add_argument("--min-word-seconds", type=float, default=0.2, help="shortest aligned word (default 0.2)")
    lw.add_argument("--max-word-seconds", type=float, default=None, help="longest aligned word (default: clip length)")
    lw.add_argument("--min-chars", type=int, default=3, help="shortest word in letters (default 3)")
    lw.add_argument("--merge-forms", type=_on_off, default=True, metavar="on|off",
                    help="merge plurals / past tenses into their base word (default on)")
    lw.add_argument("--stop-words", choices=("keep", "drop"), default="keep", help="default keep")
    lw.add_argument("--max-clips-per-speaker", type=int, default=10, help="per word and speaker (default 10)")
    lw.add_argument("--val-fraction", type=float, default=0.1, help="fraction of speakers for val (default 0.1)")
    lw.add_argument("--workers", type=int, default=None, help="processes cutting clips (default: cores)")
    lw.add_argument("--shard", type=_parse_shard, default=(0, 1), metavar="I/N",
                    help="cut only shard I of N (then run `prepare libriword-merge`)")
    lw.add_argument("--seed", type=int, default=0)
    lw.add_argument("--quiet", action="store_true", help="no progress bar")
    lw.set_defaults(func=_prepare_libriword)
    lm = prep_kinds.add_parser("libriword-merge", help="merge the shards of a sharded libriword run")
    lm.add_argument("--out", required=True, type=Path, help="the libriword output folder")
    lm.set_defaults(func=_prepare_libriword_merge)
    ps = prep_kinds.add_parser("speech-commands", help="GSC v2 35/12-class manifests and the splitGSC few-shot split")
    ps.add_argument("--corpus", required=True, type=Path, help="Speech Commands v2 folder")
    ps.add_argument("--out", required=True, type=Path, help="output folder for the manifests")
    ps.set_defaults(func=_prepare_speech_commands)
    pw = prep_kinds.add_parser("words", help="the word list of the streaming ASR lexicon decoder (words.txt)")
    pw.add_argument("--out", required=True, type=Path, help="the word list to write (word and weight per line)")
    pw.add_argument("--size", type=int, default=20000, help="most frequent English words (wordfreq; default 20000)")
    pw.add_argument("--add", nargs="+", type=Path, metavar="FILE",
                    help="word lists to add ('word [weight]' per line): names, commands, the words of your domain")
    pw.set_defaults(func=_prepare_words)

    bench = verbs.add_parser("bench", help="benchmarks that print tables with ratios against references")
    bench_kinds = bench.add_subparsers(dest="kind", metavar="WHAT", required=True)
    bf = bench_kinds.add_parser("frontend", help="log-mel: Numba batch / streaming vs torch vs librosa")
    bf.add_argument("--clips", type=int, default=100, help="one-second clips per run (default 100)")
    bf.add_argument("--repeats", type=int, default=5, help="runs per implementation; the best counts (default 5)")
    bf.set_defaults(func=_bench_frontend)
    bl = bench_kinds.add_parser("libriword", help="LibriWord clip cutting: clips/s with 1 and 2 workers")
    bl.add_argument("--corpus", default=None, help="LibriSpeech folder with alignments/ (default: synthesize one)")
    bl.add_argument("--hours", type=float, default=1.0, help="size of the synthesized corpus (default 1.0)")
    bl.set_defaults(func=_bench_libriword)
    bk = bench_kinds.add_parser("kws-data", help="KWS augmentation + frontend cost vs BC-ResNet training step")
    bk.add_argument("--batch", type=int, default=100)
    bk.set_defaults(func=_bench_kws_data)

    qs = verbs.add_parser("quickstart", help="run the whole pipeline offline on synthesized data")
    qs.add_argument("pipeline", nargs="?", choices=("kws", "asr"), default="kws",
                    help="kws (default): few-shot KWS end to end; asr: teacher, distilled streaming student, export")
    qs.add_argument("--work", default=None, help="work folder (default work/quickstart or work/quickstart_asr)")
    qs.add_argument("--seed", type=int, default=0)
    qs.add_argument("--asr-steps", type=int, default=600, help="asr: training steps per model (default 600)")
    qs.add_argument("--asr-hours", type=float, default=4.0,
                    help="asr: hours of speech to synthesize, 24 voices per hour (default 4)")
    qs.add_argument("--asr-engines", default="espeak,pico,hibari",
                    help="asr: speech engines the voices come from, in turn (default espeak,pico,hibari; espeak "
                         "must be among them: only its utterances have word alignments)")
    qs.add_argument("--kws-steps", type=int, default=2400, help="kws: training episodes (default 2400)")
    qs.add_argument("--kws-clips", type=int, default=60,
                    help="kws: Speech Commands clips per word, one speaker each (default 60)")
    qs.add_argument("--kws-hours", type=float, default=1.5,
                    help="kws: hours of read speech for the LibriWord words (default 1.5)")
    qs.add_argument("--quiet", action="store_true", help="no progress bars")
    qs.set_defaults(func=_quickstart)

    tr = verbs.add_parser("train", help="train a recipe")
    tr_kinds = tr.add_subparsers(dest="kind", metavar="RECIPE", required=True)
    for name, func, text, configs in (
            ("kws-fewshot", _train_kws_fewshot, "few-shot open-set KWS: BC-ResNet + (D-)ProtoNet (+ LibriWord AuxSL)",
             "kws_fewshot_*.toml"),
            ("kws", _train_kws, "supervised KWS: BC-ResNet on Speech Commands 12/35 classes", "kws_*.toml"),
            ("asr", _train_asr, "CTC Conformer: full-context teacher or streaming student (distill none/token/layer)",
             "asr_*.toml")):
        t = tr_kinds.add_parser(name, help=text)
        t.add_argument("--config", help=f"TOML config (recipes/configs/{configs}); fields not set keep defaults")
        t.add_argument("--exp-dir", required=True, help="experiment folder; an existing one is resumed")
        t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
        t.set_defaults(func=func)

    ev = verbs.add_parser("eval", help="evaluate an experiment")
    ev_kinds = ev.add_subparsers(dest="kind", metavar="RECIPE", required=True)
    ef = ev_kinds.add_parser("kws-fewshot", help="N-way K-shot accuracy and open-set AUROC with 95%% CIs")
    ef.add_argument("--exp-dir", help="trained experiment folder (its best checkpoint, torch)")
    ef.add_argument("--model", default=None,
                    help="instead of --exp-dir: an exported few-shot folder or a shipped model's name (kws_fewshot), "
                         "run as the runtime runs it; neither given: the shipped pretrained model")
    ef.add_argument("--precision", choices=("fp32", "int8"), default=None,
                    help="with --model: which TFLite window model (default fp32)")
    ef.add_argument("--data", required=True, help="ClipRecord manifest or any Speech Commands-layout folder of words")
    ef.add_argument("--ways", type=int, default=5)
    ef.add_argument("--shots", default="1,5", help="comma-separated shot counts (default 1,5)")
    ef.add_argument("--queries", type=int, default=15, help="queries per class (default 15)")
    ef.add_argument("--episodes", type=int, default=1000)
    ef.add_argument("--seed", type=int, default=0)
    ef.add_argument("--json", help="also write the results to this JSON file")
    ef.add_argument("--roc-png", help="ROC plot (default: beside --json, else roc_DATA.png in the experiment; "
                                      "with --model only beside --json)")
    ef.set_defaults(func=_eval_kws_fewshot)

    es = ev_kinds.add_parser("kws-stream", help="long-form detection: false rejects at 0.5/1/2 FA per hour, DET")
    es.add_argument("--model", default=None,
                    help="exported KWS folder (few-shot: with enrolled keywords) or a shipped model's name "
                         "(kws_fewshot, kws_mcu); default: the shipped pretrained model")
    es.add_argument("--keywords", default=None, metavar="FILE", help="enrolled keywords file (see demo kws)")
    es.add_argument("--negative-hours", type=float, default=2.0,
                    help="hours of synthesized negatives (speech by other voices 5/6, noise 1/12, music 1/12; "
                         "default 2, so that 0.5 false alarms per hour is resolvable)")
    es.add_argument("--positives", help="folder of recordings with keyword events in x.json beside x.wav "
                                        "(default: synthesize them with the model's keywords)")
    es.add_argument("--negatives", help="folder of long recordings without the keywords (default: synthesize)")
    es.add_argument("--synth-dir", default="work/kws_stream", help="where synthesized streams go (default work/kws_stream)")
    es.add_argument("--precision", choices=("auto", "fp32", "int8"), default="auto")
    es.add_argument("--stream", action="store_true", help=STREAM_HELP)
    es.add_argument("--json", help="write the full result (all DET points) to this JSON file")
    es.add_argument("--det-png", help="DET curve PNG (default: det.png in --synth-dir)")
    es.add_argument("--seed", type=int, default=0)
    es.set_defaults(func=_eval_kws_stream)

    ea = ev_kinds.add_parser("asr", help="WER/CER per chunk size (masked forward = chunk-by-chunk streaming)")
    ea.add_argument("--exp-dir", required=True, help="trained ASR experiment folder")
    ea.add_argument("--data", required=True, help="utterance manifest (librispeech_{split}.jsonl.gz)")
    ea.add_argument("--chunk-ms", nargs="+", default=["full"],
                    help="chunk sizes in ms (multiples of 40) and/or 'full' (default: full)")
    ea.add_argument("--left-chunks", type=int, default=None, metavar="N",
                    help="chunks of left context at the streaming chunk sizes (default: the model's own; -1: all)")
    ea.add_argument("--beam", type=int, default=0, help="prefix beam search width (default 0 = greedy)")
    ea.add_argument("--json", help="also write the rows to this JSON file")
    ea.add_argument("--alignments", help="word alignments (MFA text format) of the data: also measure streaming "
                                         "emission latency after each word's end")
    ea.set_defaults(func=_eval_asr)

    al = verbs.add_parser("align", help="CTC forced alignment of a LibriSpeech-layout corpus (MFA text format)")
    al.add_argument("--exp-dir", required=True, help="trained ASR experiment (a full-context teacher aligns best)")
    al.add_argument("--librispeech", required=True, type=Path, help="LibriSpeech folder (split/speaker/chapter)")
    al.add_argument("--out", required=True, type=Path,
                    help="alignments folder: {split}/{speaker}/{chapter}/{speaker}-{chapter}.alignment.txt")
    al.add_argument("--splits", nargs="+", help="splits to align (default: all found)")
    al.add_argument("--reference", type=Path,
                    help="alignments folder to measure word-boundary error against (e.g. a synthesized corpus's)")
    al.add_argument("--quiet", action="store_true", help="no progress bar")
    al.set_defaults(func=_align)

    ex = verbs.add_parser("export", help="export a trained KWS or streaming ASR experiment to TFLite, verified "
                                         "against PyTorch")
    ex.add_argument("--exp-dir", required=True, help="trained experiment folder (kws, kws-fewshot or a streaming asr)")
    ex.add_argument("--out", required=True, help="output folder (replaced only when every check passes)")
    ex.add_argument("--int8", action="store_true", help="also a full-integer int8 model (post-training quantization)")
    ex.add_argument("--int16x8", action="store_true",
                    help="also a 16x8 model (int8 weights, int16 activations; streaming ASR only): where int8 "
                         "activations cost more than 1 CER point")
    ex.add_argument("--dynamic-int8", action="store_true",
                    help="also a dynamic-range model (int8 weights, float activations; streaming ASR only): the "
                         "phone format, a quarter of the fp32 file")
    ex.add_argument("--calibration", help="manifest for int8/16x8 calibration (default: the training manifest)")
    ex.add_argument("--int8-ranges", choices=("mse", "average"), default=None,
                    help="int8 activation ranges: mse = least rounding + clipping error over all calibration "
                         "values (default for KWS); average = the quantizer's average of each input's min and max "
                         "(default for ASR, where it measured better)")
    ex.add_argument("--int8-weights", choices=("channel", "tensor"), default=None,
                    help="int8 weight scales: one per output channel, or one per tensor (a smaller file; default "
                         "for KWS models, where it keeps the decisions; ASR defaults to channel)")
    ex.add_argument("--held-out", help="manifest for the parity checks (default: the experiment's validation manifest)")
    ex.add_argument("--target", choices=("phone", "mcu"), default="phone",
                    help="mcu: int8 + C array + TFLite Micro op check + flash/arena budget (default phone)")
    ex.add_argument("--flash-kb", type=float, default=64.0, help="flash budget for --target mcu (default 64)")
    ex.add_argument("--ram-kb", type=float, default=64.0, help="tensor-arena budget for --target mcu (default 64)")
    ex.add_argument("--mcu-model", choices=("both", "stream"), default="both",
                    help="few-shot KWS with --target mcu: the int8 models the device runs, which must meet the "
                         "budgets: both (window and streaming step model, default) or stream (the step model; the "
                         "window model's figures are still reported)")
    ex.add_argument("--fallback-phone", action="store_true",
                    help="with --target mcu: where the int8 model fails its checks, write the phone (fp32) export "
                         "instead of nothing (report.json keeps the int8 figures under int8_refused)")
    ex.add_argument("--invokes", type=int, default=1000, help="invokes per latency measurement (default 1000)")
    ex.add_argument("--background-manifest", help="few-shot KWS: word clips for the detector's background set "
                    "(default: the experiment's LibriWord manifest)")
    ex.add_argument("--stream-chunk-ms", type=float, default=100.0,
                    help="few-shot KWS: also export the streaming step model, one decision per this many ms "
                         "(default 100; 0: none)")
    ex.set_defaults(func=_export)

    dm = verbs.add_parser("demo", help="live demos: keyword spotting and streaming transcription (torch-free)")
    dm_kinds = dm.add_subparsers(dest="kind", metavar="DEMO", required=True)
    dk = dm_kinds.add_parser("kws", help="live keyword detection with few-shot enrolment")
    dk.add_argument("--model", default=None,
                    help="exported KWS folder (speechedge export) or a shipped model's name: kws_fewshot (default), "
                         "kws_mcu (the microcontroller model)")
    dk.add_argument("--keywords", default=None, metavar="FILE",
                    help="enrolled keywords file (default: MODEL/keywords.json; for the shipped model a per-user "
                         "file, ~/.local/share/speechedge/keywords/NAME.json, e.g. kws_fewshot.json)")
    dk.add_argument("--enroll", nargs="+", metavar="WAV", help="enrol --name from these recordings (3-5 work well)")
    dk.add_argument("--enroll-mic", type=int, default=0, metavar="N", help="enrol --name from N microphone takes")
    dk.add_argument("--name", help="the keyword being enrolled")
    dk.add_argument("--enroll-text", action="store_true",
                    help="also enrol 24 renderings of the keyword by synthetic voices (espeak-ng, SVOX Pico, hibari: "
                         "the 'data' extra) with the recordings: finds the keyword in more voices unlike yours")
    dk.add_argument("--enroll-far-field", action="store_true",
                    help="also enrol each recording as heard across a room (3 simulated reverberation times): finds "
                         "the keyword said at a distance from the microphone after enrolling close to it")
    dk.add_argument("--say", default=None, metavar="TEXT",
                    help="with --enroll-text: how to write the keyword for the synthesizers (default: --name, "
                         "'_' as spaces)")
    dk.add_argument("--threshold", type=float, default=None,
                    help="smoothed score that fires (default: the model's own operating point in fewshot.json, "
                         "0.695 for the shipped model, window and --stream; a keyword enrolled with --enroll-text is "
                         "scored minus the model's text offset; else 0.8 for a few-shot model's calibrated score, "
                         "1 - distance/background distance, and 0.7 for a classifier's posterior)")
    dk.add_argument("--agree", type=int, default=None, metavar="N",
                    help="consecutive 100 ms windows that must agree before firing (default: the model's own, "
                         "else 4 few-shot, 1 classifier)")
    dk.add_argument("--peak-margin", type=_peak_margin, default=None, metavar="M",
                    help="the peak rule: one window scoring threshold + M fires without agreement (finds a keyword "
                         "followed by more speech, as a wake word with its command); default: the model's own "
                         "(shipped model: 0.17, 0.15 with --stream), 'off' for none")
    dk.add_argument("--stream", action="store_true", help=STREAM_HELP)
    dm_io = [dk]
    da = dm_kinds.add_parser("asr", help="live streaming transcription")
    da.add_argument("--model", default=None,
                    help="exported streaming ASR folder (speechedge export); default: the shipped asr_stream model")
    da.add_argument("--decoder", choices=("auto", "greedy", "lexicon"), default="auto",
                    help="greedy: the model's own spelling; lexicon: the best words of a word list (the folder's "
                         "words.txt or --words); auto (default): lexicon where there is a word list")
    da.add_argument("--words", type=Path, default=None,
                    help="word list for the lexicon decoder ('word [weight]' per line; `speechedge prepare words`)")
    dm_io.append(da)
    for d in dm_io:
        d.add_argument("--input", default="mic", help="'mic' (default), an audio file, or '-' for raw s16le 16 kHz stdin")
        d.add_argument("--realtime", action="store_true", help="play a file at real time (default: as fast as possible)")
        d.add_argument("--device", help="input device name or index (default: the system default)")
        d.add_argument("--max-seconds", type=float, help="stop after this much audio")
        d.add_argument("--precision", choices=("auto", "fp32", "int8") + (() if d is dk else ("int16x8", "dynamic_int8")),
                       default="auto",
                       help="which exported model to run (model_PRECISION.tflite; auto: "
                            + ("int8 where it exists, else fp32)" if d is dk else
                               "the first of fp32, dynamic_int8, int16x8, int8 the folder holds)"))
        d.add_argument("--json", action="store_true", help="one JSON object per line (detections / text updates)")
    dk.set_defaults(func=_demo_kws)
    da.set_defaults(func=_demo_asr)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # our own log at INFO; third-party libraries (the converters log every lowering at INFO) at WARNING
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("speechedge").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.func(args)
    # bad input, an unreadable or unwritable path, a locked experiment: one clear line, no traceback
    except (ValueError, OSError, EOFError) as e:
        print(f"speechedge {args.verb}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
