"""The one training loop and the experiment folder it writes.

Every recipe plugs into :func:`fit` with a :class:`TrainTask` (its model, optimizer, one training step and
one evaluation); resume, RNG state, DDP wrapping, evaluation cadence, best/latest checkpoints, metrics,
curves and the experiment lock live here once.

An experiment folder holds::

    config.json        the resolved config (absolute paths)     env.json       git revision, package versions
    train.log          the log                                   metrics.jsonl  one JSON object per evaluation
    checkpoint-latest.pt  weights + optimizer + RNG state (resume)
    checkpoint-best.pt    weights of the best evaluation (arch, config, meta; no optimizer)
    curves.png         training curves                           .lock          held while a run writes here

Checkpoints are written atomically and loaded with ``torch.load(weights_only=True)``. A run started again in
the same folder resumes from ``checkpoint-latest.pt`` exactly: the model, optimizer, scheduler, the task's
generators and torch's / Python's global RNG (dropout, Gumbel-softmax) are restored, and metric rows written
after that checkpoint are dropped. A second run on a locked folder is refused; the lock is an ``flock`` that
the kernel releases when its process dies, so a crashed run never leaves it stuck. A run that fails before
its first checkpoint (a missing manifest, a wrong option, Ctrl-C during set-up) leaves the folder as it found
it: the files it created are removed, and the folder too when the run created it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speechedge.io import atomic_savefig, atomic_write_bytes, atomic_write_text

from .config import config_to_dict

log = logging.getLogger(__name__)

__all__ = ["Experiment", "ExperimentLockedError", "seed_everything", "DistEnv", "init_distributed", "pick_device",
           "training_run", "TrainTask", "fit", "trained_parameters", "teacher_record"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device={name!r}: expected auto, cpu, cuda or cuda:N") from None


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
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class ExperimentLockedError(BlockingIOError):
    """Another process is training in this experiment folder (an ``OSError``: the CLI prints it as one line)."""


class Experiment:
    """An experiment folder: resolved config, environment, log, metrics, checkpoints, curves and a lock."""

    def __init__(self, exp_dir: str | Path, config, dist: DistEnv | None = None) -> None:
        self.dir = Path(exp_dir)
        self.dist = dist or DistEnv()
        self.config = config
        self._lock = None
        self._handler = None
        # the outermost folder this run creates (None: the folder exists), and what an existing folder held
        self._created_root = None
        for d in (self.dir.absolute(), *self.dir.absolute().parents):
            if d.exists():
                break
            self._created_root = d
        self._found = {p.name for p in self.dir.iterdir()} if self.dir.is_dir() else set()
        if not self.dist.is_main:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
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

    def _acquire_lock(self) -> None:
        import fcntl

        f = open(self.dir / ".lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise ExperimentLockedError(f"{self.dir}: another training process is writing to this experiment; "
                                        "wait for it or use another --exp-dir") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._lock = f

    def write_config(self) -> None:
        """``config.json`` (after a resume has been checked, so a failed resume leaves it as it was)."""
        if not self.dist.is_main:
            return
        old = self.dir / "config.json"
        new = json.dumps({"recipe": type(self.config).__name__, **config_to_dict(self.config)}, indent=2)
        if old.exists() and self.latest.exists():
            try:
                prev = json.loads(old.read_text())
            except json.JSONDecodeError:
                prev = None
            if prev != json.loads(new):
                log.warning("%s: config differs from the one this experiment was started with; resuming with the "
                            "new one (the old one is kept as config.prev.json)", self.dir)
                atomic_write_text(self.dir / "config.prev.json", old.read_text())
        atomic_write_text(old, new)

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

    def truncate_metrics(self, last_step: int) -> None:
        """Drop metric rows after ``last_step`` (written after the checkpoint a resume starts from)."""
        if not self.dist.is_main:
            return
        rows = self.metrics()
        keep = [r for r in rows if r.get("step", 0) <= last_step]
        if len(keep) != len(rows):
            atomic_write_text(self.dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in keep))

    def plot_curves(self, keys: list[str]) -> None:
        if not self.dist.is_main:
            return
        rows = self.metrics()
        keys = [k for k in keys if any(k in r for r in rows)]
        if not rows or not keys:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
        for ax, k in zip(axes[0], keys):
            pts = [(r["step"], r[k]) for r in rows if k in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3)
            ax.set_xlabel("step")
            ax.set_title(k)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        atomic_savefig(fig, self.dir / "curves.png")
        plt.close(fig)

    def discard_if_untrained(self) -> None:
        """After a failed run: if nothing was trained here (no checkpoint, no metric row), remove what this run
        created (the folder itself when the run created it), so a typo does not leave a half-made experiment.
        Called while the lock is held."""
        if not self.dist.is_main or self.latest.exists() or (self.dir / "metrics.jsonl").exists():
            return
        import shutil

        if self._created_root is not None:
            shutil.rmtree(self._created_root, ignore_errors=True)
        else:
            for p in self.dir.iterdir():
                if p.name not in self._found and (p.is_file() or p.is_symlink()):
                    p.unlink(missing_ok=True)
        log.info("%s: the run failed before its first checkpoint; removed the files it had created", self.dir)

    def close(self) -> None:
        if self._handler is not None:
            logging.getLogger("speechedge").removeHandler(self._handler)
            self._handler.close()
            self._handler = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None


@contextlib.contextmanager
def training_run(cfg, exp_dir: str | Path):
    """Set up one training process and tear it down: threads, device, process group, seeds, experiment.

    Yields ``(device, dist_env, experiment)``, so that ``torchrun`` processes always leave the process
    group cleanly, also when training fails.
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
    except BaseException:
        exp.discard_if_untrained()
        raise
    finally:
        exp.close()
        if dist_env.world_size > 1:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


@dataclasses.dataclass
class TrainTask:
    """What a recipe gives :func:`fit`.

    Attributes:
        model: the trained model (its ``arch`` dict and weights go into both checkpoints).
        optimizer: its optimizer (latest checkpoint only).
        train_step: ``(step, ddp_model) -> {name: loss tensor or float}``; ``fit`` sums tensors into the loss,
            calls ``backward`` and steps the optimizer/scheduler. Floats are logged, not optimised.
        evaluate: ``step -> (metrics, score)``; the best checkpoint is the one with the highest score.
        scheduler: stepped after every optimizer step (optional).
        modules: further trained modules kept in the latest checkpoint only (distillation branches).
        generators: the task's random generators (``numpy.random.Generator`` or ``torch.Generator``),
            restored exactly on resume.
        meta: saved in every checkpoint (vocabularies).
        steps, eval_every: optimisation steps and evaluation cadence.
        grad_clip: max gradient norm (None = no clipping).
        curves: metric names plotted in ``curves.png``.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    train_step: Callable[[int, nn.Module], dict]
    evaluate: Callable[[int], tuple[dict, float]]
    steps: int
    eval_every: int
    scheduler: object | None = None
    modules: dict[str, nn.Module] = dataclasses.field(default_factory=dict)
    generators: dict[str, object] = dataclasses.field(default_factory=dict)
    meta: dict = dataclasses.field(default_factory=dict)
    grad_clip: float | None = None
    curves: list[str] = dataclasses.field(default_factory=list)


def trained_parameters(model: nn.Module, modules: dict[str, nn.Module] | None = None) -> list[nn.Parameter]:
    """The parameters one optimizer steps: the model's and those of the task's further ``modules``
    (distillation maps, QAT ranges) that require gradients. Recipes build their optimizer from this list and
    :func:`fit` clips the same list, so the two cannot disagree."""
    return [p for m in (model, *(modules or {}).values()) for p in m.parameters() if p.requires_grad]


def teacher_record(exp_dir: str | Path, state: dict) -> dict:
    """What a distilled run records of its teacher (``meta["teacher"]`` of its checkpoints): the folder, the
    step and the score of the checkpoint it was loaded from. :func:`fit` refuses to resume a run whose teacher
    has changed since (retrained in place), which would silently distil from two different targets."""
    record = {"exp_dir": str(Path(exp_dir).resolve()), "step": int(state.get("step", -1)),
              "score": float(state.get("score", float("nan")))}
    log.info("teacher: %s, best checkpoint of step %d (score %.4g)", record["exp_dir"], record["step"], record["score"])
    return record


def _check_teacher(latest: Path, recorded: dict | None, now: dict | None) -> None:
    if recorded is None or now is None:  # runs without a teacher, or checkpoints older than the record
        return
    same_score = recorded["score"] == now["score"] or math.isnan(recorded["score"]) and math.isnan(now["score"])
    if recorded["step"] != now["step"] or not same_score:
        raise RuntimeError(
            f"{latest}: distilled from the teacher checkpoint of step {recorded['step']} (score "
            f"{recorded['score']:.4g}) in {recorded['exp_dir']}; teacher_exp_dir now holds step {now['step']} "
            f"(score {now['score']:.4g}) in {now['exp_dir']}; restore that teacher or start a new --exp-dir")


def _rng_state(g):
    return g.get_state() if isinstance(g, torch.Generator) else g.bit_generator.state


def _set_rng_state(g, state) -> None:
    if isinstance(g, torch.Generator):
        g.set_state(state)
    else:
        g.bit_generator.state = state


def fit(cfg, exp_dir: str | Path, build: Callable[[torch.device, DistEnv, Experiment], TrainTask],
        finish: Callable[[TrainTask, Experiment, dict], dict] | None = None) -> dict:
    """Train (or resume) in ``exp_dir``; returns the last metrics record.

    Args:
        cfg: the recipe's config (``seed``, ``device``, ``threads``; written to ``config.json``).
        build: ``(device, dist_env, experiment) -> TrainTask``, called once inside the training process.
        finish: optional ``(task, experiment, record) -> record`` run on the main process after the last step
            (e.g. a test-set evaluation of the best checkpoint).
    """
    with training_run(cfg, exp_dir) as (device, dist_env, exp):
        task = build(device, dist_env, exp)
        if task.steps <= 0 or task.eval_every <= 0:
            raise ValueError(f"steps ({task.steps}) and eval_every ({task.eval_every}) must be positive")
        start, best = 0, -math.inf
        state = exp.load_latest(map_location=device)
        if state is not None:
            _check_teacher(exp.latest, state.get("meta", {}).get("teacher"), task.meta.get("teacher"))
            try:
                task.model.load_state_dict(state["model"])
                for name, m in task.modules.items():
                    m.load_state_dict(state["modules"][name])
                task.optimizer.load_state_dict(state["optimizer"])
            except (KeyError, RuntimeError, ValueError) as e:
                raise RuntimeError(f"{exp.latest}: does not fit this config's model ({str(e).splitlines()[0]}); "
                                   "use another --exp-dir or the config the experiment was started with") from None
            if task.scheduler is not None:
                task.scheduler.load_state_dict(state["scheduler"])
            for name, g in task.generators.items():
                _set_rng_state(g, state["generators"][name])
            torch.set_rng_state(state["torch_rng"])
            random.setstate(state["python_rng"])
            if device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
            start, best = state["step"], state["best"]
            exp.truncate_metrics(start)
            log.info("resumed from %s at step %d", exp.latest, start)
        exp.write_config()
        ddp = task.model
        if dist_env.world_size > 1:
            ddp = nn.parallel.DistributedDataParallel(
                task.model, device_ids=[device.index] if device.type == "cuda" else None)
        params = trained_parameters(task.model, task.modules)
        record: dict = {}
        sums: dict[str, float] = {}
        n, t0 = 0, time.perf_counter()
        from tqdm import tqdm

        # between evaluations only this bar says a run is alive (mininterval keeps nohup logs short)
        bar = tqdm(total=task.steps, initial=start, unit="step", desc="train", mininterval=10,
                   disable=not dist_env.is_main)
        for step in range(start + 1, task.steps + 1):
            task.model.train()
            for m in task.modules.values():
                m.train()
            parts = task.train_step(step, ddp)
            losses = [v for v in parts.values() if isinstance(v, torch.Tensor) and v.requires_grad]
            loss = sum(losses)
            task.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if task.grad_clip is not None:
                sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(nn.utils.clip_grad_norm_(params, task.grad_clip))
            task.optimizer.step()
            if task.scheduler is not None:
                task.scheduler.step()
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach() if isinstance(v, torch.Tensor) else v)
            n += 1
            bar.update(1)
            if bar.n % 10 == 0:
                bar.set_postfix(loss=f"{sums['loss'] / n:.3g}", refresh=False)
            if step % task.eval_every and step != task.steps:
                continue
            metrics, score = task.evaluate(step)
            record = {"step": step, **{f"train_{k}": v / n for k, v in sums.items()}, **metrics,
                      "lr": task.optimizer.param_groups[0]["lr"], "s_per_step": (time.perf_counter() - t0) / n}
            sums, n, t0 = {}, 0, time.perf_counter()
            log.info("step %d: %s", step, ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                    for k, v in record.items() if k != "step"))
            improved = score > best
            best = max(best, score)
            # the row first, then the checkpoint: a kill between them resumes from the previous checkpoint,
            # which drops this row and computes it again (the other order would lose the row)
            exp.log_metrics(record)
            common = {"model": task.model.state_dict(), "arch": task.model.arch, "config": config_to_dict(cfg),
                      "meta": task.meta, "step": step, "score": score}
            if improved:
                exp.save(common, exp.best)
            exp.save({**common, "best": best, "optimizer": task.optimizer.state_dict(),
                      "scheduler": task.scheduler.state_dict() if task.scheduler is not None else None,
                      "modules": {k: m.state_dict() for k, m in task.modules.items()},
                      "generators": {k: _rng_state(g) for k, g in task.generators.items()},
                      "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
                      "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}, exp.latest)
            exp.plot_curves(task.curves)
        bar.close()
        if not record and start >= task.steps:
            # resumed after the last step's checkpoint (a kill before the caller saw the result): the result of
            # the run is its last metrics row, the one that checkpoint was written after
            rows = [r for r in exp.metrics() if r.get("step") == start]
            record = rows[-1] if rows else {}
        if finish is not None and dist_env.is_main:
            record = finish(task, exp, record)
        return record
