"""Pretrained models shipped inside the package (exported folders, torch-free to run).

- ``kws_fewshot/``: the few-shot keyword-spotting embedding network (BC-ResNet-3, fp32 TFLite) with its
  frontend and open-set rule; its model card is ``kws_fewshot/MODEL_CARD.md``. Enrol keywords with
  ``speechedge demo kws --enroll a.wav b.wav c.wav --name WORD`` (no ``--model`` needed).
- ``kws_mcu/``: the microcontroller model (BC-ResNet-1 with one block per stage and ReLU, 4.4k parameters):
  a full-integer int8 streaming step model that TensorFlow Lite Micro runs in a 28 KB arena, its firmware
  header and C array, and fp32 models for the host (``--model kws_mcu``; ``kws_mcu/MODEL_CARD.md``).
- ``asr_stream/``: a streaming CTC Conformer (320 ms chunks, characters) as a dynamic-range int8 TFLite step
  model with its named state (``speechedge demo asr`` without ``--model``; ``asr_stream/MODEL_CARD.md``).

The shipped folders are read-only: keywords enrolled on a shipped model are stored per user
(:func:`user_keywords_file`), never inside the package.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ASR_STREAM", "KWS_FEWSHOT", "KWS_MCU", "SHIPPED", "pretrained_dir", "resolve_model", "is_pretrained",
           "user_keywords_file"]

KWS_FEWSHOT = "kws_fewshot"
KWS_MCU = "kws_mcu"
ASR_STREAM = "asr_stream"
SHIPPED = (KWS_FEWSHOT, KWS_MCU, ASR_STREAM)
#: the command that builds each shipped folder (its MODEL_CARD.md has the whole story)
BUILT_BY = {KWS_FEWSHOT: "benchmarks/kws_pretrained.py --ship", KWS_MCU: "benchmarks/kws_pretrained.py --ship",
            ASR_STREAM: "benchmarks/results/asr_shipped/train.sh, then eval.sh and ship.sh"}
#: what each shipped model is (a model of another kind given to a command is refused, naming the right one)
KIND = {KWS_FEWSHOT: "kws", KWS_MCU: "kws", ASR_STREAM: "asr"}


def pretrained_dir(name: str = KWS_FEWSHOT) -> Path:
    """The folder of a shipped model; ``FileNotFoundError`` (saying how to build it) when it is absent."""
    folder = Path(__file__).resolve().parent / name
    if not (folder / "frontend.json").exists():
        raise FileNotFoundError(f"{folder}: no shipped {name!r} model in this installation; pass --model DIR "
                                f"(an export of your own; {BUILT_BY.get(name, 'see its MODEL_CARD.md')} builds it)")
    return folder


def resolve_model(spec: str | Path | None, default: str = KWS_FEWSHOT) -> Path:
    """``--model``: a folder; else the name of a shipped model (``kws_fewshot``, ``kws_mcu``, ``asr_stream``);
    ``None`` = the shipped ``default``, which also says the kind of model the caller runs (a shipped model of
    another kind is a ``ValueError`` naming the command that runs it). A folder of that name in the working
    directory wins over the shipped one."""
    if spec is None:
        return pretrained_dir(default)
    path = Path(spec)
    if not path.exists() and str(spec) in SHIPPED:
        if KIND[str(spec)] != KIND[default]:
            raise ValueError(f"--model {spec}: a shipped {'streaming ASR' if KIND[str(spec)] == 'asr' else 'KWS'} "
                             f"model; run it with `speechedge demo {KIND[str(spec)]}`")
        return pretrained_dir(str(spec))
    return path


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
