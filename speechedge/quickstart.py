"""``speechedge quickstart``: the main job, run offline on synthesized data.

Stages so far: synthesize a small LibriSpeech-layout corpus (with word alignments) and a Speech
Commands-layout corpus; build LibriWord and the Speech Commands / splitGSC manifests from them; compute
log-mel features of every file with the Numba kernel; train a BC-ResNet-1 few-shot model with dummy
prototypes and LibriWord supervision (tiny config); evaluate 5-way 1-/5-shot accuracy and open-set AUROC
on the test keywords; export the embedding network to a verified fp32 TFLite model; print a summary.
Later stages (int8 export, the streaming demo, ASR) are added as they land. Finished stages are reused when the command is run again (delete the work
folder to start over).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .io import atomic_write_text


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

    from .audio import read_audio
    from .features import FrontendConfig
    from .kernels import log_mel

    config = FrontendConfig.kws()
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


def _libriword(work: Path, seed: int, progress: bool) -> dict:
    from .data_prep.libriword import LibriWordConfig, build_libriword

    # a tiny corpus: fewer words and clips than the reference 1000 x 300, and synthetic speech is fast,
    # so words as short as 0.1 s count
    cfg = LibriWordConfig(num_words=30, clips_per_word=20, min_word_seconds=0.1, seed=seed)
    stats = build_libriword(work / "LibriSpeech", work / "LibriSpeech" / "alignments", work / "libriword", cfg,
                            progress=progress)
    return {k: v for k, v in stats.items() if k not in ("config", "corpus", "top_words")}


def _prepare_gsc(work: Path) -> dict:
    from .data_prep.speech_commands import prepare_speech_commands

    return prepare_speech_commands(work / "speech_commands", work / "manifests")


def _train_fewshot(work: Path, seed: int) -> dict:
    from importlib.resources import files

    from .recipes.kws_fewshot import FewShotConfig, train
    from .training import load_config

    toml = files("speechedge.recipes") / "configs" / "kws_fewshot_tiny.toml"
    cfg = load_config(FewShotConfig, str(toml), [
        f"train_manifest={work / 'manifests' / 'splitgsc_train.jsonl'}",
        f"val_manifest={work / 'manifests' / 'splitgsc_val.jsonl'}",
        f"noise_dir={work / 'speech_commands' / '_background_noise_'}",
        f"libriword_manifest={work / 'libriword' / 'manifest.jsonl'}", f"seed={seed}"])
    record = train(cfg, work / "exp" / "kws_fewshot")
    return {"steps": cfg.steps, "method": cfg.method, "aux_weight": cfg.aux_weight, **record}


def _eval_fewshot(work: Path) -> dict:
    from .recipes.kws_fewshot import evaluate_experiment

    metrics, _, _ = evaluate_experiment(work / "exp" / "kws_fewshot", work / "manifests" / "splitgsc_test.jsonl",
                                        ways=5, shots=(1, 5), queries=5, episodes=300, seed=0)
    return {k: {m: round(v, 4) for m, v in r.items()} for k, r in metrics.items()}


def _export(work: Path) -> dict:
    from .export.kws import export_kws

    report = export_kws(work / "exp" / "kws_fewshot", work / "export" / "kws_fewshot", invokes=1000)
    fp = report["models"]["fp32"]
    return {"bytes": fp["bytes"], "max_err_rel": fp["max_err_rel_to_range"], "agreement": fp["decision_agreement"],
            "invoke_ms": fp["median_invoke_ms"], "speed_vs_torch": fp["speed_vs_torch"]}


def run_quickstart(work: Path, *, seed: int = 0, progress: bool = True) -> int:
    from .synth.corpora import synth_librispeech, synth_speech_commands

    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, tuple[float, str]] = {}
    ls = _stage(work, "synth_librispeech", lambda: synth_librispeech(
        work / "LibriSpeech", hours=0.3, num_speakers=20, seed=seed, progress=progress).to_dict(), timings)
    gsc = _stage(work, "synth_speech_commands", lambda: synth_speech_commands(
        work / "speech_commands", per_word=12, seed=seed, noise_seconds=30, progress=progress).to_dict(), timings)
    lw = _stage(work, "libriword", lambda: _libriword(work, seed, progress), timings)
    gp = _stage(work, "prepare_speech_commands", lambda: _prepare_gsc(work), timings)
    files = sorted((work / "LibriSpeech").rglob("*.flac")) + sorted((work / "speech_commands").rglob("*.wav"))
    feats = _stage(work, "features", lambda: _features_summary(files, progress), timings)
    tr = _stage(work, "train_kws_fewshot", lambda: _train_fewshot(work, seed), timings)
    ev = _stage(work, "eval_kws_fewshot", lambda: _eval_fewshot(work), timings)
    ex = _stage(work, "export_kws_fewshot", lambda: _export(work), timings)

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
        f"AUROC {ev['5shot']['auroc']:.3f} | {timings['eval_kws_fewshot'][0]:.1f} | {timings['eval_kws_fewshot'][1]} |",
        f"| export TFLite fp32 (int8 not yet) | {ex['bytes']} bytes, max error {ex['max_err_rel']:.1e} of the output range, "
        f"decision agreement {ex['agreement']:.3f}, {ex['invoke_ms']:.2f} ms per invoke ({ex['speed_vs_torch']:.1f}x torch) "
        f"| {timings['export_kws_fewshot'][0]:.1f} | {timings['export_kws_fewshot'][1]} |",
    ]
    report = "\n".join(lines) + "\n"
    atomic_write_text(work / "report.md", report)
    print(report)
    print(f"report: {work / 'report.md'}")
    return 0
