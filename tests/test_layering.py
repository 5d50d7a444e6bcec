"""The import rules of DESIGN.md, checked on the source (every import statement, also inside functions).

Layers, lowest first; a module imports only from its own layer or below, with the exceptions spelled out:

0. primitives: ``speechedge`` (package), ``audio``, ``manifest``, ``features``, ``ctc``, ``io``, ``pretrained``
1. ``kernels`` (Numba)
2. ``models`` (torch), ``runtime`` (torch-free interpreter host), ``synth`` (speech synthesis)
3. ``training`` (the shared training loop, configs, augmentation, data loading)
4. ``data_prep``, ``recipes``, ``export``
5. applications: ``apps`` (CLI, quickstart, benchmarks, long-form evaluation, tools), ``demos``
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "speechedge"

LAYER = {"": 0, "audio": 0, "manifest": 0, "features": 0, "ctc": 0, "io": 0, "pretrained": 0, "__main__": 5,
         "kernels": 1, "models": 2, "runtime": 2, "synth": 2, "training": 3,
         "data_prep": 4, "recipes": 4, "export": 4, "apps": 5, "demos": 5}
TORCH_FREE = {"kernels", "runtime", "audio", "manifest", "features", "ctc", "io", "data_prep", "synth", "pretrained", ""}
# same-layer imports that are not allowed (the rest of a layer may use each other)
FORBIDDEN = {("export", "recipes"), ("recipes", "export"), ("data_prep", "recipes"), ("data_prep", "export"),
             ("runtime", "models"), ("runtime", "synth"), ("models", "runtime"), ("models", "synth"),
             ("synth", "models"), ("synth", "runtime")}


def _part(module: str) -> str:
    """``speechedge.export.kws`` -> ``export``; ``speechedge.audio`` -> ``audio``; ``speechedge`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(module: str, path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                yield ".".join(base + ([node.module] if node.module else [])), node.lineno
            else:
                yield node.module, node.lineno


def _violations():
    out = []
    for module, path in _modules():
        src = _part(module)
        if src not in LAYER:
            out.append(f"{module}: not in any layer (add it to DESIGN.md and LAYER)")
            continue
        for name, line in _imports(module, path):
            top = name.split(".")[0]
            where = f"{path.relative_to(ROOT.parent)}:{line}"
            if top in ("torch", "librosa", "torchaudio") and src in TORCH_FREE:
                out.append(f"{where}: {module} (torch-free) imports {name}")
            if top != "speechedge":
                continue
            dst = _part(name)
            if dst not in LAYER:
                continue
            if LAYER[dst] > LAYER[src]:
                out.append(f"{where}: {module} (layer {LAYER[src]}) imports {name} (layer {LAYER[dst]})")
            elif (src, dst) in FORBIDDEN:
                out.append(f"{where}: {module} must not import {name}")
    return out


def test_import_layering():
    bad = _violations()
    assert not bad, "import rules broken:\n" + "\n".join(bad)


@pytest.mark.parametrize("code,expected", [
    ("from speechedge.recipes.asr import load_model", "layer 2) imports speechedge.recipes"),
    ("import torch", "torch-free"),
])
def test_the_layering_check_catches_violations(tmp_path, monkeypatch, code, expected):
    """A runtime module that imported a recipe (or torch) would be reported."""
    fake = tmp_path / "speechedge"
    (fake / "runtime").mkdir(parents=True)
    (fake / "runtime" / "bad.py").write_text(code + "\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", fake)
    bad = _violations()
    assert any(expected in b for b in bad), bad
