"""Few-shot open-set keyword spotting: episodes, ProtoNet, D-ProtoNet (dummy prototypes), metrics.

An episode has ``ways`` known classes with ``shots`` support and ``queries`` query clips each, plus
``open_queries`` clips of classes outside the episode (the unknowns an open-set detector must reject).

- ProtoNet: prototypes are support means; logits are ``-||q - p||^2 / temperature``.
- D-ProtoNet: a generator maps the episode's prototypes to ``num_dummies`` dummy prototypes (per-prototype
  MLP, max-pool over the episode, linear to ``num_dummies x dim``); for each query the dummy is chosen by a
  Gumbel-softmax over its distances to the dummies (straight-through in training, the nearest at test).
  Classification is over ``ways + 1`` classes, the dummy's logit using a ``gamma`` times larger temperature;
  loss = CE on known queries + ``lambda_u`` x CE pushing unknown queries to the dummy class; the unknown
  score is the dummy's probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "Episode", "EpisodeSampler", "prototypes", "protonet_logits", "DummyPrototypes", "open_set_scores",
    "episode_loss", "auroc", "mean_ci95",
]


@dataclass(frozen=True)
class Episode:
    """Indices into a dataset. ``query_labels`` are 0..ways-1 for known queries and -1 for unknown ones."""

    classes: tuple
    support: np.ndarray  # (ways, shots)
    query: np.ndarray  # (num_queries,)
    query_labels: np.ndarray  # (num_queries,)


class EpisodeSampler:
    """Seeded N-way K-shot episodes with open-set queries over a list of per-item labels.

    Args:
        labels: class label of each item.
        ways, shots, queries: known classes, support clips and query clips per class.
        open_queries: total unknown queries from classes outside the episode (drawn from
            ``open_labels`` if given, else from the other classes of ``labels``).
        open_labels: optional labels of a separate unknown pool whose items follow the known ones at
            ``open_offset`` in a concatenated dataset.
    """

    def __init__(self, labels, ways: int, shots: int, queries: int, open_queries: int = 0, seed: int = 0,
                 open_labels=None, open_offset: int = 0) -> None:
        labels = np.asarray(labels)
        self.by_class = {c: np.flatnonzero(labels == c) for c in sorted(set(labels.tolist()))}
        need = shots + queries
        self.classes = [c for c, idx in self.by_class.items() if len(idx) >= need]
        if len(self.classes) < ways:
            raise ValueError(f"episodes need {ways} classes with >= {need} items each; only {len(self.classes)} "
                             f"of {len(self.by_class)} classes have enough ({ {c: len(i) for c, i in self.by_class.items()} })")
        self.ways, self.shots, self.queries, self.open_queries = ways, shots, queries, open_queries
        if open_labels is not None:
            ol = np.asarray(open_labels)
            self.open_by_class = {c: np.flatnonzero(ol == c) + open_offset for c in sorted(set(ol.tolist()))}
        else:
            self.open_by_class = self.by_class
        if open_queries and len(self.open_by_class) <= (ways if open_labels is None else 0):
            raise ValueError(f"open-set queries need classes outside the episode: {len(self.open_by_class)} classes "
                             f"for {ways}-way episodes")
        self.rng = np.random.default_rng(seed)

    def sample(self) -> Episode:
        rng = self.rng
        chosen = [self.classes[i] for i in rng.choice(len(self.classes), self.ways, replace=False)]
        support, query, qlab = [], [], []
        for k, c in enumerate(chosen):
            idx = rng.choice(self.by_class[c], self.shots + self.queries, replace=False)
            support.append(idx[: self.shots])
            query.extend(idx[self.shots :])
            qlab.extend([k] * self.queries)
        if self.open_queries:
            others = [c for c in self.open_by_class if c not in chosen]
            for c in rng.choice(len(others), self.open_queries, replace=True):
                query.append(int(rng.choice(self.open_by_class[others[c]])))
                qlab.append(-1)
        return Episode(tuple(chosen), np.stack(support), np.asarray(query), np.asarray(qlab))

    def __iter__(self):
        while True:
            yield self.sample()


def prototypes(support: torch.Tensor) -> torch.Tensor:
    """``(ways, shots, dim)`` -> ``(ways, dim)`` class means."""
    return support.mean(dim=1)


def _sqdist(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``(Q, D), (P, D) -> (Q, P)`` squared Euclidean distances."""
    return (q[:, None, :] - p[None, :, :]).pow(2).sum(-1)


def protonet_logits(query: torch.Tensor, protos: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return -_sqdist(query, protos) / temperature


class DummyPrototypes(nn.Module):
    """Generates ``num_dummies`` dummy prototypes from an episode's prototypes (D-ProtoNet)."""

    def __init__(self, dim: int, num_dummies: int = 3, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or dim
        self.num_dummies = num_dummies
        self.point = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, num_dummies * dim)

    def forward(self, protos: torch.Tensor) -> torch.Tensor:
        """``(ways, dim)`` -> ``(num_dummies, dim)``; invariant to the order of the prototypes."""
        pooled = self.point(protos).max(dim=0).values
        return self.out(pooled).view(self.num_dummies, -1)


def _dprotonet_logits(query, protos, dummies, temperature, gamma, tau_gumbel, training):
    known = -_sqdist(query, protos) / temperature  # (Q, ways)
    d_dummy = -_sqdist(query, dummies) / (gamma * temperature)  # (Q, L)
    if training:
        w = F.gumbel_softmax(d_dummy, tau=tau_gumbel, hard=True, dim=-1)
    else:
        w = F.one_hot(d_dummy.argmax(-1), d_dummy.shape[-1]).to(d_dummy.dtype)
    dummy_logit = (w * d_dummy).sum(-1, keepdim=True)
    return torch.cat([known, dummy_logit], dim=-1)  # (Q, ways + 1)


def episode_loss(emb_support: torch.Tensor, emb_query: torch.Tensor, query_labels: torch.Tensor, *,
                 method: str, temperature: float = 1.0, dummy: DummyPrototypes | None = None, gamma: float = 3.0,
                 lambda_u: float = 0.1, tau_gumbel: float = 1.0) -> tuple[torch.Tensor, dict]:
    """Few-shot loss of one episode and its accuracy on the known queries.

    Args:
        emb_support: ``(ways, shots, dim)``; emb_query: ``(Q, dim)``; query_labels: ``(Q,)`` with -1 = unknown.
        method: ``"protonet"`` (unknown queries unused in the loss) or ``"dprotonet"``.
    """
    protos = prototypes(emb_support)
    known = query_labels >= 0
    if method == "protonet":
        logits = protonet_logits(emb_query[known], protos, temperature)
        loss = F.cross_entropy(logits, query_labels[known])
        acc = (logits.argmax(-1) == query_labels[known]).float().mean()
        return loss, {"acc": float(acc)}
    if method != "dprotonet" or dummy is None:
        raise ValueError(f"method must be 'protonet' or 'dprotonet' (with a DummyPrototypes), got {method!r}")
    logits = _dprotonet_logits(emb_query, protos, dummy(protos), temperature, gamma, tau_gumbel, True)
    ways = protos.shape[0]
    loss = F.cross_entropy(logits[known], query_labels[known])
    if (~known).any():
        target = torch.full(((~known).sum(),), ways, dtype=torch.long, device=logits.device)
        loss = loss + lambda_u * F.cross_entropy(logits[~known], target)
    acc = (logits[known][:, :ways].argmax(-1) == query_labels[known]).float().mean()
    return loss, {"acc": float(acc)}


@torch.no_grad()
def open_set_scores(emb_support: torch.Tensor, emb_query: torch.Tensor, *, method: str, temperature: float = 1.0,
                    dummy: DummyPrototypes | None = None, gamma: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-set predictions and unknown scores (higher = more likely unknown) for the queries.

    ProtoNet: unknown score = 1 - max softmax probability over the known classes. D-ProtoNet: the
    probability of the dummy class.
    """
    protos = prototypes(emb_support)
    if method == "protonet":
        p = protonet_logits(emb_query, protos, temperature).softmax(-1)
        return p.argmax(-1), 1 - p.max(-1).values
    logits = _dprotonet_logits(emb_query, protos, dummy(protos), temperature, gamma, 1.0, False)
    p = logits.softmax(-1)
    return p[:, :-1].argmax(-1), p[:, -1]


def auroc(scores_unknown: np.ndarray, scores_known: np.ndarray) -> float:
    """Area under the ROC curve for "unknown" as the positive class (Mann-Whitney U, ties count 1/2)."""
    s = np.concatenate([scores_unknown, scores_known])
    ranks = np.empty(len(s))
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks of ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_u, n_k = len(scores_unknown), len(scores_known)
    return float((ranks[:n_u].sum() - n_u * (n_u + 1) / 2) / (n_u * n_k))


def mean_ci95(values, student_t: bool = False) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval: the normal approximation (many values, e.g.
    episodes), or with ``student_t`` the t quantile for ``n - 1`` degrees of freedom (a few values, e.g. training
    seeds); nan for fewer than two values."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    if student_t:
        from scipy.stats import t

        q = float(t.ppf(0.975, len(v) - 1))
    else:
        q = 1.96
    return float(v.mean()), float(q * v.std(ddof=1) / np.sqrt(len(v)))
