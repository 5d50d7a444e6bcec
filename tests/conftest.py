"""Shared fixtures: seeded synthetic signals and small synthesized corpora (built once per session)."""

from __future__ import annotations

import numpy as np
import pytest

SR = 16000


def make_signal(kind: str, num_samples: int = SR, seed: int = 0) -> np.ndarray:
    """Seeded float32 test signals. Kinds: sine, noise, chirp, silence, clipped, speechlike, impulse."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / SR
    if kind == "sine":
        x = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    elif kind == "noise":
        x = 0.1 * rng.standard_normal(num_samples)
    elif kind == "chirp":
        x = 0.5 * np.sin(2 * np.pi * (100 * t + 0.5 * 7000 * t**2 / max(t[-1], 1e-9)))
    elif kind == "silence":
        x = np.zeros(num_samples)
    elif kind == "clipped":
        x = np.clip(2.0 * np.sin(2 * np.pi * 300.0 * t), -1, 1)
    elif kind == "speechlike":  # harmonic source with a moving formant and amplitude envelope, plus noise
        f0 = 120 + 30 * np.sin(2 * np.pi * 3 * t)
        phase = 2 * np.pi * np.cumsum(f0) / SR
        x = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
        x = 0.2 * x + 0.01 * rng.standard_normal(num_samples)
    elif kind == "impulse":
        x = np.zeros(num_samples)
        x[num_samples // 3] = 1.0
    else:
        raise ValueError(kind)
    return x.astype(np.float32)


SIGNALS = ("sine", "noise", "chirp", "silence", "clipped", "speechlike", "impulse")


@pytest.fixture(scope="session", autouse=True)
def _clip_cache(tmp_path_factory):
    """The KWS clip cache (training/kws_data.py) of the whole session lives in a temporary folder, never in
    the user's ~/.cache (subprocesses inherit it)."""
    import os

    old = os.environ.get("SPEECHEDGE_CACHE")
    os.environ["SPEECHEDGE_CACHE"] = str(tmp_path_factory.mktemp("clip_cache"))
    yield
    if old is None:
        os.environ.pop("SPEECHEDGE_CACHE", None)
    else:
        os.environ["SPEECHEDGE_CACHE"] = old


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def librispeech_dir(tmp_path_factory):
    """A tiny synthesized LibriSpeech tree with alignments (about 90 s of audio, 9 speakers)."""
    from speechedge.synth.corpora import synth_librispeech

    out = tmp_path_factory.mktemp("LibriSpeech")
    report = synth_librispeech(out, hours=0.025, num_speakers=9, seed=7, progress=False)
    return out, report


@pytest.fixture(scope="session")
def speech_commands_dir(tmp_path_factory):
    """A tiny synthesized Speech Commands v2 tree: 6 words x 10 clips."""
    from speechedge.synth.corpora import synth_speech_commands

    out = tmp_path_factory.mktemp("speech_commands")
    report = synth_speech_commands(out, words=("yes", "no", "up", "down", "left", "right"), per_word=10,
                                   seed=3, noise_seconds=3, progress=False)
    return out, report


@pytest.fixture(scope="session")
def gsc35(tmp_path_factory):
    """All 35 Speech Commands words x 4 clips (4 speakers), with 12 s noise files, and its manifests."""
    from speechedge.data_prep.speech_commands import prepare_speech_commands
    from speechedge.synth.corpora import synth_speech_commands

    out = tmp_path_factory.mktemp("gsc35")
    synth_speech_commands(out, per_word=4, seed=5, noise_seconds=12, progress=False)
    manifests = tmp_path_factory.mktemp("gsc35_manifests")
    prepare_speech_commands(out, manifests)
    return out, manifests


@pytest.fixture(scope="session")
def libriword_quick(librispeech_dir, tmp_path_factory):
    """A small LibriWord built from the session LibriSpeech fixture."""
    from speechedge.data_prep.libriword import LibriWordConfig, build_libriword

    root, _ = librispeech_dir
    out = tmp_path_factory.mktemp("libriword_quick")
    build_libriword(root, root / "alignments", out, LibriWordConfig(num_words=4, clips_per_word=4,
                    min_word_seconds=0.1), workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def kws_export(gsc35, tmp_path_factory):
    """A few-shot KWS experiment trained for 2 episodes and exported (fp32): ``(exp_dir, export_dir)``."""
    pytest.importorskip("litert_torch")
    from speechedge.export.kws import export_kws
    from speechedge.recipes.kws_fewshot import FewShotConfig, train
    from speechedge.training.config import load_config

    gsc_dir, manifests = gsc35
    root = tmp_path_factory.mktemp("kws_export")
    sets = [f"train_manifest={manifests / 'splitgsc_train.jsonl'}", f"val_manifest={manifests / 'splitgsc_val.jsonl'}",
            "shots=2", "queries=2", "open_queries=4", "eval_shots=2", "eval_queries=2", "eval_episodes=5",
            "threads=1", "steps=2", "eval_every=2"]
    train(load_config(FewShotConfig, None, sets), root / "exp")
    export_kws(root / "exp", root / "export", invokes=20, num_held_out=40)
    return root / "exp", root / "export"


@pytest.fixture(scope="session")
def asr_student(librispeech_dir, tmp_path_factory):
    """A streaming ASR student trained for 2 steps on the session corpus: ``(exp_dir, manifests_dir)``."""
    from speechedge.data_prep.librispeech import prepare_librispeech
    from speechedge.recipes.asr import ASRConfig, train
    from speechedge.training.config import load_config

    corpus, _ = librispeech_dir
    root = tmp_path_factory.mktemp("asr_student")
    prepare_librispeech(corpus, root / "manifests")
    sets = [f"train_manifest={root / 'manifests' / 'librispeech_train-clean-100.jsonl.gz'}",
            f"val_manifest={root / 'manifests' / 'librispeech_dev-clean.jsonl.gz'}", "d_model=32", "num_layers=2",
            "num_heads=2", "sub_channels=8", "conv_kernel=5", "chunk_frames=2", "left_chunks=2", "batch_frames=4000",
            "steps=2", "eval_every=2", "warmup_steps=1", "threads=2"]
    train(load_config(ASRConfig, None, sets), root / "exp")
    return root / "exp", root / "manifests"


@pytest.fixture(scope="session")
def asr_export(asr_student, tmp_path_factory):
    """The session ASR student exported (fp32 + int8 + 16x8 + dynamic-range int8): ``(report, export_dir)``."""
    pytest.importorskip("litert_torch")
    from speechedge.export.asr import export_asr

    exp, _ = asr_student
    out = tmp_path_factory.mktemp("asr_export") / "export"
    report = export_asr(exp, out, int8=True, int16x8=True, dynamic_int8=True, num_held_out=3, num_calibration=3,
                        invokes=20)
    return report, out


@pytest.fixture(scope="session", autouse=True)
def warm_numba():
    """Compile (or load from the on-disk cache) the Numba frontend kernels once per session, so the first
    test that touches them does not pay for it and per-test timings stay comparable."""
    from speechedge.features import FrontendConfig
    from speechedge.kernels import StreamingLogMel, log_mel

    x = np.zeros(1600, np.float32)
    log_mel(x, FrontendConfig.kws())
    StreamingLogMel(FrontendConfig.kws(center=False)).push(x)


@pytest.fixture
def killed_once_then_resumed(monkeypatch):
    """``run(train, cfg, exp_dir, at="plot", step=None)``: a training run that dies once and is started again
    in the same folder, as a user restarting a killed run would. ``at``: where it dies: ``plot`` (out of the
    first curve plot, which follows the metrics row and the checkpoint), ``before_checkpoint`` or
    ``after_checkpoint`` (around the write of the latest checkpoint of ``step``)."""
    from speechedge.training.loop import Experiment

    def run(train, cfg, exp_dir, at: str = "plot", step: int | None = None):
        if at == "plot":
            real_plot = Experiment.plot_curves

            def crash_once(self, keys):
                real_plot(self, keys)
                monkeypatch.setattr(Experiment, "plot_curves", real_plot)
                raise KeyboardInterrupt("killed after the first checkpoint")

            monkeypatch.setattr(Experiment, "plot_curves", crash_once)
        else:
            real_save = Experiment.save

            def crash_at(self, state, path):
                if path == self.latest and state["step"] == step:
                    monkeypatch.setattr(Experiment, "save", real_save)
                    if at == "after_checkpoint":
                        real_save(self, state, path)
                    raise KeyboardInterrupt(f"killed {at.replace('_', ' ')} {step}")
                real_save(self, state, path)

            monkeypatch.setattr(Experiment, "save", crash_at)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, exp_dir)
        return train(cfg, exp_dir)  # the lock of the dead run does not block this one

    return run


def assert_same_run(straight, resumed, steps: int, eval_steps: list[int]) -> None:
    """Two experiment folders ended at ``steps`` with bit-identical weights and the same metric rows."""
    import json

    import torch

    a = torch.load(straight / "checkpoint-latest.pt", weights_only=True)
    b = torch.load(resumed / "checkpoint-latest.pt", weights_only=True)
    assert a["step"] == b["step"] == steps
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    rows = [json.loads(x) for x in (resumed / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == eval_steps
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in ref]
