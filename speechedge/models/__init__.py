"""Models (torch): BC-ResNet KWS models, the Conformer CTC encoder, the few-shot and distillation modules,
and loading a trained model from its checkpoint.

A checkpoint holds ``model`` (the weights), ``arch`` (what :func:`build_model` needs: the model kind, its
sizes and its frontend config) and ``config`` (the recipe's resolved config). Export, evaluation and tools
rebuild models through :func:`load_checkpoint`, never through a recipe.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from speechedge.features import FrontendConfig

__all__ = ["build_model", "load_checkpoint", "read_checkpoint", "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not describe a model; the message names the file."""


def build_model(arch: dict) -> nn.Module:
    """A freshly initialised model from a checkpoint's ``arch`` dict."""
    from .asr import ASRModel
    from .bcresnet import BLOCKS
    from .conformer import ConformerConfig
    from .kws import FewShotKWS, KWSClassifier

    a = dict(arch)
    name = a.pop("name", None)
    frontend = FrontendConfig.from_dict(a.pop("frontend"))
    if name == "kws_classifier":
        return KWSClassifier(a["tau"], a["num_classes"], frontend, a["clip_samples"])
    if name == "fewshot_kws":
        return FewShotKWS(a["tau"], a["method"], a["num_dummies"], a["aux_classes"], frontend, a["clip_samples"],
                          tuple(a.get("blocks", BLOCKS)), a.get("act", "silu"))
    if name == "asr_ctc":
        return ASRModel(ConformerConfig(**a["encoder"]), a["vocab"], frontend)
    raise CheckpointError(f"unknown model kind {name!r} (expected kws_classifier, fewshot_kws or asr_ctc)")


def read_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """``torch.load(weights_only=True)`` with errors that name the file (never executes pickled code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint; train first (speechedge train ... --exp-dir {path.parent})")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for truncated, foreign or unsafe files
        raise CheckpointError(f"{path}: not a readable speechedge checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}); re-train or restore it") from None
    if not isinstance(state, dict) or "model" not in state or "arch" not in state:
        raise CheckpointError(f"{path}: not a speechedge checkpoint (no 'model'/'arch' entries)")
    return state


def load_checkpoint(path_or_exp_dir: str | Path, which: str = "best", device="cpu") -> tuple[nn.Module, dict]:
    """The trained model (eval mode) and the whole checkpoint dict.

    Args:
        path_or_exp_dir: a checkpoint file, or an experiment folder (``checkpoint-{which}.pt`` in it).
        which: ``best`` or ``latest`` when given a folder.
    """
    p = Path(path_or_exp_dir)
    if p.is_dir():
        p = p / f"checkpoint-{which}.pt"
    state = read_checkpoint(p, device)
    try:
        model = build_model(state["arch"])
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{p}: the weights do not fit the architecture it records ({e})") from None
    return model.to(device).eval(), state
