"""Shared training infrastructure: typed configs (TOML + ``--set``), experiment folders, checkpoints,
resume, seeding, metrics, curves and ``torchrun`` (DistributedDataParallel) support.

An experiment folder holds::

    config.json        the resolved config          env.json       git revision, package versions
    train.log          the log                      metrics.jsonl  one JSON object per evaluation
    checkpoint-latest.pt / checkpoint-best.pt        curves.png     training curves

Checkpoints are written atomically and loaded with ``torch.load(weights_only=True)``; a run started
again in the same folder resumes from ``checkpoint-latest.pt``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import random
import subprocess
import sys
import tomllib
import types
import typing
from pathlib import Path

import numpy as np
import torch

from .io import atomic_savefig, atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["load_config", "apply_overrides", "Experiment", "seed_everything", "DistEnv", "init_distributed",
           "pick_device", "training_run"]


def _coerce(value: str, tp, name: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):  # Optional[X]
        if value.lower() in ("none", "null", ""):
            return None
        tp = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(tp), typing.get_args(tp)
    try:
        if tp is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if tp in (int, float, str):
            return tp(value)
        if origin is tuple:
            inner = args[0] if args else str
            return tuple(inner(v) for v in value.split(",") if v)
    except ValueError:
        raise ValueError(f"--set {name}={value!r}: not a valid {getattr(tp, '__name__', tp)}") from None
    raise ValueError(f"--set {name}: unsupported field type {tp}")


def apply_overrides(config, overrides: list[str]):
    """``["lr=0.01", "tau=2"]`` -> a new config; unknown keys and bad values raise ``ValueError``."""
    hints = typing.get_type_hints(type(config))
    changes = {}
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        if key not in hints:
            raise ValueError(f"--set {key}: unknown field; known fields: {', '.join(sorted(hints))}")
        changes[key] = _coerce(value, hints[key], key)
    return dataclasses.replace(config, **changes)


def load_config(cls, path: str | Path | None = None, overrides: list[str] | None = None):
    """Build ``cls`` from a TOML file (top-level keys = fields) and ``key=value`` overrides."""
    data = {}
    if path:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file")
        with open(path, "rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{path}: not valid TOML ({e})") from e
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)} for {cls.__name__}")
        hints = typing.get_type_hints(cls)
        data = {k: tuple(v) if typing.get_origin(hints[k]) is tuple else v for k, v in data.items()}
    try:
        config = cls(**data)
    except TypeError as e:
        raise ValueError(f"{path or cls.__name__}: {e}") from e
    return apply_overrides(config, overrides or [])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclasses.dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistEnv:
    """Join the process group when started by ``torchrun`` (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistEnv()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    env = DistEnv(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(env.local_rank)
    return env


def _git_revision() -> str:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Experiment:
    """An experiment folder: resolved config, environment, log, metrics, checkpoints and curves."""

    def __init__(self, exp_dir: str | Path, config, dist: DistEnv | None = None) -> None:
        self.dir = Path(exp_dir)
        self.dist = dist or DistEnv()
        self.config = config
        if self.dist.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
            old = self.dir / "config.json"
            new = json.dumps({"recipe": type(config).__name__, **dataclasses.asdict(config)}, indent=2)
            if old.exists() and json.loads(old.read_text()) != json.loads(new) and self.latest.exists():
                log.warning("%s: config differs from the one this experiment was started with; resuming anyway "
                            "with the new one (the old one is kept as config.prev.json)", self.dir)
                atomic_write_text(self.dir / "config.prev.json", old.read_text())
            atomic_write_text(old, new)
            import importlib.metadata as md

            versions = {}
            for pkg in ("speechedge", "torch", "numpy", "numba"):
                try:
                    versions[pkg] = md.version(pkg)
                except md.PackageNotFoundError:
                    versions[pkg] = None
            atomic_write_text(self.dir / "env.json", json.dumps({
                "git_revision": _git_revision(), "python": sys.version.split()[0], "packages": versions,
                "world_size": self.dist.world_size, "argv": sys.argv}, indent=2))
            handler = logging.FileHandler(self.dir / "train.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            handler.setLevel(logging.INFO)
            pkg = logging.getLogger("speechedge")  # the log file gets INFO whatever the console shows
            if pkg.getEffectiveLevel() > logging.INFO:
                pkg.setLevel(logging.INFO)
            pkg.addHandler(handler)
            self._handler = handler

    @property
    def latest(self) -> Path:
        return self.dir / "checkpoint-latest.pt"

    @property
    def best(self) -> Path:
        return self.dir / "checkpoint-best.pt"

    def save(self, state: dict, path: Path) -> None:
        """Atomic ``torch.save`` (main process only)."""
        if not self.dist.is_main:
            return
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(path, buf.getvalue())

    def load_latest(self, map_location="cpu") -> dict | None:
        if not self.latest.exists():
            return None
        try:
            return torch.load(self.latest, map_location=map_location, weights_only=True)
        except Exception as e:  # a checkpoint that cannot be read must not be silently ignored
            raise RuntimeError(f"{self.latest}: cannot load the checkpoint to resume from ({e}); move it away to "
                               "start over") from e

    def log_metrics(self, record: dict) -> None:
        if self.dist.is_main:
            with open(self.dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def metrics(self) -> list[dict]:
        p = self.dir / "metrics.jsonl"
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []

    def plot_curves(self, keys: list[str]) -> None:
        if not self.dist.is_main:
            return
        rows = self.metrics()
        if not rows:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = [k for k in keys if any(k in r for r in rows)]
        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
        for ax, k in zip(axes[0], keys):
            pts = [(r["step"], r[k]) for r in rows if k in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3)
            ax.set_xlabel("step")
            ax.set_title(k)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        atomic_savefig(fig, self.dir / "curves.png")

    def close(self) -> None:
        h = getattr(self, "_handler", None)
        if h is not None:
            logging.getLogger("speechedge").removeHandler(h)
            h.close()


@contextlib.contextmanager
def training_run(cfg, exp_dir: str | Path):
    """Set up one training process and tear it down: threads, device, process group, seeds, experiment.

    Yields ``(device, dist_env, experiment)``. Every recipe's ``train()`` runs inside it, so that
    ``torchrun`` processes always leave the process group cleanly, also when training fails.
    """
    if getattr(cfg, "threads", 0):
        torch.set_num_threads(cfg.threads)
    device = pick_device(getattr(cfg, "device", "auto"))
    dist_env = init_distributed(device)
    if device.type == "cuda" and dist_env.world_size > 1:
        device = torch.device("cuda", dist_env.local_rank)
    seed_everything(cfg.seed + dist_env.rank)
    exp = Experiment(exp_dir, cfg, dist_env)
    try:
        yield device, dist_env, exp
    finally:
        exp.close()
        if dist_env.world_size > 1:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
