"""Supervised keyword spotting: BC-ResNet on Speech Commands (12- or 35-class), the reference training setup.

Commands::

    speechedge prepare speech-commands --corpus /data/speech_commands_v0.02 --out data/gsc
    speechedge train kws --config speechedge/recipes/configs/kws_gsc12.toml --exp-dir exp/bcresnet1-gsc12
    torchrun --nproc_per_node 4 -m speechedge train kws --config speechedge/recipes/configs/kws_gsc12.toml --exp-dir exp/b1
    speechedge train kws --config speechedge/recipes/configs/kws_tiny.toml --exp-dir exp/kws-tiny   # minutes on a CPU

Reference setup (the defaults): SGD with momentum 0.9 and weight decay 1e-3, a linear warm-up to lr 0.1 over
5 epochs then cosine decay to 0, batch 100, +-100 ms time shift, background noise with probability 0.8,
SpecAugment for tau >= 1.5. Each epoch ends with validation accuracy; the best checkpoint is evaluated on
the test manifest at the end (``test_acc`` in ``metrics.jsonl``). The frontend is the config's ``[frontend]``
table (default: 40 log-mels, 10 ms hop) and ``clip_s`` the input length; both travel with the checkpoint.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from speechedge.features import FrontendConfig
from speechedge.models import load_checkpoint
from speechedge.models.kws import KWSClassifier
from speechedge.training.augment import AugmentConfig, Augmenter, load_noise_bank, spec_augment
from speechedge.training.config import check_ranges, load_config
from speechedge.training.kws_data import ClipSet, load_manifest_clips
from speechedge.training.loop import TrainTask, fit

log = logging.getLogger(__name__)

__all__ = ["KWSConfig", "train", "main", "accuracy"]


@dataclass(frozen=True)
class KWSConfig:
    train_manifest: str = ""  # gsc12_train.jsonl or gsc35_train.jsonl
    val_manifest: str = ""
    test_manifest: str = ""  # "" = no final test evaluation
    noise_dir: str = ""
    frontend: FrontendConfig = field(default_factory=FrontendConfig.kws)
    clip_s: float = 1.0  # model input length in seconds (clips are centre-cropped / zero-padded)
    tau: float = 1.0
    epochs: int = 200
    batch_size: int = 100
    lr: float = 0.1
    warmup_epochs: int = 5
    momentum: float = 0.9
    weight_decay: float = 1e-3
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # the [augment] table
    spec_augment: bool | None = None  # None = on for tau >= 1.5 (the reference)
    seed: int = 0
    device: str = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        check_ranges(self, positive=("epochs", "batch_size", "clip_s", "lr"),
                     non_negative=("threads", "weight_decay", "warmup_epochs"))

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_s * self.frontend.sample_rate))


def _lr_at(step: int, steps_per_epoch: int, cfg: KWSConfig) -> float:
    warm = cfg.warmup_epochs * steps_per_epoch
    total = cfg.epochs * steps_per_epoch
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


@torch.no_grad()
def accuracy(model: KWSClassifier, clips: ClipSet, label_ids: np.ndarray, device, batch: int = 256) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(clips), batch):
        x = clips.batch(range(i, min(i + batch, len(clips)))).to(device)
        pred = model(model.features(x)).argmax(-1).cpu().numpy()
        correct += int((pred == label_ids[i : i + len(pred)]).sum())
    return correct / len(clips)


def train(cfg: KWSConfig, exp_dir) -> dict:
    """Train (or resume) in ``exp_dir``; one step is one batch, one evaluation per epoch."""
    if not cfg.train_manifest or not cfg.val_manifest:
        raise ValueError("set train_manifest and val_manifest (from `speechedge prepare speech-commands`)")
    fe = cfg.frontend

    def build(device, dist_env, exp) -> TrainTask:
        load = dict(sample_rate=fe.sample_rate, clip_samples=cfg.clip_samples)
        train_clips, val_clips = load_manifest_clips(cfg.train_manifest, **load), load_manifest_clips(cfg.val_manifest, **load)
        y_train, vocab = train_clips.label_ids()
        unknown = sorted(set(val_clips.labels) - set(vocab))
        if unknown:
            raise ValueError(f"{cfg.val_manifest}: labels {unknown} do not occur in the training manifest")
        y_val, _ = val_clips.label_ids(vocab)
        model = KWSClassifier(cfg.tau, len(vocab), fe, cfg.clip_samples).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        aug = Augmenter(cfg.augment, fe.sample_rate, load_noise_bank(cfg.noise_dir, fe.sample_rate),
                        seed=cfg.seed * 1000 + dist_env.rank)
        use_specaug = cfg.spec_augment if cfg.spec_augment is not None else cfg.tau >= 1.5
        spec_gen = torch.Generator().manual_seed(cfg.seed + 99 + dist_env.rank)
        spe = max(1, len(train_clips) // (cfg.batch_size * dist_env.world_size))

        def train_step(step: int, net) -> dict:
            epoch, b = divmod(step - 1, spe)
            # the epoch's permutation is a function of (seed, epoch): nothing to carry across a resume
            perm = np.random.default_rng([cfg.seed, epoch + 1]).permutation(len(train_clips))
            perm = perm[dist_env.rank :: dist_env.world_size]  # this rank's share
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            for g in opt.param_groups:
                g["lr"] = _lr_at(step - 1, spe, cfg)
            feats = model.features(aug(train_clips.batch(idx).to(device)))
            if use_specaug:
                feats = spec_augment(feats, spec_gen)
            return {"ce": F.cross_entropy(net(feats), torch.from_numpy(y_train[idx]).to(device))}

        def evaluate(step: int) -> tuple[dict, float]:
            acc = accuracy(model, val_clips, y_val, device)
            return {"epoch": step // spe, "val_acc": acc}, acc

        return TrainTask(model=model, optimizer=opt, train_step=train_step, evaluate=evaluate,
                         steps=cfg.epochs * spe, eval_every=spe, generators={"aug": aug.gen, "specaug": spec_gen},
                         meta={"vocab": vocab}, curves=["train_loss", "val_acc", "lr"])

    def finish(task: TrainTask, exp, record: dict) -> dict:
        if not cfg.test_manifest:
            return record
        vocab = task.meta["vocab"]
        test_clips = load_manifest_clips(cfg.test_manifest, sample_rate=fe.sample_rate, clip_samples=cfg.clip_samples)
        y_test, _ = test_clips.label_ids(vocab)
        model, state = load_checkpoint(exp.best)
        record = {**record, "test_acc": accuracy(model, test_clips, y_test, "cpu"), "best_val_acc": state["score"]}
        log.info("test accuracy of the best checkpoint: %.4f", record["test_acc"])
        exp.log_metrics(record)
        return record

    return fit(cfg, exp_dir, build, finish)


def main(config_path, exp_dir, overrides) -> int:
    train(load_config(KWSConfig, config_path, overrides), exp_dir)
    return 0
