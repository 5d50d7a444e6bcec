"""Few-shot open-set keyword spotting: BC-ResNet + ProtoNet / D-ProtoNet, with optional multi-task
supervision on LibriWord (AuxSL: lambda x cross-entropy through a separate head, dropped at inference).

Commands (the tiny config trains in a few minutes on a 2-core CPU on the quickstart's synthesized data)::

    speechedge prepare speech-commands --corpus DIR --out data/gsc
    speechedge train kws-fewshot --config speechedge/recipes/configs/kws_fewshot_tiny.toml --exp-dir exp/fs \\
        --set train_manifest=data/gsc/splitgsc_train.jsonl --set val_manifest=data/gsc/splitgsc_val.jsonl
    speechedge eval kws-fewshot --exp-dir exp/fs --data data/gsc/splitgsc_test.jsonl --shots 1,5
    # paper scale, several GPUs:
    torchrun --nproc_per_node 4 -m speechedge train kws-fewshot --config speechedge/recipes/configs/kws_fewshot_gsc.toml \\
        --exp-dir exp/fs-gsc

Each training step samples one episode per process (``ways`` classes of the training split, ``shots`` +
``queries`` clips each, ``open_queries`` clips of other training classes as unknowns), computes the
few-shot loss, and with ``aux_weight > 0`` adds ``aux_weight`` x the cross-entropy of a batch of LibriWord
clips through a linear head over the LibriWord vocabulary. Validation: 5-way episodes on the validation
classes; the best checkpoint is the one with the highest mean of closed-set accuracy and AUROC.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from speechedge.audio import voiced_frames
from speechedge.features import FrontendConfig
from speechedge.models import load_checkpoint
from speechedge.models.fewshot import EpisodeSampler, auroc, episode_loss, mean_ci95, open_set_scores
from speechedge.models.kws import FewShotKWS
from speechedge.models.qat import ActivationFakeQuant
from speechedge.training.augment import AugmentConfig, Augmenter, load_noise_bank, spec_augment
from speechedge.training.config import check_ranges, config_from_dict, load_config
from speechedge.training.kws_data import ClipSet, load_folder_clips, load_manifest_clips
from speechedge.training.loop import TrainTask, fit, teacher_record, trained_parameters

log = logging.getLogger(__name__)

__all__ = ["FewShotConfig", "train", "evaluate", "load_model", "evaluate_experiment", "evaluate_exported", "main"]


@dataclass(frozen=True)
class FewShotConfig:
    train_manifest: str = ""  # splitgsc_train.jsonl (ClipRecord manifest)
    val_manifest: str = ""  # splitgsc_val.jsonl
    noise_dir: str = ""  # _background_noise_ folder for noise augmentation ("" = none)
    frontend: FrontendConfig = field(default_factory=FrontendConfig.kws)
    clip_s: float = 1.0  # model input length in seconds
    libriword_manifest: str = ""  # LibriWord manifest.jsonl for AuxSL ("" = none)
    aux_weight: float = 0.0  # lambda of the LibriWord cross-entropy
    aux_batch: int = 32
    tau: float = 1.0  # BC-ResNet width
    # BC-ResNet blocks per stage and the temporal branch's activation (silu | relu): the reference is 2,2,4,4
    # and silu; fewer blocks and relu make the small step graph a microcontroller's arena needs (README)
    blocks: tuple[int, ...] = (2, 2, 4, 4)
    block_act: str = "silu"
    method: str = "dprotonet"  # protonet | dprotonet
    ways: int = 5
    shots: int = 5
    queries: int = 5
    open_queries: int = 10
    temperature: float = 1.0
    num_dummies: int = 3
    gamma: float = 3.0
    lambda_u: float = 0.1
    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    eval_every: int = 100
    eval_episodes: int = 100
    eval_shots: int = 5
    eval_queries: int = 5
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # the [augment] table
    spec_augment: bool = True
    # streaming-aware training: on a ``context_prob`` share of the steps every clip gets ``context_s`` seconds of
    # audio on each side (silence, half the time the neighbouring clips' edges at a random level; augmentation
    # then fills it with noise, reverb and babble like the clip) and the embedding pools the centre window: what
    # the streaming step model sees in a stream (models/bcresnet_stream.py). 0 = isolated windows only.
    context_s: float = 0.0
    context_prob: float = 0.5
    # running-speech windows: each clip, with this probability, gets the silence before and after its word filled
    # with the end of another word and the start of another (0-80 ms away, -6..+3 dB against it), as the window of
    # a keyword said inside a sentence looks (fill_with_neighbours; the shipped detector finds no such keyword:
    # README, "A keyword said inside a sentence"); the donors are the LibriWord batch's clips when there is one
    neighbours_prob: float = 0.0
    # whose words the neighbours are: "batch" (other clips of the batch: other voices) or "same" (other words of
    # the clip's own speaker from the training clips, as in a sentence; a speaker with no other word gets none)
    neighbours_voice: str = "batch"
    # start from another experiment's best checkpoint (fine-tuning; a LibriWord head of another vocabulary
    # starts fresh); the schedule and optimizer start anew
    init_from: str = ""
    # quantization-aware fine-tuning (models/qat.py): fake int8 quantization of every activation the int8 export
    # quantizes, batch norms on their running statistics; use with init_from and a small lr. qat_consistency
    # weighs a loss that keeps the fake-quantized embedding near the float one (relative squared error), which
    # is what the export's decision agreement measures
    qat: bool = False
    qat_consistency: float = 0.0
    # embedding distillation: a trained few-shot experiment (its best checkpoint; same frontend, any width) whose
    # embedding of the same augmented clips this model learns to reproduce through a linear map (kept in the
    # training checkpoint, dropped at export); kd_weight x the relative squared error ||W s - t||^2 / ||t||^2.
    # A small model (the microcontroller's) learns from a large one what its own loss does not teach it
    teacher_exp_dir: str = ""
    kd_weight: float = 0.0
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # torch threads (0 = torch's default)

    def __post_init__(self) -> None:
        check_ranges(self, positive=("ways", "shots", "queries", "steps", "eval_every", "eval_episodes", "eval_shots",
                                     "eval_queries", "num_dummies", "clip_s", "lr", "temperature"),
                     non_negative=("threads", "weight_decay", "open_queries", "aux_weight", "lambda_u", "gamma",
                                   "kd_weight"))
        if self.method not in ("protonet", "dprotonet"):
            raise ValueError(f"method must be 'protonet' or 'dprotonet', got {self.method!r}")
        if self.aux_weight > 0 and not self.libriword_manifest:
            raise ValueError("aux_weight > 0 needs libriword_manifest (the LibriWord manifest.jsonl)")
        if self.tau not in (1, 1.5, 2, 3, 6, 8):
            raise ValueError(f"tau must be one of 1, 1.5, 2, 3, 6, 8 (BC-ResNet widths), got {self.tau}")
        if len(self.blocks) != 4 or min(self.blocks) < 1:
            raise ValueError(f"blocks must be 4 positive counts, one per stage (e.g. 2,2,4,4), got {list(self.blocks)}")
        if self.block_act not in ("silu", "relu"):
            raise ValueError(f"block_act must be 'silu' or 'relu', got {self.block_act!r}")
        if self.context_s < 0 or not 0 <= self.context_prob <= 1:
            raise ValueError(f"context_s must be >= 0 and context_prob in [0, 1], got {self.context_s}, "
                             f"{self.context_prob}")
        if not 0 <= self.neighbours_prob <= 1:
            raise ValueError(f"neighbours_prob must be in [0, 1], got {self.neighbours_prob}")
        if self.neighbours_voice not in ("batch", "same"):
            raise ValueError(f"neighbours_voice must be 'batch' or 'same', got {self.neighbours_voice!r}")
        if bool(self.kd_weight) != bool(self.teacher_exp_dir):
            raise ValueError(f"kd_weight ({self.kd_weight}) and teacher_exp_dir ({self.teacher_exp_dir!r}) go together: "
                             "set both (kd_weight > 0 and a trained few-shot experiment) or neither")
        if self.qat_consistency < 0 or (self.qat_consistency and not self.qat):
            raise ValueError(f"qat_consistency must be >= 0 and needs qat = true, got {self.qat_consistency}")

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_s * self.frontend.sample_rate))


def voiced_spans(x: torch.Tensor, frame: int = 160, rel: float = 0.05) -> list[tuple[int, int]]:
    """Per row of ``x (B, T)``: ``(start, end)`` samples of the word, the rule of
    :func:`speechedge.audio.trim_silence` (:func:`speechedge.audio.voiced_frames`); ``(0, 0)`` for a silent row."""
    b, n = x.shape[0], x.shape[1] // frame
    rms = x[:, : n * frame].reshape(b, n, frame).double().pow(2).mean(-1).sqrt()
    first, last, voiced = voiced_frames(rms.cpu().numpy(), rel)
    return [(int(f) * frame, (int(la) + 1) * frame) if ok else (0, 0) for f, la, ok in zip(first, last, voiced)]


def fill_with_neighbours(x: torch.Tensor, donors: torch.Tensor, rng: np.random.Generator, prob: float,
                         sample_rate: int = 16000, *, same: bool = False, pairs: np.ndarray | None = None
                         ) -> torch.Tensor:
    """``x (B, T)`` word clips with, on a ``prob`` share of them, the silence before the word filled with the
    end of a donor clip's word and the silence after it with the start of another's (each 0-80 ms from the word,
    scaled to -6..+3 dB of the word's RMS): the 1-second window of a word said inside a sentence. The word's own
    samples are unchanged. ``donors (D, T)``: clips of other words; ``same``: ``donors`` is ``x`` (a clip is
    never its own neighbour); ``pairs (B, 2)``: the donor row of each clip's word before and after (instead of
    a random row; -1: none on that side)."""
    b, t = x.shape
    out = x.clone()
    spans = voiced_spans(x)
    dspans = spans if same else voiced_spans(donors)
    max_gap = int(0.08 * sample_rate)
    for i in np.flatnonzero(rng.random(b) < prob).tolist():
        s, e = spans[i]
        if e <= s:
            continue
        level = x[i, s:e].pow(2).mean().sqrt()
        for side, before in enumerate((True, False)):
            if pairs is None:
                j = int(rng.integers(len(donors) - (1 if same else 0)))
                j += 1 if same and j >= i else 0
            elif (j := int(pairs[i, side])) < 0:
                continue
            ds, de = dspans[j]
            gap, db = int(rng.integers(0, max_gap + 1)), float(rng.uniform(-6, 3))
            if de <= ds:
                continue
            seg = donors[j, ds:de]
            seg = seg * (level / seg.pow(2).mean().sqrt().clamp_min(1e-8) * 10 ** (db / 20))
            if before and s - gap > 0:
                n = min(s - gap, len(seg))
                out[i, s - gap - n: s - gap] += seg[len(seg) - n:]
            elif not before and e + gap < t:
                n = min(t - e - gap, len(seg))
                out[i, e + gap: e + gap + n] += seg[:n]
    return out


class SameVoiceDonors:
    """Other words of a clip's own speaker, from ``clips`` (the training clips): the neighbours of
    :func:`fill_with_neighbours` with ``neighbours_voice = "same"``."""

    def __init__(self, clips: ClipSet) -> None:
        self.clips = clips
        by: dict[str, list[int]] = {}
        for i, s in enumerate(clips.speakers):
            by.setdefault(s, []).append(i)
        self.by_speaker = {s: np.asarray(v) for s, v in by.items()}
        self.labels = np.asarray(clips.labels, dtype=object)

    def draw(self, speakers: list[str], labels: list[str], rng: np.random.Generator
             ) -> tuple[torch.Tensor, np.ndarray] | None:
        """For each (speaker, label) two clips of that speaker with other labels: ``(donors (D, T), pairs (B, 2))``
        (-1 where the speaker has no other word); None when no clip has one."""
        pick = np.full((len(speakers), 2), -1)
        rows: list[int] = []
        for i, (s, lab) in enumerate(zip(speakers, labels)):
            pool = self.by_speaker.get(s)
            if pool is None:
                continue
            pool = pool[self.labels[pool] != lab]
            if not len(pool):
                continue
            for side in range(2):
                pick[i, side] = len(rows)
                rows.append(int(pool[rng.integers(len(pool))]))
        return (self.clips.batch(rows), pick) if rows else None


def _embed_all(model: FewShotKWS, clips: ClipSet, device, batch: int = 256) -> torch.Tensor:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(clips), batch):
            x = clips.batch(range(i, min(i + batch, len(clips)))).to(device)
            out.append(model(model.features(x)).cpu())
    return torch.cat(out)


def evaluate(model: FewShotKWS, clips: ClipSet, *, method: str, ways: int = 5, shots=(1, 5), queries: int = 15,
             episodes: int = 1000, open_queries: int | None = None, seed: int = 0, temperature: float = 1.0,
             gamma: float = 3.0, device=None, embed=None) -> tuple[dict, dict]:
    """Closed-set accuracy (known queries) and open-set AUROC (unknown vs known queries) per shot count,
    each a mean over ``episodes`` with a 95% confidence interval. Unknown queries come from the classes of
    ``clips`` outside each episode (``open_queries``, default ``ways * queries``).

    Returns ``(metrics, scores)``: ``metrics["5shot"] = {"acc", "acc_ci95", "auroc", "auroc_ci95",
    "episodes"}`` and ``scores["5shot"] = (unknown_scores_of_unknown_queries, ..._of_known_queries)``
    pooled over episodes (for ROC curves). ``embed(model, clips, device) -> (N, dim)`` replaces the clip
    embeddings (default: the model on each isolated clip; the streaming benchmark passes the streaming one)."""
    device = device or next(model.parameters()).device
    emb = (embed or _embed_all)(model, clips, device)
    labels, vocab = clips.label_ids()
    open_queries = ways * queries if open_queries is None else open_queries
    results, scores = {}, {}
    for k in shots:
        sampler = EpisodeSampler(labels, ways, k, queries, open_queries, seed=seed + k)
        accs, aucs, pooled_u, pooled_k = [], [], [], []
        for _ in range(episodes):
            ep = sampler.sample()
            sup = emb[torch.from_numpy(ep.support.reshape(-1))].view(ways, k, -1).to(device)
            q = emb[torch.from_numpy(ep.query)].to(device)
            qlab = torch.from_numpy(ep.query_labels)
            with torch.no_grad():
                pred, unk = open_set_scores(sup, q, method=method, temperature=temperature,
                                            dummy=model.dummy, gamma=gamma)
            pred, unk = pred.cpu(), unk.cpu().numpy()
            known = (qlab >= 0).numpy()
            accs.append(float((pred[known] == qlab[known]).float().mean()))
            if (~known).any():
                aucs.append(auroc(unk[~known], unk[known]))
                pooled_u.append(unk[~known])
                pooled_k.append(unk[known])
        acc, acc_ci = mean_ci95(accs)
        auc, auc_ci = mean_ci95(aucs) if aucs else (float("nan"), float("nan"))
        results[f"{k}shot"] = {"acc": acc, "acc_ci95": acc_ci, "auroc": auc, "auroc_ci95": auc_ci,
                               "episodes": episodes}
        if pooled_u:
            scores[f"{k}shot"] = (np.concatenate(pooled_u), np.concatenate(pooled_k))
    return results, scores


def _roc_png(path: Path, results: dict, scores: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speechedge.io import atomic_savefig

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for name, (u, k) in scores.items():
        r = results[name]
        thr = np.unique(np.concatenate([u, k]))[::-1]
        tpr = [(u >= t).mean() for t in thr]
        fpr = [(k >= t).mean() for t in thr]
        ax.plot([0, *fpr, 1], [0, *tpr, 1], label=f"{name}: AUROC {r['auroc']:.3f}")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("known queries flagged unknown (FPR)")
    ax.set_ylabel("unknown queries rejected (TPR)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("open-set ROC")
    fig.tight_layout()
    atomic_savefig(fig, path)


def load_model(exp_dir: str | Path, which: str = "best", device="cpu") -> tuple[FewShotKWS, FewShotConfig]:
    """The trained model of ``exp_dir`` (``checkpoint-{which}.pt``) and the config it was trained with."""
    model, cfg, _ = _load_with_state(exp_dir, which, device)
    return model, cfg


def _load_with_state(exp_dir: str | Path, which: str = "best", device="cpu") -> tuple[FewShotKWS, FewShotConfig, dict]:
    """:func:`load_model` and the whole checkpoint dict (its step and score, for :func:`teacher_record`)."""
    model, state = load_checkpoint(exp_dir, which, device)
    if not isinstance(model, FewShotKWS):
        raise ValueError(f"{exp_dir}: not a few-shot KWS experiment ({state['arch'].get('name')})")
    return model, config_from_dict(FewShotConfig, state["config"], f"{exp_dir} config"), state


def train(cfg: FewShotConfig, exp_dir: str | Path) -> dict:
    """Train (or resume) in ``exp_dir``; returns the final metrics record."""
    if not cfg.train_manifest or not cfg.val_manifest:
        raise ValueError("set train_manifest and val_manifest (splitGSC manifests from `speechedge prepare "
                         "speech-commands`)")
    fe = cfg.frontend
    teacher_cpu, teacher_meta = _load_teacher(cfg) if cfg.teacher_exp_dir else (None, None)  # before any clip

    def build(device, dist_env, exp) -> TrainTask:
        load = dict(sample_rate=fe.sample_rate, clip_samples=cfg.clip_samples)
        train_clips = load_manifest_clips(cfg.train_manifest, **load)
        val_clips = load_manifest_clips(cfg.val_manifest, **load)
        aux_clips = load_manifest_clips(cfg.libriword_manifest, splits=("train",), **load) if cfg.aux_weight > 0 else None
        aux_ids, aux_vocab = aux_clips.label_ids() if aux_clips is not None else (None, [])
        labels, vocab = train_clips.label_ids()
        log.info("train: %d clips of %d classes; val: %d clips; LibriWord: %s", len(train_clips), len(vocab),
                 len(val_clips), f"{len(aux_clips)} clips of {len(aux_vocab)} words" if aux_clips else "off")
        model = FewShotKWS(cfg.tau, cfg.method, cfg.num_dummies, len(aux_vocab), fe, cfg.clip_samples,
                           cfg.blocks, cfg.block_act).to(device)
        if cfg.init_from:
            _init_from(model, cfg.init_from, aux_vocab)
        modules = {}
        if cfg.qat:
            if dist_env.world_size > 1:
                raise ValueError("qat = true runs in one process (its quantizers' ranges are not synchronised "
                                 "between torchrun processes); start it without torchrun")
            fq = ActivationFakeQuant(model.encoder).attach()
            fq.freeze_norms()
            modules["qat"] = fq.to(device)
            log.info("quantization-aware training: %d int8 activation points", len(fq.quant))
        teacher = None
        if teacher_cpu is not None:
            if dist_env.world_size > 1:  # DDP wraps the model only: each process would train its own map
                raise ValueError("teacher_exp_dir (embedding distillation) runs in one process (the map to the "
                                 "teacher's embedding is not synchronised between torchrun processes); start it "
                                 "without torchrun")
            teacher = teacher_cpu.to(device)
            modules["kd"] = nn.Linear(model.encoder.embedding_dim, teacher.encoder.embedding_dim).to(device)
            log.info("embedding distillation from %s (%d -> %d dims), weight %s", cfg.teacher_exp_dir,
                     model.encoder.embedding_dim, teacher.encoder.embedding_dim, cfg.kd_weight)
        opt = torch.optim.Adam(trained_parameters(model, modules), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.steps))
        sampler = EpisodeSampler(labels, cfg.ways, cfg.shots, cfg.queries, cfg.open_queries,
                                 seed=cfg.seed * 1000 + dist_env.rank)
        aug = Augmenter(cfg.augment, fe.sample_rate, load_noise_bank(cfg.noise_dir, fe.sample_rate),
                        seed=cfg.seed * 1000 + dist_env.rank)
        aux_rng = np.random.default_rng(cfg.seed * 1000 + 7 + dist_env.rank)
        spec_gen = torch.Generator().manual_seed(cfg.seed + 99 + dist_env.rank)
        ctx_rng = np.random.default_rng(cfg.seed * 1000 + 11 + dist_env.rank)
        ctx = int(round(cfg.context_s * fe.sample_rate))
        nb_rng = np.random.default_rng(cfg.seed * 1000 + 13 + dist_env.rank)
        same_voice = (SameVoiceDonors(train_clips) if cfg.neighbours_prob > 0 and cfg.neighbours_voice == "same"
                      else None)

        def with_context(x: torch.Tensor) -> torch.Tensor:
            """Each clip with ``ctx`` samples on both sides: silence, or half the time the edges of two other
            clips of the batch at -20..0 dB (a word before and after, as in running speech)."""
            b = len(x)
            left, right = torch.zeros(b, ctx, device=x.device), torch.zeros(b, ctx, device=x.device)
            if b > 1 and ctx:
                take = torch.from_numpy(ctx_rng.random(b) < 0.5).to(x.device)[:, None]
                g = torch.from_numpy(10 ** (ctx_rng.uniform(-20, 0, (b, 1)) / 20)).float().to(x.device)
                n = min(ctx, x.shape[1])
                left[:, ctx - n:] = torch.where(take, g * x.roll(1, 0)[:, -n:], left[:, ctx - n:])
                right[:, :n] = torch.where(take, g * x.roll(-1, 0)[:, :n], right[:, :n])
            return torch.cat([left, x, right], 1)

        def with_neighbours(x: torch.Tensor, clip_set: ClipSet, rows, donors: torch.Tensor, same: bool) -> torch.Tensor:
            """``fill_with_neighbours`` on the clips ``clip_set[rows]``: donors from ``donors`` (``same``: the clips
            themselves), or with ``neighbours_voice = "same"`` other words of each clip's own speaker."""
            if same_voice is None:
                return fill_with_neighbours(x, donors, nb_rng, cfg.neighbours_prob, fe.sample_rate, same=same)
            got = same_voice.draw([clip_set.speakers[r] for r in rows], [clip_set.labels[r] for r in rows], nb_rng)
            if got is None:
                return x
            return fill_with_neighbours(x, got[0].to(device), nb_rng, cfg.neighbours_prob, fe.sample_rate,
                                        pairs=got[1])

        def train_step(step: int, net) -> dict:
            ep = sampler.sample()
            idx = np.concatenate([ep.support.reshape(-1), ep.query])
            in_context = ctx > 0 and ctx_rng.random() < cfg.context_prob
            pad = with_context if in_context else (lambda x: x)
            ep_x = train_clips.batch(idx).to(device)
            n_fs = len(idx)
            if aux_clips is not None:
                aidx = aux_rng.choice(len(aux_clips), cfg.aux_batch)
                aux_x = aux_clips.batch(aidx).to(device)
            if cfg.neighbours_prob > 0:  # the episode's clips first, their donors the LibriWord batch as drawn
                ep_x = with_neighbours(ep_x, train_clips, idx, aux_x if aux_clips is not None else ep_x,
                                       same=aux_clips is None)
                if aux_clips is not None:
                    aux_x = with_neighbours(aux_x, aux_clips, aidx, aux_x, same=True)
            x = aug(pad(ep_x))
            if aux_clips is not None:
                x = torch.cat([x, aug(pad(aux_x))])
            feats = model.features(x)
            if cfg.spec_augment:
                feats = spec_augment(feats, spec_gen)
            cuda = device.type == "cuda"
            if cfg.qat_consistency:  # the float pass below replays this pass's dropout masks
                rng_before = torch.cuda.get_rng_state(device) if cuda else torch.get_rng_state()
            emb = net(feats)
            n_sup = cfg.ways * cfg.shots
            parts = {}
            if cfg.qat_consistency:  # the float model on the same input with the same dropout masks
                with fq.disabled(), torch.random.fork_rng(devices=[device] if cuda else []):
                    torch.cuda.set_rng_state(rng_before, device) if cuda else torch.set_rng_state(rng_before)
                    ref = net(feats)
                ref = ref.detach()  # the quantized embedding moves toward the float one, not the other way
                err = (emb - ref).pow(2).sum(1).mean() / ref.pow(2).sum(1).mean().clamp_min(1e-8)
                parts["qat"] = cfg.qat_consistency * err
            loss, info = episode_loss(emb[:n_sup].view(cfg.ways, cfg.shots, -1), emb[n_sup:n_fs],
                                      torch.from_numpy(ep.query_labels).to(device), method=cfg.method,
                                      temperature=cfg.temperature, dummy=model.dummy, gamma=cfg.gamma,
                                      lambda_u=cfg.lambda_u)
            parts.update({"episode": loss, "acc": info["acc"]})
            if teacher is not None:
                with torch.no_grad():
                    target = teacher(feats)
                err = (modules["kd"](emb) - target).pow(2).sum(1) / target.pow(2).sum(1).clamp_min(1e-8)
                parts["kd"] = cfg.kd_weight * err.mean()
            if aux_clips is not None:
                aux_logits = model.aux_head(emb[n_fs:])
                parts["aux"] = cfg.aux_weight * F.cross_entropy(aux_logits, torch.from_numpy(aux_ids[aidx]).to(device))
            return parts

        def evaluate_val(step: int) -> tuple[dict, float]:
            with (fq.observing(False) if cfg.qat else contextlib.nullcontext()):
                res, _ = evaluate(model, val_clips, method=cfg.method, ways=min(5, len(set(val_clips.labels)) - 1),
                                  shots=(cfg.eval_shots,), queries=cfg.eval_queries, episodes=cfg.eval_episodes,
                                  seed=cfg.seed, temperature=cfg.temperature, gamma=cfg.gamma, device=device)
            r = res[f"{cfg.eval_shots}shot"]
            return {"val_acc": r["acc"], "val_auroc": r["auroc"]}, (r["acc"] + r["auroc"]) / 2

        return TrainTask(model=model, optimizer=opt, scheduler=sched, train_step=train_step, evaluate=evaluate_val,
                         steps=cfg.steps, eval_every=cfg.eval_every, modules=modules,
                         generators={"sampler": sampler.rng, "aux": aux_rng, "aug": aug.gen, "specaug": spec_gen,
                                     "context": ctx_rng,
                                     # only when used: checkpoints of runs without it resume as they were
                                     **({"neighbours": nb_rng} if cfg.neighbours_prob > 0 else {})},
                         meta={"aux_vocab": aux_vocab, **({"teacher": teacher_meta} if teacher_meta else {})},
                         curves=["train_loss", "train_acc", "val_acc", "val_auroc"])

    return fit(cfg, exp_dir, build)


def _load_teacher(cfg: FewShotConfig) -> tuple[FewShotKWS, dict]:
    """``teacher_exp_dir``'s best model, frozen in eval mode, and its :func:`teacher_record`; refused (naming
    the option) when it is not a few-shot experiment or computes other features than ``cfg``."""
    where = f"teacher_exp_dir={cfg.teacher_exp_dir}"
    try:
        teacher, tcfg, state = _load_with_state(cfg.teacher_exp_dir)
    except (FileNotFoundError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None
    for name, mine, theirs in (("frontend", cfg.frontend, tcfg.frontend), ("clip_s", cfg.clip_s, tcfg.clip_s)):
        if mine != theirs:
            raise ValueError(f"{where}: the teacher's {name} is {theirs}, this config's {mine}; distillation "
                             "needs the same features")
    return teacher.requires_grad_(False).eval(), teacher_record(cfg.teacher_exp_dir, state)


def _init_from(model: FewShotKWS, exp_dir: str, aux_vocab: list[str]) -> None:
    """Weights of ``exp_dir``'s best checkpoint into ``model`` (same architecture); its LibriWord head only when
    the vocabularies are equal."""
    src, state = load_checkpoint(exp_dir, "best")
    same = ("tau", "blocks", "act")
    if not isinstance(src, FewShotKWS) or any(src.arch.get(k) != model.arch.get(k) for k in same):
        want = ", ".join(f"{k} {model.arch.get(k)}" for k in same if k in model.arch or k == "tau")
        raise ValueError(f"init_from={exp_dir}: not a few-shot experiment of the same architecture ({want})")
    weights = src.state_dict()
    if state.get("meta", {}).get("aux_vocab") != aux_vocab:
        weights = {k: v for k, v in weights.items() if not k.startswith("aux_head.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or any(not k.startswith("aux_head.") for k in missing):
        raise ValueError(f"init_from={exp_dir}: weights do not fit (missing {missing}, unexpected {unexpected})")
    log.info("initialised from %s (LibriWord head %s)", exp_dir, "kept" if not missing else "new")


def evaluate_experiment(exp_dir: str | Path, data: str | Path, *, ways: int = 5, shots=(1, 5), queries: int = 15,
                        episodes: int = 1000, seed: int = 0, roc_png: str | Path | None = None
                        ) -> tuple[dict, FewShotConfig, ClipSet]:
    """Evaluate the best checkpoint of ``exp_dir`` on a manifest or a Speech Commands-layout folder (and plot
    the ROC curves to ``roc_png`` when given). Returns ``(metrics, config, clips)`` (see :func:`evaluate`)."""
    model, cfg = load_model(exp_dir)
    clips = _load_clips(data, cfg.frontend.sample_rate, cfg.clip_samples)
    _check_ways(data, clips, ways)
    metrics, scores = evaluate(model, clips, method=cfg.method, ways=ways, shots=shots, queries=queries,
                               episodes=episodes, seed=seed, temperature=cfg.temperature, gamma=cfg.gamma)
    if roc_png is not None:
        _roc_png(Path(roc_png), metrics, scores)
    return metrics, cfg, clips


def _load_clips(data: str | Path, sample_rate: int, clip_samples: int) -> ClipSet:
    load = dict(sample_rate=sample_rate, clip_samples=clip_samples)
    return load_folder_clips(data, **load) if Path(data).is_dir() else load_manifest_clips(data, **load)


def _check_ways(data, clips: ClipSet, ways: int) -> None:
    n_classes = len(set(clips.labels))
    if n_classes <= ways:
        raise ValueError(f"{data}: {n_classes} classes; {ways}-way open-set episodes need at least {ways + 1}")


def evaluate_exported(folder: str | Path, data: str | Path, *, ways: int = 5, shots=(1, 5), queries: int = 15,
                      episodes: int = 1000, seed: int = 0, precision: str = "fp32",
                      roc_png: str | Path | None = None) -> tuple[dict, dict, ClipSet]:
    """:func:`evaluate_experiment` for an exported few-shot folder (e.g. the shipped pretrained model, which has
    no checkpoint): each clip's embedding as the torch-free runtime computes it (:class:`KWSModel
    <speechedge.runtime.kws.KWSModel>`: the Numba frontend, the model's input level normalization, its
    ``precision`` TFLite window model), its open-set rule from ``fewshot.json`` / ``dummy_prototypes.npz``;
    the same episodes as :func:`evaluate_experiment` for the same ``seed``. Returns ``(metrics, fewshot_rule,
    clips)``."""
    import tempfile
    from types import SimpleNamespace

    from speechedge.models.fewshot import DummyPrototypes
    from speechedge.runtime.kws import KWSModel

    if not Path(folder).is_dir():
        raise FileNotFoundError(f"{folder}: no such model folder (an export of `speechedge export`, or kws_fewshot)")
    if precision == "int8" and not (Path(folder) / "model_int8.tflite").exists():
        raise FileNotFoundError(f"{folder}: no int8 model (model_int8.tflite); `speechedge export --int8` writes one "
                                "(the shipped model is fp32: benchmarks/kws_int8_exported.py FOLDER ... --write DIR "
                                "makes a copy with its int8 models)")
    with tempfile.TemporaryDirectory() as tmp:  # no enrolled keywords: they play no part in the episodes
        m = KWSModel(folder, precision=precision, keywords_file=Path(tmp) / "none.json")
    if m.kind != "embedding" or "method" not in m.fewshot:
        raise ValueError(f"{folder}: not an exported few-shot model (a classifier, or no fewshot.json); "
                         "few-shot episodes need an embedding model (`speechedge export` of a kws-fewshot experiment)")
    clips = _load_clips(data, m.frontend.sample_rate, m.clip_samples)
    _check_ways(data, clips, ways)
    emb = torch.from_numpy(np.stack([m.run_features(m.features(a)) for a in clips.audio]))
    dummy = None
    if m.fewshot["method"] == "dprotonet":
        state = {k: torch.from_numpy(v) for k, v in m.dummy.items()}
        dummy = DummyPrototypes(emb.shape[1], num_dummies=state["out.weight"].shape[0] // emb.shape[1],
                                hidden=state["point.0.weight"].shape[0])
        dummy.load_state_dict(state)
    metrics, scores = evaluate(SimpleNamespace(dummy=dummy), clips, method=m.fewshot["method"], ways=ways,
                               shots=shots, queries=queries, episodes=episodes, seed=seed,
                               temperature=m.fewshot["temperature"], gamma=m.fewshot["gamma"],
                               device=torch.device("cpu"), embed=lambda *_: emb)
    if roc_png is not None:
        _roc_png(Path(roc_png), metrics, scores)
    return metrics, m.fewshot, clips


def evaluate_cli(exp_dir: str | None, data: str, *, model: str | None = None, precision: str = "fp32",
                 ways: int = 5, shots=(1, 5), queries: int = 15, episodes: int = 1000, seed: int = 0,
                 json_path: str | None = None, roc_png: str | None = None) -> int:
    """``eval kws-fewshot``: the table, ``--json``, and the ROC plot at ``roc_png``. An experiment
    (``exp_dir``): default plot beside the JSON, else ``roc_{DATA}.png`` in the experiment, one per test set
    (evaluating another set never overwrites it). An exported folder or a shipped model's name (``model``;
    both None: the shipped few-shot model): the plot beside the JSON or at ``roc_png``, none otherwise (the
    model's folder, perhaps the installed package, is never written)."""
    import json

    episodes_kw = dict(ways=ways, shots=shots, queries=queries, episodes=episodes, seed=seed)
    if exp_dir is not None:
        if roc_png is None:
            roc_png = (Path(json_path).with_suffix(".png") if json_path
                       else Path(exp_dir) / f"roc_{Path(data).name.split('.')[0] or 'data'}.png")
        metrics, cfg, clips = evaluate_experiment(exp_dir, data, **episodes_kw, roc_png=roc_png)
        what, source = f"{cfg.method} tau={cfg.tau} aux_weight={cfg.aux_weight}", {"exp_dir": str(exp_dir)}
    else:
        from speechedge.pretrained import resolve_model

        folder = resolve_model(model)
        if roc_png is None and json_path:
            roc_png = Path(json_path).with_suffix(".png")
        metrics, rule, clips = evaluate_exported(folder, data, **episodes_kw, precision=precision, roc_png=roc_png)
        what, source = f"{folder} ({precision}, {rule['method']})", {"model": str(folder), "precision": precision}
    print(f"{what} on {data} ({len(set(clips.labels))} classes, {len(clips)} clips), {ways}-way, {queries} "
          f"queries/class + {ways * queries} unknown queries, {episodes} episodes")
    print("| shots | accuracy | 95% CI | AUROC | 95% CI |\n|---:|---:|---:|---:|---:|")
    for k, r in metrics.items():
        print(f"| {k} | {r['acc']:.4f} | +-{r['acc_ci95']:.4f} | {r['auroc']:.4f} | +-{r['auroc_ci95']:.4f} |")
    if roc_png is not None:
        print(f"ROC plot: {roc_png}")
    if json_path:
        from speechedge.io import atomic_write_text

        atomic_write_text(json_path, json.dumps({**source, "data": str(data), "results": metrics}, indent=2))
    return 0


def main(config_path: str | None, exp_dir: str, overrides: list[str]) -> int:
    cfg = load_config(FewShotConfig, config_path, overrides)
    train(cfg, exp_dir)
    return 0
