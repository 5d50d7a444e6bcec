"""Pretrained models shipped inside the package (exported folders, torch-free to run).

- ``kws_fewshot/``: the few-shot keyword-spotting embedding network (BC-ResNet-1, fp32 TFLite) with its
  frontend and open-set rule; its model card is ``kws_fewshot/MODEL_CARD.md``. Enrol keywords with
  ``speechedge demo kws --enroll a.wav b.wav c.wav --name WORD`` (no ``--model`` needed).

The shipped folders are read-only: keywords enrolled on a shipped model are stored per user
(:func:`user_keywords_file`), never inside the package.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["KWS_FEWSHOT", "pretrained_dir", "is_pretrained", "user_keywords_file"]

KWS_FEWSHOT = "kws_fewshot"


def pretrained_dir(name: str = KWS_FEWSHOT) -> Path:
    """The folder of a shipped model; ``FileNotFoundError`` (saying how to build it) when it is absent."""
    folder = Path(__file__).resolve().parent / name
    if not (folder / "frontend.json").exists():
        raise FileNotFoundError(f"{folder}: no shipped {name!r} model in this installation; pass --model DIR "
                                "(an export of your own) or build it with benchmarks/kws_pretrained.py --ship")
    return folder


def is_pretrained(folder: str | Path) -> bool:
    """True for a folder inside the installed package's shipped models (never written to)."""
    try:
        return Path(folder).resolve().is_relative_to(Path(__file__).resolve().parent)
    except OSError:
        return False


def user_keywords_file(model_name: str) -> Path:
    """Where keywords enrolled on a shipped model live: ``$XDG_DATA_HOME/speechedge/keywords/NAME.json``
    (``~/.local/share/...`` by default)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "speechedge" / "keywords" / f"{model_name}.json"
