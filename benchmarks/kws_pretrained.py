"""Train the pretrained few-shot KWS model on voice-diverse synthesized data and measure it on unseen voices.

    python benchmarks/kws_pretrained.py [--work work/pretrained] [--voices 200] [--aux-words 500]
        [--aux-voices 100] [--steps 5000] [--threads 2] [--ship]

Every stage is resumable (a finished stage is reused, training resumes from its last checkpoint):

1. keyword corpus: the 35 Speech Commands words, one clip per word from each of ``--voices`` synthetic speakers
   drawn in turn from the ``--train-engines`` (default espeak-ng and hibari; ``kokoro`` adds Kokoro-82M voices,
   which helped held-out voices in ``benchmarks/kws_engine_ablation.py``) and the ``--held-out-engines``
   (default SVOX Pico); every speaker of a held-out engine is test only, the others split 80/10/10 by speaker;
2. auxiliary word corpus (LibriWord-style supervision): ``--aux-words`` frequent English words (4+ letters, not
   Speech Commands words), one clip each from ``--aux-voices`` speakers of the ``--aux-engines`` (default: the
   training engines);
3. splitGSC manifests, restricted to the speakers of each split (train words x train speakers, validation
   words x validation speakers, test words x test speakers);
4. training: ``speechedge/recipes/configs/kws_fewshot_voices.toml`` (BC-ResNet-1, D-ProtoNet episodes on the
   15 splitGSC training words + lambda x cross-entropy over the auxiliary words, realistic augmentation);
   ``--add-train LABEL=FOLDER`` adds another Speech Commands-layout folder's train-split clips (e.g. Kokoro-82M
   voices, too slow to synthesize at the corpus's scale on a small machine) to both, for that ``--tag`` only;
5. evaluation on the 10 test keywords (never trained on), 5-way 1- and 5-shot, 1000 episodes with 95% CIs:
   (a) held-out speakers of the training engines, (b) the held-out engines' speakers (synthesizers never heard
   in training; none with ``--held-out-engines ""``: then ``--extra-test`` names the unseen-engine test);
6. export (verified fp32 TFLite) and, with ``--ship``, copy to ``speechedge/pretrained/kws_fewshot``.

Writes ``results.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _held_out_key(engines) -> str:
    """The results key of the held-out engines' test set (``test_pico`` for the default)."""
    return "test_" + "_".join(engines)


def _stage(work: Path, name: str, fn):
    marker = work / f"{name}.done.json"
    if marker.exists():
        return json.loads(marker.read_text())
    t0 = time.perf_counter()
    result = fn() or {}
    result["_wall_s"] = round(time.perf_counter() - t0, 1)
    marker.write_text(json.dumps(result, indent=2))
    return result


def _filter(src: Path, dst: Path, keep) -> int:
    from speechedge.manifest import ClipRecord, read_manifest, write_manifest

    rows = [r for r in read_manifest(src, ClipRecord) if keep(r)]
    write_manifest(dst, rows)
    return len(rows)


def clip_rows(path: Path) -> list:
    """A clip manifest's rows with absolute audio paths (manifests may hold paths relative to their folder)."""
    from dataclasses import replace

    from speechedge.manifest import ClipRecord, read_manifest

    return [replace(r, path=str((path.parent / r.path).resolve())) for r in read_manifest(path, ClipRecord)]


def _add_train(specs: list[str], episodes: Path, aux: Path, episodes_out: Path, aux_out: Path) -> dict:
    """Episode and auxiliary-word manifests with the train-split clips of each ``LABEL=FOLDER`` added: every
    clip of a word the episodes already draw from goes into the episodes, every clip of an auxiliary word into
    the cross-entropy data (the head's classes stay those of the base corpus, so a continuation keeps its head)."""
    from speechedge.manifest import write_manifest

    ep, ax = clip_rows(episodes), clip_rows(aux)

    def cls(r) -> str:  # a clip's class, as the recipe reads it
        return r.label or r.word

    ep_words, aux_words = {cls(r) for r in ep}, {cls(r) for r in ax if r.split == "train"}
    out = {}
    for spec in specs:
        label, _, folder = spec.partition("=")
        if not label or not (Path(folder) / "manifest.jsonl").is_file():
            raise SystemExit(f"--add-train {spec!r}: expected LABEL=FOLDER, a Speech Commands-layout folder with a "
                             "manifest.jsonl (`speechedge synth speech-commands`)")
        new = [r for r in clip_rows(Path(folder) / "manifest.jsonl") if r.split == "train"]
        to_ep, to_aux = [r for r in new if cls(r) in ep_words], [r for r in new if cls(r) in aux_words]
        if not to_ep and not to_aux:
            raise SystemExit(f"--add-train {spec!r}: none of its words is a training word of this corpus")
        ep += to_ep
        ax += to_aux
        out[label] = {"folder": str(Path(folder).resolve()), "clips": len(new), "speakers": len({r.speaker for r in new}),
                      "words": len({r.word for r in new}), "episode_clips": len(to_ep), "aux_clips": len(to_aux)}
    assert {cls(r) for r in ax if r.split == "train"} == aux_words  # the head's classes (a continuation keeps it)
    write_manifest(episodes_out, ep)  # the stage marker is written after both: a kill leaves no half-made variant
    write_manifest(aux_out, ax)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="work/pretrained", type=Path)
    p.add_argument("--voices", type=int, default=200)
    p.add_argument("--aux-words", type=int, default=500)
    p.add_argument("--aux-voices", type=int, default=100)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-groups", type=int, default=8, help="synthesis worker groups (part of the corpora's "
                   "identity: 8 as every other corpus of the project; 32 keeps a 16-core machine busy)")
    p.add_argument("--ship", action="store_true", help="copy the export into speechedge/pretrained/kws_fewshot")
    p.add_argument("--card-notes", type=Path, default=None,
                   help="with --ship: a Markdown file of measurements made after the export (long-form, own voice, "
                        "streaming operating point), appended to the model card")
    p.add_argument("--init-command", default="",
                   help="with --set init_from=EXP: the command that trained EXP (quoted in the model card)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (e.g. tau=2); use with --tag")
    p.add_argument("--episode-words", choices=("gsc", "gsc+aux"), default="gsc",
                   help="the classes of the training episodes: the 15 splitGSC training words (the seed paper), or "
                        "those plus every auxiliary word (many more words and voices per episode class pool)")
    p.add_argument("--stop-after", choices=("data", "train", "eval"), default=None,
                   help="stop after this stage (data: to train variants in parallel processes afterwards; eval: "
                        "on a machine without the TFLite converter, export later where it is)")
    p.add_argument("--background-manifest", default=None, help="word clips for the exported detector's background "
                   "set (default: the auxiliary words; name another when exporting a model trained on another machine)")
    p.add_argument("--extra-test", action="append", default=[], metavar="LABEL=FOLDER",
                   help="also evaluate on a Speech Commands-layout folder of the 10 test words (e.g. voices of an "
                        "engine never used for training: `speechedge synth speech-commands --engines kokoro`)")
    p.add_argument("--train-engines", default="espeak,hibari",
                   help="comma-separated engines of the training speakers; part of the corpus: a work folder keeps "
                        "the engines it was made with")
    p.add_argument("--held-out-engines", default="pico",
                   help="comma-separated engines whose speakers are all test-only (default: SVOX Pico, the unseen "
                        "engine of every model until 2026-12-06); '' for none")
    p.add_argument("--aux-engines", default=None,
                   help="engines of the auxiliary word corpus (default: --train-engines)")
    p.add_argument("--add-train", action="append", default=[], metavar="LABEL=FOLDER",
                   help="also train on the train-split clips of a Speech Commands-layout folder (e.g. Kokoro-82M "
                        "voices from `speechedge synth speech-commands --engines kokoro`): in the episodes and, for "
                        "the auxiliary words, in the cross-entropy data; per variant (with --tag)")
    p.add_argument("--tag", default="", help="name of this variant: exp{tag}/, export{tag}/, results{tag}.json "
                   "(data stages are shared)")
    args = p.parse_args(argv)

    from speechedge.data_prep.speech_commands import prepare_speech_commands
    from speechedge.synth.corpora import SPEECH_COMMANDS_V2_WORDS, synth_speech_commands, vocabulary

    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    train_engines = tuple(e.strip() for e in args.train_engines.split(",") if e.strip())
    aux_engines = tuple(e.strip() for e in (args.aux_engines or args.train_engines).split(",") if e.strip())
    held_out = tuple(e.strip() for e in args.held_out_engines.split(",") if e.strip())
    if set(held_out) & set(train_engines + aux_engines) or not train_engines or not aux_engines:
        raise SystemExit(f"--train-engines / --aux-engines: non-empty lists without a --held-out-engines engine "
                         f"({', '.join(held_out) or 'none'})")
    made = work / "engines.json"  # the corpus's engines: a work folder is never reused with other ones
    wanted = {"train": list(train_engines), "aux": list(aux_engines)}
    if held_out != ("pico",):  # folders made before the option held out Pico and did not record it
        wanted["held_out"] = list(held_out)
    if made.exists() and json.loads(made.read_text()) != wanted:
        raise SystemExit(f"{work}: made with engines {made.read_text().strip()}, not {wanted}; use another --work")
    if not made.exists():
        legacy = (work / "synth_keywords.done.json").exists()  # folders from before the option: the defaults
        made.write_text(json.dumps({"train": ["espeak", "hibari"], "aux": ["espeak", "hibari"]} if legacy else wanted))
        if legacy and json.loads(made.read_text()) != wanted:
            raise SystemExit(f"{work}: made with espeak and hibari, not {wanted}; use another --work")
    _stage(work, "synth_keywords", lambda: synth_speech_commands(
        work / "keywords", per_word=args.voices, num_speakers=args.voices, seed=args.seed, noise_seconds=60,
        engines=(*train_engines, *held_out), held_out_engines=held_out, max_groups=args.max_groups).to_dict())

    def aux_words():
        words, _ = vocabulary(4 * args.aux_words)
        return [w for w in words if len(w) >= 4 and w not in SPEECH_COMMANDS_V2_WORDS][: args.aux_words]

    _stage(work, "synth_aux_words", lambda: synth_speech_commands(
        work / "aux_words", words=aux_words(), per_word=args.aux_voices, num_speakers=args.aux_voices,
        seed=args.seed + 1, noise_seconds=1, engines=aux_engines, max_groups=args.max_groups).to_dict())
    _stage(work, "prepare", lambda: prepare_speech_commands(work / "keywords", work / "gsc"))

    def split_manifests():
        voices = [json.loads(x) for x in (work / "keywords" / "voices.jsonl").read_text().splitlines()]
        split_of = {v["speaker"]: v["split"] for v in voices}
        engine_of = {v["speaker"]: v["engine"] for v in voices}
        m = work / "manifests"
        out = {
            "train": _filter(work / "gsc" / "splitgsc_train.jsonl", m / "train.jsonl",
                             lambda r: split_of[r.speaker] == "train"),
            "val": _filter(work / "gsc" / "splitgsc_val.jsonl", m / "val.jsonl", lambda r: split_of[r.speaker] == "val"),
            "test_voices": _filter(work / "gsc" / "splitgsc_test.jsonl", m / "test_voices.jsonl",
                                   lambda r: split_of[r.speaker] == "test" and engine_of[r.speaker] not in held_out),
        }
        if held_out:  # "test_pico" for the default, as every results file before the option
            out[_held_out_key(held_out)] = _filter(work / "gsc" / "splitgsc_test.jsonl",
                                                   m / f"{_held_out_key(held_out)}.jsonl",
                                                   lambda r: engine_of[r.speaker] in held_out)
        out["train_engines"] = sorted({engine_of[s] for s, sp in split_of.items() if sp == "train"})
        return out

    def episode_manifest():
        # the training words plus every auxiliary word's training clips, as one episodic manifest (absolute paths)
        from speechedge.manifest import write_manifest

        m = work / "manifests"
        rows = clip_rows(m / "train.jsonl")
        rows += [r for r in clip_rows(work / "aux_words" / "manifest.jsonl") if r.split == "train"]
        write_manifest(m / "train_gsc+aux.jsonl", rows)
        return {"train_gsc+aux": len(rows)}

    sizes = _stage(work, "split", split_manifests)
    if "train_gsc+aux" not in sizes:  # its own stage (work folders from before it existed get it too)
        sizes = {**sizes, **_stage(work, "episode_manifest", episode_manifest)}
    print(f"manifests: {sizes}", file=sys.stderr)
    if args.stop_after == "data":
        return 0

    from importlib.resources import files

    from speechedge.recipes.kws_fewshot import FewShotConfig, evaluate_experiment, train
    from speechedge.training.config import load_config

    m = work / "manifests"
    tag = args.tag
    train_manifest = m / ("train.jsonl" if args.episode_words == "gsc" else "train_gsc+aux.jsonl")
    aux_manifest = work / "aux_words" / "manifest.jsonl"
    if (work / f"add_train{tag}.done.json").exists() and not args.add_train:
        raise SystemExit(f"--tag {tag!r} was trained with --add-train; give the same --add-train (or another --tag)")
    if args.add_train:
        added = _stage(work, f"add_train{tag}", lambda: _add_train(args.add_train, train_manifest, aux_manifest,
                                                                  m / f"episodes{tag}.jsonl", m / f"aux{tag}.jsonl"))
        sizes = {**sizes, "added": {k: v for k, v in added.items() if not k.startswith("_")}}
        made = {label: str(Path(folder).resolve()) for label, _, folder in (x.partition("=") for x in args.add_train)}
        if made != {k: v["folder"] for k, v in sizes["added"].items()}:
            raise SystemExit(f"--tag {tag!r} was trained with --add-train {sizes['added']}, not {made}; use another --tag")
        train_manifest, aux_manifest = m / f"episodes{tag}.jsonl", m / f"aux{tag}.jsonl"
        print(f"added to training: {sizes['added']}", file=sys.stderr)
    cfg = load_config(FewShotConfig, str(files("speechedge.recipes") / "configs" / "kws_fewshot_voices.toml"), [
        f"train_manifest={train_manifest}", f"val_manifest={m / 'val.jsonl'}",
        f"noise_dir={work / 'keywords' / '_background_noise_'}", f"libriword_manifest={aux_manifest}",
        f"steps={args.steps}", f"threads={args.threads}", f"seed={args.seed}", *args.set])
    exp = work / f"exp{tag}"
    record = _stage(work, f"train{tag}", lambda: train(cfg, exp))

    results = {"data": sizes, "train": {k: v for k, v in record.items() if isinstance(v, (int, float))}}
    if args.stop_after == "train":
        return 0
    tests = {"test_voices": m / "test_voices.jsonl",
             **({_held_out_key(held_out): m / f"{_held_out_key(held_out)}.jsonl"} if held_out else {})}
    extra_labels = {}
    for spec in args.extra_test:
        label, _, folder = spec.partition("=")
        if not folder or not Path(folder).is_dir():
            raise SystemExit(f"--extra-test {spec!r}: expected LABEL=FOLDER with an existing Speech Commands-layout folder")
        key = "extra_" + "".join(c if c.isalnum() else "_" for c in label.lower())
        tests[key], extra_labels[key] = Path(folder).resolve(), label
    for name, data in tests.items():
        metrics = _stage(work, f"eval_{name}{tag}", lambda data=data: evaluate_experiment(
            exp, data, ways=5, shots=(1, 5), queries=5, episodes=args.episodes, seed=1234)[0])
        results[name] = {k: v for k, v in metrics.items() if not k.startswith("_")}
    results["extra_labels"] = extra_labels

    (work / f"results{tag}.json").write_text(json.dumps(results, indent=2))
    if args.stop_after == "eval":
        return 0
    from speechedge.export.kws import export_kws

    # verified on the validation speakers/words (the experiment's val manifest), never on the test sets
    report = _stage(work, f"export{tag}", lambda: export_kws(
        exp, work / f"export{tag}", invokes=300, background_manifest=args.background_manifest))
    results["export"] = {k: report["models"]["fp32"][k] for k in ("bytes", "max_err_rel_to_range", "median_invoke_ms")}
    (work / f"results{tag}.json").write_text(json.dumps(results, indent=2))
    print("| test set | 1-shot acc | 5-shot acc | 5-shot AUROC |\n|---|---:|---:|---:|")
    for name, label in (("test_voices", f"held-out {'/'.join(train_engines)} speakers"),
                        *([(_held_out_key(held_out), f"{'/'.join(held_out)} (unseen engine)")] if held_out else []),
                        *extra_labels.items()):
        r = results[name]
        print(f"| {label} | {r['1shot']['acc']:.3f} +-{r['1shot']['acc_ci95']:.3f} | "
              f"{r['5shot']['acc']:.3f} +-{r['5shot']['acc_ci95']:.3f} | "
              f"{r['5shot']['auroc']:.3f} +-{r['5shot']['auroc_ci95']:.3f} |")
    if args.ship:
        import shutil

        dst = Path(__file__).resolve().parents[1] / "speechedge" / "pretrained" / "kws_fewshot"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(work / f"export{tag}", dst, ignore=shutil.ignore_patterns("keywords.json", "*.h", "*.cc"))
        notes = "\n" + args.card_notes.read_text().strip() + "\n" if args.card_notes else ""
        (dst / "MODEL_CARD.md").write_text(model_card(results, sizes, cfg, args) + notes)
        print(f"shipped {dst}", file=sys.stderr)
    return 0


def model_card(results: dict, sizes: dict, cfg, args) -> str:
    """The shipped model's card: data, held-out voices, the command, the measured numbers."""
    def row(name: str, label: str) -> str:
        r = results[name]
        return (f"| {label} | {r['1shot']['acc']:.3f} +-{r['1shot']['acc_ci95']:.3f} | {r['1shot']['auroc']:.3f} | "
                f"{r['5shot']['acc']:.3f} +-{r['5shot']['acc_ci95']:.3f} | {r['5shot']['auroc']:.3f} "
                f"+-{r['5shot']['auroc_ci95']:.3f} |")

    ex = results["export"]
    episodes_note = ("; the training episodes are drawn from these words too (with the 15 keywords: "
                     f"{sizes.get('train_gsc+aux', 0)} clips)") if args.episode_words == "gsc+aux" else ""
    names = {"espeak": "espeak-ng", "hibari": "hibari", "kokoro": "Kokoro-82M", "pico": "SVOX Pico"}
    train_e = [e.strip() for e in args.train_engines.split(",") if e.strip()]
    held_e = [e.strip() for e in args.held_out_engines.split(",") if e.strip()]
    aux_e = [e.strip() for e in (args.aux_engines or args.train_engines).split(",") if e.strip()]
    added = sizes.get("added", {})
    added_e = [label.lower().split("-")[0] for label in added]  # "Kokoro-82M" -> "kokoro"
    added_text = "".join(
        f"\n- Added ({label}, `--add-train`): the train-split clips of `{Path(a['folder']).name}` ({a['clips']} clips, "
        f"{a['words']} words, {a['speakers']} speakers): {a['episode_clips']} in the episodes, {a['aux_clips']} in the "
        "word-supervision data." for label, a in added.items())

    def listed(engines) -> str:
        n = [names.get(e, e) for e in engines]
        return n[0] if len(n) == 1 else ", ".join(n[:-1]) + " and " + n[-1]

    def kind(label: str) -> str:  # an extra test folder of a training engine holds new voices, not a new engine
        trained = any(label.lower().startswith(e) for e in train_e + added_e)
        return "held-out voices of a training engine" if trained else "unseen synthesizer"

    hk = _held_out_key(held_e)
    held_text = (f", and every {listed(held_e)} speaker ({sizes[hk]} clips): an engine the model never heard"
                 if held_e else "")
    held_row = "\n" + row(hk, f"{listed(held_e)} (unseen synthesizer), held-out words") if held_e else ""
    extra_rows = "".join("\n" + row(k, f"{v} ({kind(v)}), held-out words")
                         for k, v in results.get("extra_labels", {}).items())
    trained = json.loads((Path(args.work).resolve() / f"exp{args.tag}" / "config.json").read_text())
    on_gpu = str(trained.get("device", "")).startswith("cuda")
    fewshot = json.loads((Path(args.work).resolve() / f"export{args.tag}" / "fewshot.json").read_text())
    d = fewshot.get("detector")
    made_text = ""
    if on_gpu:
        made_text = ("\n\nThis model was made on two machines: synthesis and training on a lent 16-core GPU machine "
                     "(`STAGE=data` then `STAGE=train` of `benchmarks/kws_pretrained_gpu.sh`, which runs the command "
                     "above with `--stop-after eval`), then the command above on the 2-core machine for the export"
                     + (f" (`--background-manifest {args.background_manifest}`: the detector's background speech "
                        "from a word corpus there, since the 1,000-word corpus stayed on the GPU machine)"
                        if args.background_manifest else "")
                     + ".")
    if isinstance(d, dict):
        made_text += (" Before `--ship`, `python benchmarks/kws_calibrate_detector.py <the export folder> "
                      f"work/kws_dev{' --peak' if d.get('peak_margin') is not None else ''} --write` chose the "
                      "detector's operating point.")
    if any(x.lower().startswith("kokoro") for x in args.extra_test):
        made_text += (" The Kokoro test folder: `synth_speech_commands(out, words=<the 10 test words>, per_word=24, "
                      "num_speakers=24, seed=7, engines=('kokoro',))` (all its clips are used).")
    if any(x.lower().startswith("flite") for x in args.extra_test):
        made_text += (" The Flite test folder: `python benchmarks/results/kws_pretrained_v3/synth_flite_test.py OUT` "
                      "(the 10 test words by 24 CMU Flite speakers, seed 7; all its clips are used).")
    if any(label.lower().startswith("kokoro") for label in added):
        made_text += (" The added Kokoro-82M training clips: `python benchmarks/results/kws_pretrained_v3/"
                      "synth_kokoro_train.py OUT` (75 training words by 64 speakers, seed 21; other speakers than the "
                      "Kokoro test folder's).")
    wall = results["train"].get("_wall_s", 0) / 60
    if isinstance(d, dict):
        dev = (f": FRR {d['dev_frr']:.2f} at {d['dev_fa_per_hour']:.2f} FA/h there"
               if "dev_frr" in d and "dev_fa_per_hour" in d else "")
        detector_text = (f"the detector fires at {d['threshold']:g} when {d['agree']} consecutive 100 ms windows "
                         f"agree (this model's operating point, `fewshot.json` `detector`, chosen on "
                         f"{d.get('chosen_on', 'development streams')} by `benchmarks/kws_calibrate_detector.py`{dev}).")
        if d.get("peak_margin") is not None:
            detector_text += (f" It also fires on one window whose raw score reaches {d['threshold'] + d['peak_margin']:g} "
                              f"(the peak rule, `peak_margin` {d['peak_margin']:g}: the smallest margin that adds no "
                              "false alarm on the development streams, `kws_calibrate_detector.py --peak`), which finds "
                              "a keyword followed by more speech, as a wake word with its command; `demo kws "
                              "--peak-margin off` switches it off.")
    else:
        detector_text = "the detector fires at 0.67 when 4 consecutive 100 ms windows agree."
    report = json.loads((Path(args.work).resolve() / f"export{args.tag}" / "report.json").read_text())
    stream_text = ""
    if "stream" in report:
        st, ds = report["stream"], fewshot.get("detector_stream")
        stream_text = (
            f"\n\nWith `--stream` (`KWSModel(..., mode='stream')`) the detector runs `stream_fp32.tflite` ({st['bytes']} "
            f"bytes): one BC-ResNet step per {st['chunk_ms']:g} ms chunk with its state (ring buffers, delay lines, "
            f"pooling window; `stream.json`), {st['median_ms_per_chunk']:.2f} ms per chunk, decisions "
            f"{st['lag_ms']} ms later than the audio they cover; its enrolment and background set "
            "(`background_stream.npy`) use the streaming embedding"
            + (f", and its operating point (`fewshot.json` `detector_stream`) is {ds['threshold']:g}, chosen the same "
               f"way (FRR {ds['dev_frr']:.2f} at {ds['dev_fa_per_hour']:.2f} FA/h on the development streams; "
               "`kws_calibrate_detector.py --stream`)" if isinstance(ds, dict) else "")
            + (f", with the peak rule at margin {ds['peak_margin']:g}" if isinstance(ds, dict)
               and ds.get("peak_margin") is not None else "")
            + ". It costs about a third of the window detector's CPU and detects less well with this model (trained "
              "on isolated windows); numbers in the README, \"Streaming detection\".")
    longform_text = ("Long-form, own-voice and in-sentence results: below, 'Measured after the export'."
                     if args.card_notes else
                     "Long-form result (2.09 h, 60 keyword events by voices not used for enrolment, "
                     "`benchmarks/kws_longform.py`): see `benchmarks/results/kws_longform/` and the README.")
    hardware = (f", {wall:.1f} min on one GPU (augmentation on the GPU)" if on_gpu
                else f", {wall:.0f} min on {trained.get('threads', cfg.threads)} CPU threads")
    if cfg.init_from:  # a continuation: say what it continued and how that was made
        src = json.loads((Path(cfg.init_from) / "config.json").read_text())
        hardware += (f", continuing `{Path(cfg.init_from).name}` (its best checkpoint: {src['steps']} steps of the "
                     f"same recipe at lr {src['lr']:g}, `{args.init_command}`)" if args.init_command else
                     f", continuing `{Path(cfg.init_from).name}` (its best checkpoint: {src['steps']} steps of the "
                     f"same recipe at lr {src['lr']:g})")
    return f"""# Pretrained few-shot keyword spotter (BC-ResNet-{cfg.tau:g}, D-ProtoNet + word supervision)

An embedding network for open-set few-shot keyword spotting: enrol a keyword from 3-5 recordings, detect it in
a stream (`speechedge demo kws --enroll a.wav b.wav c.wav --name WORD`). fp32 TFLite, {ex['bytes']} bytes,
{ex['median_invoke_ms']:.2f} ms per 1-second window on one x86 core; input: 40 log-mel x 101 frames
(`frontend.json`), output: a {int(32 * cfg.tau)}-dimensional embedding (BC-ResNet-{cfg.tau:g}); the open-set rule is in `fewshot.json`
(+ `dummy_prototypes.npz`).

## Data (all synthesized offline; no recording of a real person)
- Keywords: the 35 Speech Commands words x {args.voices} synthetic speakers drawn in turn from
  {listed([*train_e, *held_e])}, each with random engine controls and a vocal-tract-length factor (0.85-1.15), gain
  and noise floor. Training uses the 15 splitGSC training words from the {listed(train_e)} speakers of the
  training split ({sizes['train']} clips); validation the 10 splitGSC validation words ({sizes['val']} clips).
- Word supervision (LibriWord-style): {args.aux_words} frequent English words x {args.aux_voices}
  {listed(aux_e)} speakers (cross-entropy head, weight {cfg.aux_weight:g}, dropped at inference){episodes_note}.{added_text}
- Augmentation: simulated rooms (RT60 {cfg.augment.rt60_s[0]:g}-{cfg.augment.rt60_s[1]:g} s, p={cfg.augment.reverb_prob:g}),
  babble (p={cfg.augment.babble_prob:g}), noise incl. music-like and hum (p={cfg.augment.noise_prob:g}, SNR
  {cfg.augment.snr_db[0]:g}-{cfg.augment.snr_db[1]:g} dB), microphone colouring / band-limiting
  (p={cfg.augment.colour_prob:g}), gain with clipping (p={cfg.augment.gain_prob:g}), speed
  (p={cfg.augment.speed_prob:g}), time shift{', SpecAugment' if cfg.spec_augment else ''}.
- Training: {cfg.steps} steps{hardware}.

## Held out
- Words: the 10 splitGSC test keywords (yes, no, up, down, left, right, on, off, stop, go) are never trained on.
- Voices: the test-split {listed(train_e)} speakers ({sizes['test_voices']} clips){held_text}.

## Measured (5-way, 5 queries per class + 25 unknown queries, {args.episodes} episodes, 95% CIs)

| test set | 1-shot acc | 1-shot AUROC | 5-shot acc | 5-shot AUROC |
|---|---:|---:|---:|---:|
{row('test_voices', f"held-out {'/'.join(names.get(e, e) for e in train_e)} speakers, held-out words")}{held_row}{extra_rows}

Not measured here: real recordings (none are available offline). Expect lower numbers on real voices and
rooms than on synthetic ones.

## Input level
`level.json` (written by the export: the 10th percentile of the held-out clips' peak frame energy, at most
+40 dB): the runtime brings a window quieter than that up to it before the model, so a quiet microphone gets
the level the model was trained at (README, "A quiet microphone"; `python benchmarks/kws_level.py WORK --models
<this folder>` measures 5-way accuracy from 0 to -40 dB with and without it).

## Detection (streaming)
`background.npy` (1,024 embeddings of non-keyword speech windows and noise, float16) calibrates the
detector: a window's score for a keyword is the best over its enrolment clips of `1 - d_i / s_i` (`d_i`: squared
distance to clip i's embedding, `s_i`: the 10th percentile of that distance over the background set); {detector_text}
{longform_text}{stream_text}

## int8 (not in this folder)
The folder ships fp32 models (the runtime prefers int8 where it exists, and int8 is slower than fp32 on x86).
`python benchmarks/kws_int8_exported.py <this folder> --calibration <training clips manifest> --held-out
<held-out manifests> --weights tensor --write DIR` writes a copy with `model_int8.tflite` and
`stream_int8.tflite` when both keep the int8 budget (>= 98% of 5-way 5-shot decisions equal to fp32's, accuracy
within 1 point); measured results for this model are in `benchmarks/results/kws_int8/` and the README
("Export", "int8 that passes").

## Reproduce

```bash
python benchmarks/kws_pretrained.py --work {args.work} --voices {args.voices} --aux-words {args.aux_words} \\
    --aux-voices {args.aux_voices} --steps {args.steps} --threads {args.threads} --seed {args.seed} \\
    --train-engines {args.train_engines} --held-out-engines "{args.held_out_engines}"{f" --aux-engines {args.aux_engines}" if args.aux_engines else ""} \\
    --episode-words {args.episode_words}{f" --max-groups {args.max_groups}" if args.max_groups != 8 else ""} {" ".join(f"--set {x}" for x in args.set)}{f" --tag {args.tag}" if args.tag else ""} \\
    {" ".join(f'--extra-test "{x}"' for x in args.extra_test)}{"".join(f' --add-train "{x}"' for x in args.add_train)} --ship{f' --init-command "{args.init_command}"' if args.init_command else ""}{f" --card-notes {args.card_notes}" if args.card_notes else ""}
```
({cfg.steps} training steps; config `speechedge/recipes/configs/kws_fewshot_voices.toml`.){made_text}
"""


if __name__ == "__main__":
    sys.exit(main())
