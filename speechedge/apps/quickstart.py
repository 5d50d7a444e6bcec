"""``speechedge quickstart``: the main job, run offline on synthesized data.

KWS (``speechedge quickstart``): synthesize a small LibriSpeech-layout corpus (with word alignments) and a
Speech Commands-layout corpus; build LibriWord and the Speech Commands / splitGSC manifests from them;
compute log-mel features of every file with the Numba kernel; train a BC-ResNet-1 few-shot model with dummy
prototypes and LibriWord supervision (tiny config); evaluate 5-way 1-/5-shot accuracy and open-set AUROC on
the test keywords; export to TFLite for a microcontroller (int8 + C array; when the int8 model fails its
agreement check the refusal is reported and the verified fp32 model is exported instead); enrol two custom
keywords from three synthesized examples each and run the streaming detector over synthesized long
recordings (hits, false alarms per hour, DET curve).

ASR (``speechedge quickstart asr``): synthesize a 4 h corpus (96 voices), train the full-context teacher, distil a
streaming student through auxiliary non-streaming layers + APC, evaluate both, export the student as a
streaming TFLite step model and transcribe held-out utterances chunk by chunk with the torch-free runtime.

Finished stages are reused when the command is run again (delete the work folder to start over); each
pipeline ends with a summary table, ``report.md`` and plots in the work folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from speechedge.io import atomic_write_text


class OptionsMismatchError(ValueError):
    """A work folder made with other options (its finished stages would be reused with the wrong settings)."""


def _check_options(work: Path, options: dict) -> None:
    """Record the run's options in ``work/options.json`` the first time; refuse a later run with others, whose
    reused stages would silently mix two settings."""
    path = work / "options.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != options:
            diff = ", ".join(f"{k}: {old.get(k)} -> {v}" for k, v in options.items() if old.get(k) != v)
            raise OptionsMismatchError(f"{work} was made with other options ({diff}); its finished stages would be "
                                       f"reused with the old ones: use another --work, or remove {work} to start over")
    elif any(work.glob("*.done.json")):  # finished stages of a version that did not record its options
        raise OptionsMismatchError(f"{work} holds finished stages but no options.json (an older speechedge made it): "
                                   f"use another --work, or remove {work} to start over")
    else:
        atomic_write_text(path, json.dumps(options, indent=2))


def _stage(work: Path, name: str, fn, timings: dict) -> dict:
    """Run ``fn`` unless ``work/name.done.json`` says it finished; return its result either way."""
    marker = work / f"{name}.done.json"
    if marker.exists():
        result = json.loads(marker.read_text())
        timings[name] = (result.get("_wall_s", 0.0), "reused")
        return result
    t0 = time.perf_counter()
    result = fn()
    result["_wall_s"] = round(time.perf_counter() - t0, 2)
    atomic_write_text(marker, json.dumps(result, indent=2))
    timings[name] = (result["_wall_s"], "ran")
    return result


def _features_summary(files: list[Path], progress: bool) -> dict:
    from tqdm import tqdm

    from speechedge.audio import read_audio
    from speechedge.kernels import log_mel
    from speechedge.recipes.kws_fewshot import FewShotConfig

    config = FewShotConfig().frontend  # the few-shot recipe's frontend
    frames, total_s, sums, sq = 0, 0.0, 0.0, 0.0
    t_feat = 0.0
    for f in tqdm(files, desc="log-mel features", unit="file", disable=not progress):
        audio, sr = read_audio(f, sample_rate=config.sample_rate)
        t0 = time.perf_counter()
        feats = log_mel(audio, config)
        t_feat += time.perf_counter() - t0
        frames += feats.shape[-1]
        total_s += len(audio) / sr
        sums += float(feats.sum(dtype=np.float64))
        sq += float(np.square(feats, dtype=np.float64).sum())
    n = frames * config.n_mels
    mean = sums / n
    return {"files": len(files), "audio_s": round(total_s, 1), "frames": frames, "n_mels": config.n_mels,
            "mean": round(mean, 3), "std": round(float(np.sqrt(sq / n - mean**2)), 3),
            "feature_ms_per_audio_s": round(1000 * t_feat / total_s, 3)}


def _libriword(work: Path, seed: int, progress: bool, num_words: int = 30) -> dict:
    from speechedge.data_prep.libriword import LibriWordConfig, build_libriword

    # a small corpus: fewer words and clips than the reference 1000 x 300, and synthetic speech is fast,
    # so words as short as 0.1 s count
    cfg = LibriWordConfig(num_words=num_words, clips_per_word=20, min_word_seconds=0.1, seed=seed)
    stats = build_libriword(work / "LibriSpeech", work / "LibriSpeech" / "alignments", work / "libriword", cfg,
                            progress=progress)
    return {k: v for k, v in stats.items() if k not in ("config", "corpus", "top_words")}


def _prepare_gsc(work: Path) -> dict:
    from speechedge.data_prep.speech_commands import prepare_speech_commands

    return prepare_speech_commands(work / "speech_commands", work / "manifests")


def _train_fewshot(work: Path, seed: int, steps: int = 300) -> dict:
    from importlib.resources import files

    from speechedge.recipes.kws_fewshot import FewShotConfig, train
    from speechedge.training.config import load_config

    toml = files("speechedge.recipes") / "configs" / "kws_fewshot_tiny.toml"
    cfg = load_config(FewShotConfig, str(toml), [
        f"train_manifest={work / 'manifests' / 'splitgsc_train.jsonl'}",
        f"val_manifest={work / 'manifests' / 'splitgsc_val.jsonl'}",
        f"noise_dir={work / 'speech_commands' / '_background_noise_'}",
        f"libriword_manifest={work / 'libriword' / 'manifest.jsonl'}", f"seed={seed}", f"steps={steps}",
        f"eval_every={max(100, steps // 6)}"])
    record = train(cfg, work / "exp" / "kws_fewshot")
    return {"steps": cfg.steps, "method": cfg.method, "aux_weight": cfg.aux_weight, **record}


def _eval_fewshot(work: Path) -> dict:
    """The fresh model and, on the same episodes, the shipped pretrained one (when the package has it)."""
    from speechedge.recipes.kws_fewshot import evaluate_experiment, evaluate_exported

    test = work / "manifests" / "splitgsc_test.jsonl"
    episodes = dict(ways=5, shots=(1, 5), queries=5, episodes=300, seed=0)
    metrics, _, _ = evaluate_experiment(work / "exp" / "kws_fewshot", test, **episodes,
                                        roc_png=work / "exp" / "kws_fewshot" / "roc.png")
    result = {k: {m: round(v, 4) for m, v in r.items()} for k, r in metrics.items()}
    shipped = _shipped_dir()
    if shipped is not None:
        result["shipped"] = {k: {m: round(v, 4) for m, v in r.items()}
                             for k, r in evaluate_exported(shipped, test, **episodes)[0].items()}
    return result


def _shipped_dir() -> Path | None:
    from speechedge.pretrained import pretrained_dir

    try:
        return pretrained_dir()
    except FileNotFoundError:
        return None


def _export(work: Path) -> dict:
    from speechedge.export.kws import export_kws

    exp, out = work / "exp" / "kws_fewshot", work / "export" / "kws_fewshot"
    result: dict = {}
    # the microcontroller target (full-integer int8, C array, TFLite Micro ops, flash/arena budgets); where the
    # int8 model fails its checks, the phone export (fp32) from the same conversion
    report = export_kws(exp, out, target="mcu", invokes=1000, fallback_phone=True)
    result["target"] = "mcu" if report["target"] == "mcu" else "phone (fp32)"
    if "int8_refused" in report:
        q = report["int8_refused"]
        result["int8_refused"] = {"agreement": q["int8"].get("decision_agreement"), "bytes": q["int8"].get("bytes"),
                                  "failed": q["failed_checks"]}
    fp = report["models"]["fp32"]
    result.update({"bytes": fp["bytes"], "max_err_rel": fp["max_err_rel_to_range"], "agreement": fp["decision_agreement"],
                   "invoke_ms": fp["median_invoke_ms"], "speed_vs_torch": fp["speed_vs_torch"]})
    if "int8" in report["models"]:
        q = report["models"]["int8"]
        result["int8"] = {"bytes": q["bytes"], "agreement": q["decision_agreement"], "invoke_ms": q["median_invoke_ms"],
                          "arena_bytes": report["mcu"].get("tflm_arena_bytes", report["mcu"]["peak_activation_bytes"])}
    return result


CUSTOM_KEYWORDS = ("pineapple", "jupiter")  # not Speech Commands words


def _detect_with(model_dir: Path, work: Path, out_name: str, seed: int, progress: bool,
                 keywords_file: Path | None = None) -> dict:
    """Enrol the custom keywords on one exported model and run the long-form evaluation."""
    from speechedge.apps.longform import det_png, evaluate_streams, load_streams, synth_streams
    from speechedge.audio import read_audio
    from speechedge.runtime import KWSModel
    from speechedge.synth.corpora import synth_speech_commands

    model = KWSModel(model_dir, keywords_file=keywords_file)
    enroll_dir = work / "enroll"
    if not (enroll_dir / "synth_report.json").exists():
        synth_speech_commands(enroll_dir, words=list(CUSTOM_KEYWORDS), per_word=3, seed=seed + 500,
                              noise_seconds=1.0, progress=progress)
    model.forget()
    for w in CUSTOM_KEYWORDS:
        model.enroll(w, [read_audio(p, sample_rate=model.frontend.sample_rate)[0]
                         for p in sorted((enroll_dir / w).glob("*.wav"))])
    pos, neg = synth_streams(work / "kws_stream", list(CUSTOM_KEYWORDS), positive_streams=4, per_stream=6,
                             speech_minutes=10, noise_minutes=2, music_minutes=2, seed=seed, progress=progress)
    positives, negatives = load_streams(pos, positive=True), load_streams(neg, positive=False)
    result = evaluate_streams(model, positives, negatives, progress=progress)
    det_png(result, work / f"{out_name}.png")
    atomic_write_text(work / f"{out_name}.json", json.dumps(result, indent=2))
    default = model.detector_defaults()[0]
    at = min(result["det"], key=lambda p: abs(p["threshold"] - default))  # the demo's default threshold
    return {"keywords": list(CUSTOM_KEYWORDS), "events": result["events"], "hours": round(result["hours"], 3),
            "default_threshold": at, "operating_points": result["operating_points"],
            "model_invoke_ms": round(result["model_invoke_ms"], 3)}


def _enroll_and_detect(work: Path, seed: int, progress: bool) -> dict:
    """The freshly trained model and, side by side, the shipped pretrained one (when the package has it)."""
    result = _detect_with(work / "export" / "kws_fewshot", work, "det", seed, progress)
    shipped = _shipped_dir()
    if shipped is None:
        return result
    # the shipped folder is read-only: its enrolled keywords live in the work folder
    result["shipped"] = _detect_with(shipped, work, "det_shipped", seed, progress,
                                     keywords_file=work / "shipped_keywords.json")
    return result


KWS_STEPS, KWS_CLIPS, KWS_HOURS = 2400, 60, 1.5  # the default run: most of the 15-minute budget on the model
TRAIN_ENGINES, TEST_ENGINES = ("espeak", "hibari"), ("pico",)  # the test voices' synthesizer is never trained on


def run_quickstart(work: Path, *, seed: int = 0, progress: bool = True, steps: int = KWS_STEPS,
                   clips: int = KWS_CLIPS, hours: float = KWS_HOURS) -> int:
    """The KWS pipeline end to end. ``clips``: Speech Commands clips per word (as many speakers, espeak-ng and
    hibari voices for training, SVOX Pico voices only in the test split); ``hours``: read speech for the
    LibriWord words (20 voices per 0.3 h); ``steps``: training episodes."""
    from speechedge.synth.corpora import synth_librispeech, synth_speech_commands

    work.mkdir(parents=True, exist_ok=True)
    _check_options(work, {"pipeline": "kws", "seed": seed, "steps": steps, "clips": clips, "hours": hours})
    timings: dict[str, tuple[float, str]] = {}
    ls = _stage(work, "synth_librispeech", lambda: synth_librispeech(
        work / "LibriSpeech", hours=hours, num_speakers=max(20, round(hours * 66)), seed=seed,
        progress=progress).to_dict(), timings)
    gsc = _stage(work, "synth_speech_commands", lambda: synth_speech_commands(
        work / "speech_commands", per_word=clips, seed=seed, noise_seconds=30, engines=TRAIN_ENGINES + TEST_ENGINES,
        held_out_engines=TEST_ENGINES, progress=progress).to_dict(), timings)
    lw = _stage(work, "libriword", lambda: _libriword(work, seed, progress, num_words=max(30, round(hours * 100))),
                timings)
    gp = _stage(work, "prepare_speech_commands", lambda: _prepare_gsc(work), timings)
    files = sorted((work / "LibriSpeech").rglob("*.flac")) + sorted((work / "speech_commands").rglob("*.wav"))
    feats = _stage(work, "features", lambda: _features_summary(files, progress), timings)
    tr = _stage(work, "train_kws_fewshot", lambda: _train_fewshot(work, seed, steps), timings)
    ev = _stage(work, "eval_kws_fewshot", lambda: _eval_fewshot(work), timings)
    ex = _stage(work, "export_kws_fewshot", lambda: _export(work), timings)
    dt = _stage(work, "enroll_and_detect", lambda: _enroll_and_detect(work, seed, progress), timings)

    if "int8" in ex:
        q = ex["int8"]
        int8_text = (f"int8 {q['bytes']} bytes, agreement {q['agreement']:.3f}, arena {q['arena_bytes'] / 1024:.1f} KB, "
                     f"C array written")
    else:
        r = ex.get("int8_refused", {})
        failed = ", ".join(r.get("failed") or []) or "?"
        int8_text = (f"int8 REFUSED (window decision agreement {r.get('agreement') or float('nan'):.3f}; failed checks: "
                     f"{failed}), fp32 exported")
    p07 = dt["default_threshold"]
    ops = "; ".join(f"{t} FA/h: FRR {p['frr']:.2f}" if p else f"{t} FA/h: not reached"
                    for t, p in dt["operating_points"].items())
    lines = [
        "# speechedge quickstart",
        "",
        "| stage | result | wall s | |",
        "|---|---|---:|---|",
        f"| synth LibriSpeech | {ls['num_files']} utterances, {ls['audio_s']:.0f} s audio, "
        f"{ls['dropped_utterances']} dropped, {ls['audio_per_wall_s']:.0f}x real time | {timings['synth_librispeech'][0]:.1f} "
        f"| {timings['synth_librispeech'][1]} |",
        f"| synth Speech Commands | {gsc['num_files']} clips ({gsc['splits']}), {gsc['audio_per_wall_s']:.0f}x real time "
        f"| {timings['synth_speech_commands'][0]:.1f} | {timings['synth_speech_commands'][1]} |",
        f"| LibriWord | {lw['words']} words x {lw['clips_per_word']['max']} clips ({lw['splits']}), "
        f"{lw['bad_sources']} bad sources | {timings['libriword'][0]:.1f} | {timings['libriword'][1]} |",
        f"| Speech Commands + splitGSC | 35-class train/val/test {gp['gsc35_train']}/{gp['gsc35_val']}/"
        f"{gp['gsc35_test']}, splitGSC 15/10/10 classes | {timings['prepare_speech_commands'][0]:.1f} "
        f"| {timings['prepare_speech_commands'][1]} |",
        f"| log-mel (Numba) | {feats['files']} files, {feats['frames']} frames x {feats['n_mels']} mels, "
        f"mean {feats['mean']}, std {feats['std']}, {feats['feature_ms_per_audio_s']} ms per audio s "
        f"| {timings['features'][0]:.1f} | {timings['features'][1]} |",
        f"| train BC-ResNet-1 {tr['method']} + LibriWord (aux {tr['aux_weight']}) | {tr['steps']} episodes, "
        f"val 3-shot acc {tr.get('val_acc', float('nan')):.3f}, AUROC {tr.get('val_auroc', float('nan')):.3f} "
        f"| {timings['train_kws_fewshot'][0]:.1f} | {timings['train_kws_fewshot'][1]} |",
        f"| eval test keywords (5-way, 300 episodes) | 1-shot acc {ev['1shot']['acc']:.3f} +-{ev['1shot']['acc_ci95']:.3f}, "
        f"AUROC {ev['1shot']['auroc']:.3f}; 5-shot acc {ev['5shot']['acc']:.3f} +-{ev['5shot']['acc_ci95']:.3f}, "
        f"AUROC {ev['5shot']['auroc']:.3f}"
        + ("; shipped model on the same episodes: 1-shot acc {:.3f}, AUROC {:.3f}; 5-shot acc {:.3f}, AUROC {:.3f}".format(
            ev["shipped"]["1shot"]["acc"], ev["shipped"]["1shot"]["auroc"], ev["shipped"]["5shot"]["acc"],
            ev["shipped"]["5shot"]["auroc"]) if "shipped" in ev else "")
        + f" | {timings['eval_kws_fewshot'][0]:.1f} | {timings['eval_kws_fewshot'][1]} |",
        f"| export TFLite ({ex['target']}) | fp32 {ex['bytes']} bytes, max error {ex['max_err_rel']:.1e} of the output "
        f"range, decision agreement {ex['agreement']:.3f}, {ex['invoke_ms']:.2f} ms per invoke "
        f"({ex['speed_vs_torch']:.1f}x torch); {int8_text} | {timings['export_kws_fewshot'][0]:.1f} "
        f"| {timings['export_kws_fewshot'][1]} |",
        f"| enrol {' + '.join(dt['keywords'])} (3 clips each), streaming detector | {dt['events']} keyword events in "
        f"{dt['hours'] * 60:.0f} min of audio; default threshold {p07['threshold']:g}: {p07['hits']} hits, "
        f"{p07['false_alarms']} false alarms "
        f"({p07['fa_per_hour']:.1f}/h); {ops}; DET in det.png | {timings['enroll_and_detect'][0]:.1f} "
        f"| {timings['enroll_and_detect'][1]} |",
    ]
    if "shipped" in dt:
        sh = dt["shipped"]
        q07 = sh["default_threshold"]
        sops = "; ".join(f"{t} FA/h: FRR {p['frr']:.2f}" if p else f"{t} FA/h: not reached"
                         for t, p in sh["operating_points"].items())
        lines.append(f"| the same with the shipped pretrained model | default threshold {q07['threshold']:g}: "
                     f"{q07['hits']} hits, "
                     f"{q07['false_alarms']} false alarms ({q07['fa_per_hour']:.1f}/h); {sops}; DET in det_shipped.png "
                     f"| | |")
    total = sum(t for t, _ in timings.values())
    lines += ["", f"Total of the stage times: {total / 60:.1f} min (stages reused from an earlier run count their "
              "original time). Plots: exp/kws_fewshot/curves.png, exp/kws_fewshot/roc.png, libriword/stats.png, det.png."]
    report = "\n".join(lines) + "\n"
    atomic_write_text(work / "report.md", report)
    print(report)
    print(f"report: {work / 'report.md'}")
    return 0


# -- ASR -----------------------------------------------------------------------------------------------------
ASR_STEPS = 600  # per model; the tiny configs' 1200 are the evidence run's
# voices from three engines in turn: a model of espeak-ng voices alone fails on every other synthesizer (README
# "Other engines"); all three are byte-reproducible (Pico runs on a thread of its own), which the kill-and-rerun
# guarantee needs. --asr-engines espeak gives the espeak-ng-only quickstart (better on espeak-ng, worse elsewhere)
ASR_ENGINES = ("espeak", "pico", "hibari")


def _train_asr(work: Path, name: str, config: str, sets: list[str], steps: int = ASR_STEPS) -> dict:
    from importlib.resources import files

    from speechedge.recipes.asr import ASRConfig, train
    from speechedge.training.config import load_config

    toml = files("speechedge.recipes") / "configs" / config
    m = work / "manifests"
    cfg = load_config(ASRConfig, str(toml), [f"train_manifest={m / 'librispeech_train-clean-100.jsonl.gz'}",
                                             f"val_manifest={m / 'librispeech_dev-clean.jsonl.gz'}",
                                             f"steps={steps}", f"eval_every={min(200, steps)}",
                                             f"warmup_steps={min(150, max(1, steps // 4))}",
                                             f"alignments={work / 'LibriSpeech' / 'alignments' / 'train-clean-100'}",
                                             f"crop_steps={min(200, steps // 3)}", *sets])
    record = train(cfg, work / "exp" / name)
    return {"steps": cfg.steps, "val_cer": record.get("val_cer"), "val_wer": record.get("val_wer"),
            "s_per_step": record.get("s_per_step")}


def _eval_asr(work: Path) -> dict:
    from speechedge.recipes.asr import evaluate_experiment

    test = work / "manifests" / "librispeech_test-clean.jsonl.gz"
    return {"teacher": evaluate_experiment(work / "exp" / "teacher", test, [0]),
            "student": evaluate_experiment(work / "exp" / "student", test, [4, 8, 16])}


def _export_asr(work: Path) -> dict:
    """fp32 + int8 + 16x8; a quantized model that fails its CER check is reported and left out of the export."""
    from speechedge.export.asr import ExportError, export_asr

    quant, refused = ("int8", "int16x8"), {}
    src, out = work / "exp" / "student", work / "export" / "student"
    try:
        report = export_asr(src, out, int8=True, int16x8=True, invokes=1000)
    except ExportError as e:
        failed = [k for k in quant if e.report and e.report["checks"].get(f"{k}_cer_within_1_point_of_fp32") is False]
        if not failed or not e.report["checks"].get("fp32_max_err_rel_to_range<=1e-4"):
            raise
        refused = {k: e.report["models"][k] for k in failed}
        report = export_asr(src, out, invokes=1000, **{k: k not in refused for k in quant})
        report["models"].update(refused)
    return {**{f"{k}_refused": k in refused for k in quant}, "models": report["models"],
            "torch_cer": report["torch_cer"], "torch_ms_per_chunk": report["torch_eager_ms_per_chunk"],
            "chunk_ms": report["chunk_ms"]}


def _transcribe(work: Path, limit: int = 20) -> dict:
    from speechedge.audio import read_audio
    from speechedge.ctc import CharTokenizer, ErrorCounts
    from speechedge.manifest import UtteranceRecord, read_manifest
    from speechedge.runtime import StreamingASR
    from speechedge.runtime.asr import PRECISIONS

    tok = CharTokenizer()
    rows = list(read_manifest(work / "manifests" / "librispeech_test-clean.jsonl.gz", UtteranceRecord))[:limit]
    out, examples = {}, []
    precisions = [p for p in PRECISIONS if (work / "export" / "student" / f"model_{p}.tflite").exists()]
    for precision in precisions:
        asr = StreamingASR(work / "export" / "student", precision=precision)
        counts, audio_s = ErrorCounts(), 0.0
        t0 = time.perf_counter()
        for r in rows:
            audio, _ = read_audio(r.path, sample_rate=16000)
            asr.reset()
            for i in range(0, len(audio), 1600):  # 100 ms blocks, as from a microphone
                asr.push(audio[i: i + 1600])
            ref = tok.decode(tok.encode(r.transcript))
            counts.add(ref, asr.flush())  # the end of the stream: the last partial chunk too
            audio_s += len(audio) / 16000
            if precision == "fp32" and len(examples) < 3:
                examples.append({"ref": ref, "hyp": asr.text})
        out[precision] = {"cer": round(counts.cer, 2), "wer": round(counts.wer, 2),
                          "real_time_factor": round((time.perf_counter() - t0) / audio_s, 4)}
    return {"utterances": len(rows), **out, "examples": examples}


def _by_engine(report: dict) -> str:
    """``" (espeak 2.71 h, pico 0.68 h, ...)"`` from a synthesis report with more than one engine, else ``""``."""
    hours: dict[str, float] = {}
    for split in report.get("splits", {}).values():
        for engine, seconds in split.get("engines", {}).items():
            hours[engine] = hours.get(engine, 0.0) + seconds / 3600
    return f" ({', '.join(f'{e} {h:.2f} h' for e, h in hours.items())})" if len(hours) > 1 else ""


def check_asr_engines(engines) -> tuple[str, ...]:
    """The ASR quickstart's engine list, or ``ValueError``: espeak must be among them (its word alignments start
    the training; the other engines have none) and every engine must be installed."""
    from speechedge.synth.engines import check_engines

    engines = tuple(engines)
    if "espeak" not in engines:
        raise ValueError(f"engines {list(engines)}: the quickstart needs espeak among them (its word alignments "
                         "start the training; the other engines have none)")
    check_engines(engines)
    return engines


def run_quickstart_asr(work: Path, *, seed: int = 0, progress: bool = True, steps: int = ASR_STEPS,
                       hours: float = 4.0, engines: tuple[str, ...] = ASR_ENGINES) -> int:
    """``engines``: the speech engines the synthesized speakers come from, in turn (only espeak-ng's
    utterances have word alignments, for the word-span curriculum)."""
    from speechedge.data_prep.librispeech import prepare_librispeech
    from speechedge.synth.corpora import synth_librispeech

    engines = check_asr_engines(engines)  # before anything is written: options.json would hold a bad value
    work.mkdir(parents=True, exist_ok=True)
    # engines always recorded: a folder of a version without them holds espeak-only stages
    _check_options(work, {"pipeline": "asr", "seed": seed, "steps": steps, "hours": hours, "engines": list(engines)})
    timings: dict[str, tuple[float, str]] = {}
    ls = _stage(work, "synth_librispeech", lambda: synth_librispeech(
        work / "LibriSpeech", hours=hours, num_speakers=max(12, round(24 * hours)), seed=seed,
        progress=progress, engines=engines).to_dict(), timings)
    _stage(work, "prepare_librispeech", lambda: prepare_librispeech(work / "LibriSpeech", work / "manifests"), timings)
    te = _stage(work, "train_teacher", lambda: _train_asr(work, "teacher", "asr_teacher_tiny.toml",
                                                          [f"seed={seed}"], steps), timings)
    st = _stage(work, "train_student", lambda: _train_asr(work, "student", "asr_student_tiny.toml", [
        f"seed={seed}", "distill=layer", f"teacher_exp_dir={work / 'exp' / 'teacher'}"], steps), timings)
    ev = _stage(work, "eval_asr", lambda: _eval_asr(work), timings)
    ex = _stage(work, "export_asr", lambda: _export_asr(work), timings)
    tr = _stage(work, "transcribe", lambda: _transcribe(work), timings)
    t_row = ev["teacher"][0]
    s_rows = ", ".join(f"{r['chunk_ms']} ms {r['cer']:.1f}/{r['wer']:.1f}" for r in ev["student"])
    fp = ex["models"]["fp32"]

    def quant(k: str, label: str) -> str:  # one quantized model's line of the export row
        q = ex["models"].get(k)
        if q is None:
            return ""
        return (f"; {label} {'REFUSED (CER > fp32 + 1) ' if ex.get(f'{k}_refused') else ''}{q['bytes']} bytes, "
                f"CER {q['cer']:.1f} vs fp32 {fp['cer']:.1f}, {q['median_ms_per_chunk']:.2f} ms per chunk")

    lines = [
        "# speechedge quickstart asr", "", "| stage | result | wall s | |", "|---|---|---:|---|",
        f"| synth LibriSpeech | {ls['num_files']} utterances, {ls['audio_s'] / 3600:.2f} h{_by_engine(ls)} | "
        f"{timings['synth_librispeech'][0]:.1f} | {timings['synth_librispeech'][1]} |",
        f"| train teacher (full context) | {te['steps']} steps, val CER {te['val_cer']:.1f} | "
        f"{timings['train_teacher'][0]:.1f} | {timings['train_teacher'][1]} |",
        f"| train streaming student (layer KD + aux. layers + APC, 320 ms chunks) | {st['steps']} steps, val CER "
        f"{st['val_cer']:.1f} | {timings['train_student'][0]:.1f} | {timings['train_student'][1]} |",
        f"| eval test-clean CER/WER % | teacher full context {t_row['cer']:.1f}/{t_row['wer']:.1f}; student {s_rows} | "
        f"{timings['eval_asr'][0]:.1f} | {timings['eval_asr'][1]} |",
        f"| export streaming TFLite step model | fp32 {fp['bytes']} bytes, max error {fp['max_err_rel_to_range']:.1e}, "
        f"{fp['median_ms_per_chunk']:.2f} ms per {ex['chunk_ms']} ms chunk ({fp['speed_vs_torch']:.1f}x torch)"
        f"{quant('int8', 'int8')}{quant('int16x8', '16x8')} | {timings['export_asr'][0]:.1f} | "
        f"{timings['export_asr'][1]} |",
        f"| streaming transcription (runtime, 100 ms blocks) | {tr['utterances']} utterances: fp32 CER {tr['fp32']['cer']:.1f}, "
        f"RTF {tr['fp32']['real_time_factor']:.3f}"
        + "".join(f"; {p} CER {tr[p]['cer']:.1f}, RTF {tr[p]['real_time_factor']:.3f}" for p in ("int8", "int16x8")
                  if p in tr)
        + f" | {timings['transcribe'][0]:.1f} | {timings['transcribe'][1]} |",
        "", "Examples (reference / streaming hypothesis):", "",
        *[f"- `{e['ref']}`\n  `{e['hyp']}`" for e in tr["examples"]],
        "", f"Total of the stage times: {sum(t for t, _ in timings.values()) / 60:.1f} min. Curves: "
        "exp/teacher/curves.png, exp/student/curves.png.",
    ]
    report = "\n".join(lines) + "\n"
    atomic_write_text(work / "report.md", report)
    print(report)
    print(f"report: {work / 'report.md'}")
    return 0
