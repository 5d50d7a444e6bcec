"""Supervised keyword spotting: BC-ResNet on Speech Commands (12- or 35-class), the reference training setup.

Commands::

    speechedge prepare speech-commands --corpus /data/speech_commands_v0.02 --out data/gsc
    speechedge train kws --config recipes/configs/kws_gsc12.toml --exp-dir exp/bcresnet1-gsc12
    torchrun --nproc_per_node 4 -m speechedge train kws --config recipes/configs/kws_gsc12.toml --exp-dir exp/b1
    speechedge train kws --config recipes/configs/kws_tiny.toml --exp-dir exp/kws-tiny   # minutes on a CPU

Reference setup (the defaults): SGD with momentum 0.9 and weight decay 1e-3, a linear warm-up to lr 0.1 over
5 epochs then cosine decay to 0, batch 100, +-100 ms time shift, background noise with probability 0.8,
SpecAugment for tau >= 1.5. Each epoch ends with validation accuracy; the best checkpoint is evaluated on
the test manifest at the end (``test_acc`` in ``metrics.jsonl``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from speechedge.features import FrontendConfig, TorchFrontend
from speechedge.kws_data import Augmenter, ClipSet, load_manifest_clips, load_noise_bank, spec_augment
from speechedge.models.bcresnet import BCResNet
from speechedge.training import load_config, training_run

log = logging.getLogger(__name__)

__all__ = ["KWSConfig", "KWSClassifier", "train", "main"]


@dataclass(frozen=True)
class KWSConfig:
    train_manifest: str = ""  # gsc12_train.jsonl or gsc35_train.jsonl
    val_manifest: str = ""
    test_manifest: str = ""  # "" = no final test evaluation
    noise_dir: str = ""
    tau: float = 1.0
    epochs: int = 200
    batch_size: int = 100
    lr: float = 0.1
    warmup_epochs: int = 5
    momentum: float = 0.9
    weight_decay: float = 1e-3
    noise_prob: float = 0.8
    time_shift_ms: float = 100.0
    spec_augment: bool | None = None  # None = on for tau >= 1.5 (the reference)
    seed: int = 0
    device: str = "auto"
    threads: int = 0


class KWSClassifier(nn.Module):
    """Log-mel frontend + BC-ResNet classifier: ``(B, num_samples)`` audio -> ``(B, classes)`` logits."""

    def __init__(self, tau: float, num_classes: int) -> None:
        super().__init__()
        self.frontend = TorchFrontend(FrontendConfig.kws())
        self.net = BCResNet(tau, num_classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats.unsqueeze(1))


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
        pred = model(model.frontend(x)).argmax(-1).cpu().numpy()
        correct += int((pred == label_ids[i : i + len(pred)]).sum())
    return correct / len(clips)


def train(cfg: KWSConfig, exp_dir) -> dict:
    with training_run(cfg, exp_dir) as (device, dist_env, exp):
        if not cfg.train_manifest or not cfg.val_manifest:
            raise ValueError("set train_manifest and val_manifest (from `speechedge prepare speech-commands`)")
        train_clips, val_clips = load_manifest_clips(cfg.train_manifest), load_manifest_clips(cfg.val_manifest)
        y_train, vocab = train_clips.label_ids()
        unknown = sorted(set(val_clips.labels) - set(vocab))
        if unknown:
            raise ValueError(f"{cfg.val_manifest}: labels {unknown} do not occur in the training manifest")
        y_val, _ = val_clips.label_ids(vocab)
        model = KWSClassifier(cfg.tau, len(vocab)).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        aug = Augmenter(load_noise_bank(cfg.noise_dir), shift_samples=int(cfg.time_shift_ms * 16),
                        noise_prob=cfg.noise_prob, seed=cfg.seed * 1000 + dist_env.rank)
        use_specaug = cfg.spec_augment if cfg.spec_augment is not None else cfg.tau >= 1.5
        spec_gen = torch.Generator().manual_seed(cfg.seed + 99 + dist_env.rank)
        start_epoch, best = 0, -1.0
        state = exp.load_latest(map_location=device)
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            aug.gen.set_state(state["aug_rng"])
            start_epoch, best = state["epoch"], state["best"]
            log.info("resumed from %s after epoch %d", exp.latest, start_epoch)
        ddp = nn.parallel.DistributedDataParallel(model) if dist_env.world_size > 1 else model
        steps_per_epoch = max(1, len(train_clips) // (cfg.batch_size * dist_env.world_size))
        record: dict = {}
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            model.train()
            perm = np.random.default_rng([cfg.seed, epoch]).permutation(len(train_clips))
            perm = perm[dist_env.rank :: dist_env.world_size]  # this rank's share
            losses = []
            for b in range(steps_per_epoch):
                idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                for g in opt.param_groups:
                    g["lr"] = _lr_at((epoch - 1) * steps_per_epoch + b, steps_per_epoch, cfg)
                feats = model.frontend(aug(train_clips.batch(idx)).to(device))
                if use_specaug:
                    feats = spec_augment(feats, spec_gen)
                loss = F.cross_entropy(ddp(feats), torch.from_numpy(y_train[idx]).to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            val_acc = accuracy(model, val_clips, y_val, device)
            record = {"step": epoch, "epoch": epoch, "train_loss": float(np.mean(losses)), "val_acc": val_acc,
                      "lr": opt.param_groups[0]["lr"]}
            log.info("epoch %d: train_loss=%.4f val_acc=%.4f", epoch, record["train_loss"], val_acc)
            exp.log_metrics(record)
            ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                    "best": max(best, val_acc), "config": asdict(cfg), "vocab": vocab, "aug_rng": aug.gen.get_state()}
            if val_acc > best:
                best = val_acc
                exp.save(ckpt, exp.best)
            exp.save(ckpt, exp.latest)
            exp.plot_curves(["train_loss", "val_acc", "lr"])
        if cfg.test_manifest and dist_env.is_main:
            test_clips = load_manifest_clips(cfg.test_manifest)
            y_test, _ = test_clips.label_ids(vocab)
            model.load_state_dict(torch.load(exp.best, map_location=device, weights_only=True)["model"])
            record = {**record, "test_acc": accuracy(model, test_clips, y_test, device), "best_val_acc": best}
            log.info("test accuracy of the best checkpoint: %.4f", record["test_acc"])
            exp.log_metrics(record)
        return record


def main(config_path, exp_dir, overrides) -> int:
    train(load_config(KWSConfig, config_path, overrides), exp_dir)
    return 0
