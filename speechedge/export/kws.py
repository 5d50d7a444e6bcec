"""Export a trained KWS experiment to TFLite (fp32 and full-integer int8), verified against PyTorch.

    speechedge export --exp-dir exp/fs --out export/fs [--int8] [--calibration MANIFEST] [--target phone|mcu]

What is exported: for a supervised experiment the classifier (features ``(1, 1, F, T)`` -> logits), for a
few-shot experiment the embedding network (-> ``(1, 4b)`` embedding; prototypes are computed on the device
from enrolment clips). The frontend is not in the graph: the device computes it with the Numba kernel from
``frontend.json``, the frontend config the model was trained with (taken from the checkpoint).

Verification, always run, on held-out clips (the experiment's validation manifest), end to end: audio ->
PyTorch with its torch frontend (as in training) against audio -> Numba frontend -> TFLite (as on the device),
so a frontend that differs from training shows:

- fp32: max |TFLite - PyTorch| <= 1e-4 x the range of the PyTorch outputs;
- int8 (int8 input and output, post-training quantization calibrated on training clips at several input
  levels): refused unless its decisions agree with PyTorch's on >= 98% of the held-out clips (top-1 for a
  classifier, nearest-prototype decisions in 5-way 5-shot episodes for an embedding network) and its
  accuracy is at most 1 point below fp32's (the README states this budget and where the models stand);
- accuracy of each, file size, and the median per-invoke latency over 1000 invokes on one thread for TFLite
  fp32, TFLite int8 and torch eager.

When a check fails the command exits non-zero and writes no model: everything is written to a temporary
folder that replaces ``--out`` only after all checks passed. With ``--target mcu`` the int8 model is also
written as a C array, every op is checked against the TensorFlow Lite Micro builtins (failing with the op's
name), and flash and tensor-arena sizes are estimated against ``--flash-kb`` / ``--ram-kb``.

A log-mel model also gets ``level.json`` (:class:`speechedge.features.InputLevel`): the runtime brings input
quieter than the held-out clips (their 10th percentile of peak frame energy) up to that level before the model.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from speechedge.audio import fit_length, from_int16, trim_silence
from speechedge.features import LEVEL_WINDOW_S, InputLevel
from speechedge.io import atomic_write_text
from speechedge.kernels import log_mel
from speechedge.models import load_checkpoint
from speechedge.models.fewshot import EpisodeSampler
from speechedge.models.kws import FewShotKWS, KWSClassifier
from speechedge.runtime.tflite import TFLiteModel, median_invoke_ms, quantize

from . import ExportError, check_out_dir, replace_folder
from .quantize import check_int8_options, quantize_int8
from .tflite_tools import (arena_estimate, check_tflm_ops, firmware_files, strip_tensor_names, tflm_run,
                           tflm_vs_litert_lsb)

log = logging.getLogger(__name__)

#: the int8 accuracy budget: a model is refused unless both hold on the held-out clips
INT8_MIN_AGREEMENT = 0.98  # decisions (top-1, or 5-way 5-shot nearest prototype) equal to fp32's
INT8_MAX_ACCURACY_DROP = 0.01  # accuracy (top-1, or 5-way 5-shot episodes) at most 1 point below fp32
#: calibration input levels: the clips as they are plus copies of half of them at these gains (a device's
#: input level varies; min/max calibration on one level clipped louder speech at the int8 input)
CALIBRATION_GAINS = (0.25, 2.0, 4.0)
#: the input level normalization's target (``level.json``, :class:`speechedge.features.InputLevel`): this quantile
#: of the held-out clips' peak frame energy, so that only input quieter than nearly all training speech is boosted
LEVEL_QUANTILE = 0.1
#: rows of the streaming detector's background set (a mean distance: 512 windows estimate it to ~1%, and the
#: shipped folder stays under 1 MB with both models)
STREAM_BACKGROUND_SIZE = 512

__all__ = ["ExportError", "export_kws"]


def _load(exp_dir: Path):
    """(model, checkpoint) of a KWS experiment."""
    model, ckpt = load_checkpoint(exp_dir, "best")
    if not isinstance(model, (KWSClassifier, FewShotKWS)):
        raise ValueError(f"{exp_dir}: not a KWS experiment ({ckpt['arch'].get('name')}); train with `speechedge "
                         "train kws` or `speechedge train kws-fewshot`")
    return model, ckpt


def _clips(model, manifest: str, limit: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Up to ``limit`` clips of a manifest as float32 audio ``(N, clip_samples)`` and their labels."""
    from speechedge.training.kws_data import load_manifest_clips

    clips = load_manifest_clips(manifest, sample_rate=model.frontend.config.sample_rate,
                                clip_samples=model.clip_samples)
    idx = np.sort(np.random.default_rng(seed).permutation(len(clips))[:limit])
    return from_int16(clips.audio[idx]), [clips.labels[i] for i in idx]


def background_audio(model, cfg: dict, held_out_audio: np.ndarray, rng: np.random.Generator,
                     speech_manifest: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Non-keyword audio for the detector's background set: ``(speech, noise)``.

    Speech is the held-out clips plus up to 400 clips of ``speech_manifest`` (default: the experiment's LibriWord
    manifest, when it has one), voiced parts strung together with 0-0.4 s pauses (partial words and word pairs,
    as a stream shows them); noise is the training noise folder (None without one).
    """
    from speechedge.manifest import ClipRecord, read_manifest
    from speechedge.training.augment import load_noise_bank
    from speechedge.training.kws_data import _load_rows

    sr, n = model.frontend.config.sample_rate, model.clip_samples
    clips = list(held_out_audio)
    speech_manifest = speech_manifest or cfg.get("libriword_manifest")
    if speech_manifest:
        path = Path(speech_manifest)
        rows = list(read_manifest(path, ClipRecord))
        pick = [rows[i] for i in np.sort(rng.permutation(len(rows))[:400])]
        clips += list(from_int16(_load_rows(pick, path.parent, sr, n, path.name).audio))
    parts = []
    for i in rng.permutation(len(clips)):
        parts += [trim_silence(clips[i]), np.zeros(int(sr * rng.uniform(0, 0.4)), np.float32)]
    noise = load_noise_bank(cfg.get("noise_dir"), sr) if cfg.get("noise_dir") else None
    return np.concatenate(parts).astype(np.float32), (noise.numpy() if noise is not None else None)


def background_embeddings(model, net, speech: np.ndarray, noise: np.ndarray | None, rng: np.random.Generator, *,
                          size: int = 1024, stride_s: float = 0.1, level: InputLevel | None = None) -> np.ndarray:
    """Embeddings of non-keyword windows (:func:`background_audio`, cut into model-sized windows every
    ``stride_s``; about 15% of the set are noise windows): the runtime's background set (``background.npy``),
    which calibrates the detector's per-keyword scale at enrolment
    (:meth:`speechedge.runtime.KWSModel.detection_scores`). ``size`` rows, float16. With the model's input
    ``level`` each window is normalized as the runtime's detector normalizes it.
    """
    sr, n = model.frontend.config.sample_rate, model.clip_samples
    step = int(sr * stride_s)
    windows = [speech[i: i + n] for i in range(0, len(speech) - n, step)]
    n_noise = int(0.15 * size) if noise is not None else 0
    speech_idx = np.sort(rng.permutation(len(windows))[: size - n_noise])
    batch = [windows[i] for i in speech_idx]
    if n_noise:
        starts = rng.integers(0, max(1, len(noise) - n), n_noise)
        batch += [fit_length(noise[s: s + n], n) for s in starts]
    x = torch.from_numpy(np.stack(batch).astype(np.float32))
    floor = model.frontend.config.log_floor

    def feats(a: torch.Tensor) -> torch.Tensor:
        f = model.features(a)
        return f if level is None else torch.from_numpy(np.stack([level.apply(w, floor) for w in f.numpy()]))

    with torch.no_grad():
        emb = np.concatenate([net(feats(x[i: i + 128])[:, None]).numpy() for i in range(0, len(x), 128)])
    return emb.astype(np.float16)


def _episode_agreement(a: np.ndarray, b: np.ndarray, labels: list[str], episodes: int = 200) -> tuple[float, float, float]:
    """Agreement of 5-way 5-shot nearest-prototype decisions from two embedding sets, and each's accuracy."""
    ids = np.unique(labels, return_inverse=True)[1]
    counts = np.sort(np.bincount(ids))[::-1]
    ways = min(5, len(counts))
    # the largest shots (<= 5, with 1 query or more) that `ways` classes of the held-out set can fill
    room = int(counts[ways - 1])
    if room < 2:
        raise ExportError(f"held-out set too small for episodes: need {ways} classes with >= 2 clips")
    shots = min(5, room - 1)
    sampler = EpisodeSampler(ids, ways, shots, min(5, room - shots), 0, seed=0)
    agree = acc_a = acc_b = n = 0
    for _ in range(episodes):
        ep = sampler.sample()
        preds = []
        for e in (a, b):
            protos = e[ep.support].mean(axis=1)
            d = ((e[ep.query][:, None, :] - protos[None]) ** 2).sum(-1)
            preds.append(d.argmin(1))
        agree += int((preds[0] == preds[1]).sum())
        acc_a += int((preds[0] == ep.query_labels).sum())
        acc_b += int((preds[1] == ep.query_labels).sum())
        n += len(ep.query)
    return agree / n, acc_a / n, acc_b / n


def open_set_threshold(emb: np.ndarray, labels: list[str], shots: int = 5, quantile: float = 0.95) -> float:
    """Squared distance under which ``quantile`` of held-out clips fall from their own class's ``shots``-shot
    prototype: the runtime's default unknown threshold (about 5% false rejects on data like the held-out set)."""
    d = []
    for w in sorted(set(labels)):
        e = emb[[i for i, x in enumerate(labels) if x == w]]
        k = min(shots, len(e) - 1)
        if k < 1:
            continue
        proto = e[:k].mean(0)
        d.extend(((e[k:] - proto) ** 2).sum(1).tolist())
    if not d:
        raise ExportError("held-out set has no class with 2 or more clips; cannot set the open-set threshold")
    return float(np.quantile(d, quantile))


def _convert_fp32(net, example: torch.Tensor) -> bytes:
    import litert_torch

    with tempfile.TemporaryDirectory() as d:
        litert_torch.convert(net, (example,)).export(f"{d}/m.tflite")
        return Path(f"{d}/m.tflite").read_bytes()


def _convert_int8(fp32: bytes, calib: np.ndarray, ranges: str = "mse", weights: str = "channel") -> bytes:
    """Full-integer int8 of the fp32 flatbuffer (:func:`speechedge.export.quantize.quantize_int8`: static
    wi8/ai8, int8 input and output), calibrated on ``calib`` feature windows one at a time.

    (litert-torch's PT2E path was tried first: it leaves QUANTIZE/DEQUANTIZE pairs and float activations
    around mean pooling, SiLU and the SubSpectralNorm affine, so its "int8" file kept 197 KB of float
    activations.)
    """
    spec = next(iter(TFLiteModel(fp32).it.get_signature_list().values()))
    return quantize_int8(fp32, [{spec["inputs"][0]: c[None]} for c in calib], ranges, weights)


def _int8_budget(checks: dict, prefix: str, key: str, agreement: float, acc_fp32: float, acc_int8: float) -> list[str]:
    """The int8 accuracy budget (README): ``>= 98%`` of the decisions unchanged and accuracy at most 1 point below
    fp32. Records both checks under ``prefix`` and returns the failures' messages."""
    failures = []
    checks[f"{prefix}_{key}>=0.98"] = ok = agreement >= INT8_MIN_AGREEMENT
    if not ok:
        failures.append(f"{prefix} {key} {agreement:.4f} < {INT8_MIN_AGREEMENT}")
    drop = acc_fp32 - acc_int8
    checks[f"{prefix}_accuracy_within_1_point"] = ok = drop <= INT8_MAX_ACCURACY_DROP
    if not ok:
        failures.append(f"{prefix} accuracy {acc_int8:.4f} is {100 * drop:.1f} points below fp32 ({acc_fp32:.4f})")
    return failures


def _mcu_checks(checks: dict, info: dict, blob: bytes, prefix: str, flash_kb: float, ram_kb: float,
                budget: bool = True) -> list[str]:
    """TensorFlow Lite Micro's op set first (a model with a missing op is not run), then flash and the arena TFLM
    allocates (the static live-activation estimate without ``tflite-micro``) against the budgets; the figures
    go into ``info``, the checks into ``checks``; returns the failures' messages. ``budget=False`` measures and
    reports flash and arena without checking them (a model the device will not run: ``--mcu-model stream``)."""
    failures = []
    missing = check_tflm_ops(blob)
    info.update({"tflm_ops_missing": missing, "flash_bytes": len(blob)})
    checks[f"{prefix}tflm_ops"] = not missing
    if missing:
        return [f"{prefix}model ops not in TensorFlow Lite Micro: {', '.join(missing)}"]
    tflm = tflm_run(blob, None)
    if tflm is not None:
        info.update({"tflm_arena_bytes": tflm["arena_bytes"], "tflm_arena_head_bytes": tflm["arena_head_bytes"],
                     "tflm_arena_tail_bytes": tflm["arena_tail_bytes"]})
        arena, what = tflm["arena_bytes"], "TFLM measured a tensor arena of"
    else:
        arena = info["peak_activation_bytes"] = arena_estimate(blob)["peak_activation_bytes"]
        what = "peak activations (TFLM not installed)"
    info["budget_checked"] = budget
    if not budget:
        return failures
    checks[f"{prefix}flash_within_budget"] = ok = len(blob) <= flash_kb * 1024
    if not ok:
        failures.append(f"{prefix}int8 model is {len(blob)} bytes, over the {flash_kb:g} KB flash budget")
    checks[f"{prefix}arena_within_budget"] = ok = arena <= ram_kb * 1024
    if not ok:
        failures.append(f"{prefix}{what} {arena} bytes, over the {ram_kb:g} KB RAM budget")
    return failures


def export_kws(exp_dir: str | Path, out_dir: str | Path, *, int8: bool = False, calibration: str | None = None,
               target: str = "phone", held_out: str | None = None, num_held_out: int = 200, num_calibration: int = 200,
               invokes: int = 1000, flash_kb: float = 64.0, ram_kb: float = 64.0,
               background_manifest: str | None = None, stream_chunk_ms: float = 100.0, int8_ranges: str = "mse",
               int8_weights: str = "tensor", mcu_model: str = "both", fallback_phone: bool = False) -> dict:
    """Export, verify and write; returns the report. Raises :class:`ExportError` when a check fails.

    ``fallback_phone`` (with ``target="mcu"``): when only int8 or microcontroller checks fail and the fp32 models
    pass theirs, write the phone export (fp32 models, no int8 model, no firmware files) instead of nothing, and
    move the int8 measurements and the failed checks to ``report["int8_refused"]``: what trying ``mcu`` and then
    ``phone`` gives, converting and checking the fp32 models once (the quickstart's export).

    ``background_manifest``: word clips for the detector's background set (default: the experiment's
    LibriWord manifest; name another where that corpus is not on this machine, e.g. a model trained elsewhere).
    ``stream_chunk_ms``: a few-shot model also gets its streaming step model (``stream_fp32.tflite``, one
    decision per chunk; :mod:`speechedge.export.kws_stream`); 0 leaves it out. ``int8_ranges``: how the int8
    activation ranges are calibrated (``mse`` or ``average``) and ``int8_weights`` their weight scales
    (``channel`` or ``tensor``): :func:`speechedge.export.quantize.quantize_int8`. One scale per weight tensor is
    the default here: on BC-ResNet-1 and -3 it keeps the decisions per-channel scales keep (README, "Export")
    in a file 0.39-0.71x the fp32 one instead of 0.58-0.96x (per-channel scales and int64 zero points).
    ``mcu_model``: which int8 models the microcontroller runs, so which must meet ``flash_kb`` / ``ram_kb``:
    ``both`` (the window and the streaming step model) or ``stream`` (a few-shot model's step model only: the
    window model's flash and arena are still measured and reported, not checked; its TFLM op check and its int8
    accuracy budget still apply, since hosts run it, and its firmware files are still written).
    """
    exp_dir, out_dir = Path(exp_dir), Path(out_dir)
    if target not in ("phone", "mcu"):
        raise ValueError(f"--target must be phone or mcu, got {target!r}")
    if mcu_model not in ("both", "stream") or (mcu_model == "stream" and (not stream_chunk_ms or target != "mcu")):
        raise ValueError(f"--mcu-model must be both or stream (stream is for --target mcu with the step model: "
                         f"--stream-chunk-ms > 0), got {mcu_model!r}")
    check_int8_options(int8_ranges, int8_weights, ("int8_ranges (--int8-ranges)", "int8_weights (--int8-weights)"))
    if fallback_phone and target != "mcu":
        raise ValueError("fallback_phone goes with target='mcu' (a phone export has no int8 model to fall back from)")
    if target == "mcu":
        int8 = True  # microcontrollers run the integer model
    check_out_dir(out_dir, exp_dir)  # before any work: never replace what the toolkit did not write
    model, ckpt = _load(exp_dir)
    cfg = ckpt["config"]
    kind = "classifier" if isinstance(model, KWSClassifier) else "embedding"
    if mcu_model == "stream" and kind != "embedding":
        raise ValueError("--mcu-model stream: only a few-shot (embedding) model has a streaming step model; a "
                         "classifier's window model is what the device runs (leave --mcu-model at both)")
    speech = background_manifest or (cfg.get("libriword_manifest") if kind == "embedding" else None)
    if speech and not Path(speech).is_file():  # before the conversion and checks, not after them
        raise ExportError(f"{speech}: no such manifest for the detector's background speech ("
                          + ("--background-manifest" if background_manifest else
                             "the experiment's libriword_manifest; name one that is here with --background-manifest")
                          + ")")
    vocab = ckpt["meta"].get("vocab") if kind == "classifier" else None
    fe = model.frontend.config
    net = model.graph()
    audio, labels = _clips(model, held_out or cfg["val_manifest"], num_held_out)
    feats = log_mel(audio, fe)[:, None].astype(np.float32)  # (N, 1, F, T): the device's features (Numba)
    # the runtime brings windows quieter than most held-out clips up to their level (level.json; log-mel only)
    level = None if fe.n_mfcc else InputLevel(round(InputLevel.peak_db(feats[:, 0], fe.log_floor, LEVEL_QUANTILE), 2),
                                              window_s=LEVEL_WINDOW_S)
    example = torch.from_numpy(feats[:1])
    torch.set_num_threads(1)
    with torch.no_grad():  # the reference: audio -> torch frontend -> PyTorch, as in training
        ref = np.concatenate([net(model.features(torch.from_numpy(audio[i : i + 64]))[:, None]).numpy()
                              for i in range(0, len(audio), 64)])
    t0 = time.perf_counter()
    models = {"fp32": strip_tensor_names(_convert_fp32(net, example))}
    if int8:
        calib_audio, _ = _clips(model, calibration or cfg["train_manifest"], num_calibration, seed=1)
        half = calib_audio[: max(1, len(calib_audio) // 2)]
        calib_audio = np.concatenate([calib_audio] + [np.clip(half * g, -1, 1) for g in CALIBRATION_GAINS])
        models["int8"] = strip_tensor_names(_convert_int8(models["fp32"], log_mel(calib_audio, fe)[:, None],
                                                           int8_ranges, int8_weights))
    report: dict = {"exp_dir": str(exp_dir), "kind": kind, "int8_ranges": int8_ranges if int8 else None,
                    "int8_weights": int8_weights if int8 else None, "input_shape": list(feats.shape[1:]),
                    "clip_samples": model.clip_samples,
                    "output": "logits" if kind == "classifier" else "embedding", "held_out_clips": len(feats),
                    "convert_s": round(time.perf_counter() - t0, 1), "models": {}, "checks": {},
                    "input_level": level.to_dict() if level is not None else None}
    label_ids = np.array([vocab.index(w) for w in labels]) if vocab else None
    with torch.no_grad():
        t_torch = []
        for _ in range(min(invokes, 300) + 10):
            t1 = time.perf_counter()
            net(example)
            t_torch.append(time.perf_counter() - t1)
    torch_ms = float(np.median(t_torch[10:]) * 1000)
    report["torch_eager_ms"] = round(torch_ms, 4)
    failures = []
    for name, blob in models.items():
        tfl = TFLiteModel(blob)
        out = np.concatenate([tfl(f[None])[0] for f in feats])
        err = float(np.abs(out - ref).max())
        rng = float(np.ptp(ref))
        ms = median_invoke_ms(tfl, feats[:1], n=invokes)
        m = {"bytes": len(blob), "max_abs_err": err, "max_err_rel_to_range": err / rng, "median_invoke_ms": round(ms, 4),
             "speed_vs_torch": round(torch_ms / ms, 2)}
        if kind == "classifier":
            m["top1_agreement"] = float((out.argmax(1) == ref.argmax(1)).mean())
            m["accuracy"] = float((out.argmax(1) == label_ids).mean())
            report["torch_accuracy"] = float((ref.argmax(1) == label_ids).mean())
        else:
            agree, acc_torch, acc_tfl = _episode_agreement(ref, out, labels)
            m["decision_agreement"] = agree
            m["episode_accuracy"] = acc_tfl
            report["torch_episode_accuracy"] = acc_torch
        report["models"][name] = m
    fp = report["models"]["fp32"]
    report["checks"]["fp32_max_err_rel_to_range<=1e-4"] = ok = fp["max_err_rel_to_range"] <= 1e-4
    if not ok:
        failures.append(f"fp32 max error {fp['max_abs_err']:.3g} is {fp['max_err_rel_to_range']:.3g} of the output range (> 1e-4)")
    if int8:  # the accuracy budget (README): within 1 point of fp32, and >= 98% of the decisions unchanged
        q = report["models"]["int8"]
        key = "top1_agreement" if kind == "classifier" else "decision_agreement"
        acc_key = "accuracy" if kind == "classifier" else "episode_accuracy"
        failures += _int8_budget(report["checks"], "int8", key, q[key], fp[acc_key], q[acc_key])
    if target == "mcu":
        mem = arena_estimate(models["int8"])  # static: live activations only (a lower bound of the arena)
        report["mcu"] = {**mem, "flash_budget_bytes": int(flash_kb * 1024), "ram_budget_bytes": int(ram_kb * 1024)}
        failures += _mcu_checks(report["checks"], report["mcu"], models["int8"], "", flash_kb, ram_kb,
                                budget=mcu_model == "both")
        if "tflm_arena_bytes" in report["mcu"]:  # TFLM against LiteRT on the same int8 inputs
            x8 = quantize(feats[:50], TFLiteModel(models["int8"]).inputs[0])
            report["mcu"]["tflm_vs_litert_max_lsb"] = tflm_vs_litert_lsb(models["int8"], [[x[None]] for x in x8])
    stream: dict = {}  # the streaming step model of a few-shot export (export_stream's result)
    if kind == "embedding":
        report["open_set_threshold"] = round(open_set_threshold(ref, labels), 4)
        rng = np.random.default_rng(0)  # one generator through both: the same set as exports before the split
        speech_audio, noise_audio = background_audio(model, cfg, audio, rng, background_manifest)
        background = background_embeddings(model, net, speech_audio, noise_audio, rng, level=level)
        report["background_embeddings"] = len(background)
        if stream_chunk_ms:  # the streaming step model (export/kws_stream.py), checked like the window model
            from .kws_stream import export_stream, stream_background

            stream = export_stream(model, net.encoder, audio, ref, labels, stream_chunk_ms, invokes,
                                   _episode_agreement, calib_audio if int8 else None, int8_ranges, int8_weights)
            report["stream"] = stream["report"]
            if int8:  # the same accuracy budget as the window model, against the fp32 step model
                s8 = stream["report"]["int8"]
                failures += _int8_budget(report["checks"], "stream_int8", "decision_agreement",
                                         s8["decision_agreement"], s8["fp32_episode_accuracy"], s8["episode_accuracy"])
                if target == "mcu":  # the microcontroller's streaming model: TFLM ops, flash and arena budgets
                    failures += _mcu_checks(report["checks"], s8, stream["int8"], "stream_", flash_kb, ram_kb)
                    if not s8["tflm_ops_missing"] and "tflm_arena_bytes" in s8:
                        from .kws_stream import tflm_step_lsb  # TFLM vs LiteRT on the same raw int8 inputs

                        s8["tflm_vs_litert_max_lsb"] = tflm_step_lsb(stream["int8"], stream["spec"], [
                            log_mel(a, fe) for a in stream["held_out_padded"][:4]])
            report["checks"]["stream_fp32_max_err_rel_to_range<=1e-4"] = ok = \
                stream["report"]["max_err_rel_to_range"] <= 1e-4
            if not ok:
                failures.append(f"streaming model max error {stream['report']['max_abs_err']:.3g} is "
                                f"{stream['report']['max_err_rel_to_range']:.3g} of the output range (> 1e-4)")
            background_stream = stream_background(model, net.encoder, stream["stream"], speech_audio, noise_audio,
                                                  STREAM_BACKGROUND_SIZE, np.random.default_rng(1))
    fp32_checks = ("fp32_max_err_rel_to_range<=1e-4", "stream_fp32_max_err_rel_to_range<=1e-4")
    if failures and fallback_phone and all(report["checks"].get(k, True) for k in fp32_checks):
        failed = [k for k, v in report["checks"].items() if not v]
        report["int8_refused"] = {"failed_checks": failed, "failures": failures, "int8": report["models"].pop("int8"),
                                  **({"stream_int8": report["stream"].pop("int8")} if "int8" in stream else {}),
                                  **({"mcu": report.pop("mcu")} if "mcu" in report else {})}
        report["checks"] = {k: v for k, v in report["checks"].items() if k in fp32_checks}
        models.pop("int8")
        stream.pop("int8", None)
        target, failures = "phone", []
        log.warning("%s: the int8 model failed its checks (%s); writing the phone (fp32) export", exp_dir,
                    ", ".join(failed))
    report["target"] = target
    report["passed"] = not failures
    if failures:
        raise ExportError(f"{exp_dir}: export failed its checks, nothing written to {out_dir}: " + "; ".join(failures)
                          + "\nreport: " + json.dumps({k: report[k] for k in ("models", "checks", "mcu", "stream")
                                                      if k in report},
                                                     indent=1), report)

    def write(tmp: Path) -> None:
        for name, blob in models.items():
            (tmp / f"model_{name}.tflite").write_bytes(blob)
        fe.save(tmp / "frontend.json")
        if level is not None:
            level.save(tmp / "level.json")
        if vocab:
            (tmp / "labels.txt").write_text("\n".join(vocab) + "\n")
        else:  # few-shot: the open-set rule the runtime applies to enrolled prototypes
            np.save(tmp / "background.npy", background)  # the detector's calibration set (runtime/kws.py)
            if stream_chunk_ms:
                (tmp / "stream_fp32.tflite").write_bytes(stream["blob"])
                if "int8" in stream:
                    (tmp / "stream_int8.tflite").write_bytes(stream["int8"])
                (tmp / "stream.json").write_text(json.dumps(stream["spec"], indent=2) + "\n")
                np.save(tmp / "background_stream.npy", background_stream)
            if model.dummy is not None:  # D-ProtoNet's generator, run by the host
                np.savez(tmp / "dummy_prototypes.npz", **{k: v.numpy() for k, v in model.dummy.state_dict().items()})
            (tmp / "fewshot.json").write_text(json.dumps({
                "method": cfg["method"], "distance": "squared_euclidean", "temperature": float(cfg["temperature"]),
                "gamma": float(cfg["gamma"]), "threshold": report["open_set_threshold"],
                "threshold_rule": "0.95 quantile of held-out distances to their own 5-shot class prototype",
                "unknown_rule": "dummy prototypes (dummy_prototypes.npz)" if model.dummy is not None else "threshold"},
                indent=2) + "\n")
        if target == "mcu":
            mcu = report["mcu"]
            measured = "tflm_arena_bytes" in mcu
            header, source = firmware_files(
                models["int8"], "kws_model", fe,
                arena_bytes=mcu["tflm_arena_bytes"] if measured else mcu["peak_activation_bytes"],
                arena_source="measured by TensorFlow Lite Micro (tflite-micro)" if measured else
                "static estimate of live activations only; TFLM adds its persistent data: install tflite-micro "
                "and re-export to measure", level=level)
            (tmp / "kws_model.h").write_text(header)
            (tmp / "kws_model.cc").write_text(source)
            s8 = report.get("stream", {}).get("int8", {})
            if "int8" in stream:  # the streaming step model for the same firmware, with its state table
                header, source = firmware_files(
                    stream["int8"], "kws_stream_model", fe, stream=stream["spec"],
                    arena_bytes=s8.get("tflm_arena_bytes") or s8["peak_activation_bytes"],
                    arena_source="measured by TensorFlow Lite Micro (tflite-micro)" if s8.get("tflm_arena_bytes") else
                    "static estimate of live activations only; TFLM adds its persistent data: install tflite-micro "
                    "and re-export to measure", level=level)
                (tmp / "kws_stream_model.h").write_text(header)
                (tmp / "kws_stream_model.cc").write_text(source)
        atomic_write_text(tmp / "report.json", json.dumps(report, indent=2))

    replace_folder(out_dir, write)
    return report
