"""Packaging and CLI: the on-device path imports without torch, every verb has accurate help, the wheel installs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from speechedge import __version__
from speechedge.apps.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
VERBS = ("synth", "prepare", "train", "eval", "export", "demo", "bench", "quickstart", "align")

BLOCK_TORCH = textwrap.dedent("""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in {"torch", "librosa", "torchaudio"}:
                raise ImportError(f"{name} is blocked in this test")
    sys.meta_path.insert(0, Block())
""")


def _run_python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_on_device_path_imports_and_runs_without_torch():
    code = BLOCK_TORCH + textwrap.dedent("""
        import numpy as np
        import speechedge.kernels as k, speechedge.audio, speechedge.features as f
        from speechedge.data_prep import alignments
        x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
        feats = k.log_mel(x, f.FrontendConfig.kws())
        s = k.StreamingLogMel(f.FrontendConfig.kws(center=False))
        s.push(x)
        assert "torch" not in sys.modules and "librosa" not in sys.modules
        print(feats.shape)
    """)
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(40, 101)"


def test_blocking_really_blocks_torch():  # the check above would be meaningless otherwise
    proc = _run_python(BLOCK_TORCH + "import torch")
    assert proc.returncode != 0 and "blocked" in proc.stderr


def test_every_verb_has_help(capsys):
    for verb in VERBS:
        with pytest.raises(SystemExit) as e:
            main([verb, "--help"])
        assert e.value.code == 0
        assert verb in capsys.readouterr().out
    subs = build_parser()._subparsers._group_actions[0].choices
    assert set(subs) == set(VERBS)


def test_demo_without_a_model_folder_is_one_clear_line(tmp_path, capsys):
    assert main(["demo", "kws", "--model", str(tmp_path / "nope"), "--input", "x.wav"]) == 1
    err = capsys.readouterr().err
    assert "no such model folder" in err and "speechedge export" in err and "Traceback" not in err


def test_version_and_console_script():
    exe = Path(sys.executable).with_name("speechedge")
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"speechedge {__version__}"
    proc = subprocess.run([sys.executable, "-m", "speechedge", "train"], capture_output=True, text=True)
    assert proc.returncode == 2


def test_synth_cli_bad_argument_is_one_clear_line(tmp_path, capsys):
    assert main(["synth", "librispeech", "--out", str(tmp_path), "--speakers", "2", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "num_speakers" in err and "Traceback" not in err


@pytest.mark.slow
def test_wheel_installs_and_imports_outside_the_repo(tmp_path):
    """Build the wheel, install it into a fresh venv with only the core dependencies (no torch), and
    import every sub-package from a folder outside the repository."""
    dist = tmp_path / "dist"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist),
                           str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for warning in ("SetuptoolsDeprecationWarning", "is absent from the `packages`", "License classifiers"):
        assert warning not in proc.stdout + proc.stderr, warning  # an install prints no warning of ours
    wheel = next(dist.glob("speechedge-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("speechedge-")}
    assert top == {"speechedge"}, f"the wheel installs top-level names {top}"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), str(wheel)],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    code = textwrap.dedent("""
        import importlib, sys
        for name in ["speechedge", "speechedge.kernels", "speechedge.data_prep", "speechedge.recipes",
                     "speechedge.export", "speechedge.demos", "speechedge.audio", "speechedge.features",
                     "speechedge.runtime", "speechedge.apps"]:  # models and training need torch
            m = importlib.import_module(name)
            assert "site-packages" in m.__file__, m.__file__
        import numpy as np, speechedge.kernels as k, speechedge.features
        print(k.log_mel(np.zeros(16000, np.float32), speechedge.features.FrontendConfig.kws()).shape, "torch" in sys.modules)
    """)
    proc = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "(40, 101) False"


@pytest.mark.parametrize("toml", sorted((ROOT / "speechedge" / "recipes" / "configs").glob("*.toml")),
                         ids=lambda p: p.stem)
def test_every_shipped_config_loads_with_its_frontend(toml):
    from speechedge.recipes.asr import ASRConfig
    from speechedge.recipes.kws import KWSConfig
    from speechedge.recipes.kws_fewshot import FewShotConfig
    from speechedge.training.config import load_config

    cls = FewShotConfig if toml.stem.startswith("kws_fewshot") else KWSConfig if toml.stem.startswith("kws") \
        else ASRConfig
    cfg = load_config(cls, toml)
    assert cfg.frontend.n_mels == (80 if cls is ASRConfig else 40)
    assert all(Path(v).is_absolute() for k, v in vars(cfg).items() if k.endswith("_manifest") and v)
