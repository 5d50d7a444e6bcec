"""What each change of the detector's decision rule does to the DET curve (the ablation behind the rule).

    python benchmarks/kws_detector.py WORK [--model DIR] [--rules 5,11] [--within-class EMB.npz]

``WORK`` is a folder written by ``benchmarks/kws_longform.py`` (``enroll/`` clips and ``streams/``). The
embedding of every 100 ms window of every stream is computed once through the real streaming path (Numba
frontend ring buffer -> TFLite), then each rule is scored on the same embeddings:

1. mean prototype, D-ProtoNet open-set softmax, 3 windows smoothed (the rule before: the training rule);
2. mean prototype, raw squared distance;
3. nearest enrolment exemplar instead of the mean prototype;
4. + agreement: the same keyword above the threshold in 4 consecutive windows, 4 windows smoothed;
5. + calibration: ``1 - d / b`` with ``b`` the background set's mean distance to the nearest exemplar (the rule
   shipped until 2026-12-06: the threshold means the same for every keyword).

and what was tried on top of rule 5 (only 18 kept):

6. cosine distance instead of squared Euclidean (calibrated the same way);
7. test-side normalisation: ``1 - d / k``, ``k`` the window's mean distance to its 10 nearest background
   embeddings (a window of ordinary speech is near many of them);
8. text enrolment: 24 espeak-ng renderings of the keyword's name added to the 3 recorded enrolment clips;
9. perturbed enrolment: each enrolment clip also at vocal-tract-length factors 0.9 and 1.1 (resampled and played
   at 16 kHz: formants, pitch and duration scaled together, as another speaker's), 9 exemplars;
10. the same at 0.85, 0.92, 1.08, 1.15 (15 exemplars);
11. per-exemplar calibration: ``max_i 1 - d_i / b_i``, each enrolment clip against the background set on its own
    (``b_i`` its mean background distance);
18. the same with ``b_i`` the 10th percentile of clip i's background distances (the shipped rule since 2026-12-06:
    the lower tail of the background is where false alarms come from); 19: the median; 105-300: the quantiles
    0.005, 0.01, 0.02, 0.05, 0.2 (the rule number is 100 + 1000 q);
20. per-exemplar z-score against the background distances;
25-27. adaptive symmetric normalisation (AS-norm, speaker verification's score normalisation): the distance
    z-scored against the 20 / 50 / 100 background windows nearest to the enrolment clip and against those nearest
    to the window, the two averaged (the window side also normalises windows of voices that sit near everything);
28. rule 18 with text enrolment by several engines: 8 renderings of the keyword's name per ``--text-engines``
    engine (default the shipped model's training engines, espeak-ng, Pico and hibari) as extra exemplars, each
    calibrated on its own (rule 8 used espeak-ng alone and one scale per keyword);
29. those renderings alone, without the recorded clips (a keyword enrolled from its written name);

and, with ``--within-class EMB.npz`` (embeddings of a labelled word corpus, ``benchmarks/kws_within_class.py``),
distances in an embedding space normalised against how voices move a word's embedding (the within-word
covariance ``W`` pooled over many words and voices; speaker recognition's WCCN / nuisance attribute projection,
with words and voices swapped), exemplars, background set and windows all mapped the same way, then rule 5:

12-14. whitened by ``W`` shrunk towards its mean variance by 0.1, 0.3, 0.6;
15-17. the 4, 8, 16 directions of largest within-word variance projected out;

and, with ``--mask 15,25`` (frame counts), rule 18 on windows whose first and last M frames are replaced by
silence (a keyword in running speech made to look like an enrolment clip said alone; 21, 23, ...) and the better
of the whole and the silenced window (22, 24, ...): one more embedding pass per M.

Prints FRR at 0.5 / 1 / 2 FA/h per rule, the highest score each kind of negative stream reaches under the
shipped rule (an energy gate would only matter if noise or music came near the threshold), and writes
``detector_ablation.json`` and ``detector_det.png`` into WORK.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from speechedge.apps.longform import _match, _match_events, fire, load_streams
from speechedge.audio import read_audio
from speechedge.runtime import KWSModel, StreamingKWS


class _Recorder(StreamingKWS):
    """The detector's streaming path, recording (time, embedding) of every window instead of scoring; with
    ``mask`` > 0 the window's first and last ``mask`` frames are replaced by silence first."""

    mask = 0

    def _evaluate(self, frames_done: int):
        fe = self.model.frontend
        feats = self.ring
        if self.mask:
            feats = feats.copy()
            feats[:, : self.mask] = feats[:, -self.mask:] = np.log(fe.log_floor)
        self.rows.append((((frames_done - 1) * fe.hop_length + fe.n_fft // 2) / fe.sample_rate,
                          self.model.run_features(self.leveled(feats))))


def _embeddings(model: KWSModel, streams, cache: Path, mask: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if cache.exists():
        z = np.load(cache)
        return {s.name: (z[f"{s.name}|t"], z[f"{s.name}|e"]) for s in streams}
    rec = _Recorder(model, threshold=1.0)
    rec.mask = mask
    out = {}
    for s in streams:
        rec.reset()
        rec.rows = []
        for i in range(0, len(s.audio), 1600):
            rec.push(s.audio[i: i + 1600])
        out[s.name] = (np.array([r[0] for r in rec.rows]), np.stack([r[1] for r in rec.rows]))
        print(f"  {s.name}: {len(rec.rows)} windows", file=sys.stderr)
    np.savez(cache, **{f"{k}|{f}": v for k, (t, e) in out.items() for f, v in (("t", t), ("e", e))})
    return out


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    c = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x]), 0)
    i = np.arange(len(x))
    lo = np.maximum(0, i - n + 1)
    return (c[i + 1] - c[lo]) / (i + 1 - lo)[:, None]


def within_class_covariance(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The pooled covariance of embeddings around their word's mean: how voices move one word's embedding."""
    words, idx = np.unique(labels, return_inverse=True)
    means = np.stack([emb[idx == k].mean(0) for k in range(len(words))])
    x = emb - means[idx]
    return x.T @ x / (len(x) - len(words))


def whitening(cov: np.ndarray, shrink: float) -> np.ndarray:
    """``P`` with ``P.T @ C @ P = I`` for ``C`` = ``cov`` shrunk towards its mean variance (WCCN)."""
    c = (1 - shrink) * cov + shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
    w, v = np.linalg.eigh(c)
    return (v / np.sqrt(w)) @ v.T * np.sqrt(np.trace(cov) / len(cov))


def nuisance_projection(cov: np.ndarray, k: int) -> np.ndarray:
    """The projection that removes the ``k`` directions along which voices move a word most (NAP)."""
    w, v = np.linalg.eigh(cov)
    u = v[:, -k:]
    return np.eye(len(cov)) - u @ u.T


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work", type=Path)
    p.add_argument("--model", default=None, help="exported few-shot model (default: the shipped one)")
    p.add_argument("--rules", default=None, help="comma-separated rule numbers to score (default: all)")
    p.add_argument("--mask", type=lambda v: [int(x) for x in v.split(",")], default=[],
                   help="comma-separated frame counts M: adds rules 21+ (rule 18 on windows whose first and last M "
                        "frames are replaced by silence, alone and as the better of the two windows)")
    p.add_argument("--within-class", type=Path, default=None,
                   help="embeddings of a labelled word corpus (benchmarks/kws_within_class.py): adds rules 12-17")
    p.add_argument("--text-engines", default="espeak,pico,hibari",
                   help="rule 28: the engines whose voices (8 each) render the keyword's name")
    args = p.parse_args(argv)
    from speechedge.pretrained import pretrained_dir

    work = args.work
    model = KWSModel(args.model or pretrained_dir(), keywords_file=work / "ablation_keywords.json")
    if not model.calibrated:
        raise SystemExit(f"{model.folder}: no background.npy; re-export the model")
    model.forget()
    names = sorted(p.name for p in (work / "enroll").iterdir() if p.is_dir() and not p.name.startswith("_"))
    for w in names:
        model.enroll(w, [read_audio(f, sample_rate=16000)[0] for f in sorted((work / "enroll" / w).glob("*.wav"))],
                     save=False)
    pos = load_streams(work / "streams" / "positives", positive=True)
    neg = load_streams(work / "streams" / "negatives", positive=False)
    lv = "" if model.level is None else "_level"  # caches of windows with the input level normalization apart
    import hashlib

    # and of each model apart (a cache of another model's embeddings would score garbage)
    lv += "_" + hashlib.sha1(b"".join(f.read_bytes() for f in sorted(Path(model.folder).glob("*.tflite")))).hexdigest()[:8]
    emb = _embeddings(model, pos + neg, work / f"window_embeddings{lv}.npz")
    masked = {m: _embeddings(model, pos + neg, work / f"window_embeddings{lv}_mask{m}.npz", m) for m in args.mask}
    hours = sum(s.duration_s for s in pos + neg) / 3600
    n_events = sum(len(s.events) for s in pos)
    ex = [model.exemplars[w] for w in names]
    protos = np.stack([e.mean(0) for e in ex])
    bg = model.background

    def mean_nearest(x, background=bg):  # rule 5's scale: the background's mean distance to the nearest exemplar
        return ((background[:, None, :] - x[None]) ** 2).sum(-1).min(1).mean()

    b = np.array([mean_nearest(x) for x in ex])

    def d_proto(e):
        return ((e[:, None] - protos[None]) ** 2).sum(-1)

    def d_exemplar(e):
        return np.stack([((e[:, None] - x[None]) ** 2).sum(-1).min(1) for x in ex], 1)

    def softmax(e):
        return np.array([[model.scores(v)[w] for w in names] for v in e])

    def d_cos(e, xs=ex):
        en = e / np.linalg.norm(e, axis=1, keepdims=True)
        return np.stack([(1 - en @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T).min(1) for x in xs], 1)

    bgn = bg / np.linalg.norm(bg, axis=1, keepdims=True)
    b_cos = np.array([(1 - bgn @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T).min(1).mean() for x in ex])

    def knn_background(e, k=10):
        d = (e ** 2).sum(1)[:, None] - 2 * e @ bg.T + (bg ** 2).sum(1)[None]
        return np.sort(d, 1)[:, :k].mean(1)

    keep = {r.strip() for r in args.rules.split(",")} if args.rules else None

    def wanted(n: int) -> bool:
        return keep is None or str(n) in keep

    def rule_exemplars(xs, bs):
        return lambda e: 1 - np.stack([((e[:, None] - x[None]) ** 2).sum(-1).min(1) for x in xs], 1) / bs

    rules = [
        ("1. mean prototype, D-ProtoNet softmax (before)", softmax, 3, 1, np.linspace(0.05, 0.999, 200)),
        ("2. mean prototype, raw distance", lambda e: -d_proto(e), 3, 1, -np.linspace(0, 60, 241)),
        ("3. nearest exemplar", lambda e: -d_exemplar(e), 3, 1, -np.linspace(0, 60, 241)),
        ("4. + agreement (smooth 4, agree 4)", lambda e: -d_exemplar(e), 4, 4, -np.linspace(0, 60, 241)),
        ("5. + background calibration, 1 - d / b (before)", lambda e: 1 - d_exemplar(e) / b, 4, 4, np.linspace(0, 1, 401)),
        ("6. cosine distance, calibrated", lambda e: 1 - d_cos(e) / b_cos, 4, 4, np.linspace(0, 1, 401)),
        ("7. test-side normalisation (10 nearest background)", lambda e: 1 - d_exemplar(e) / knn_background(e)[:, None],
         4, 4, np.linspace(-1, 1, 401)),
    ]
    if wanted(8):
        from speechedge.synth.engines import make_voices, synthesize

        text_voices = make_voices(24, np.random.default_rng(7), ["espeak"])
        ex_text = [np.vstack([x, np.stack([model.embed(0.5 * synthesize(v, w)) for v in text_voices])])
                   for w, x in zip(names, ex)]
        b_text = np.array([mean_nearest(x) for x in ex_text])
        rules.append(("8. + 24 espeak-ng renderings of the keyword's name", rule_exemplars(ex_text, b_text), 4, 4,
                      np.linspace(0, 1, 401)))
    if wanted(28) or wanted(29):  # renderings by voices of several engines, each rendering calibrated on its own (rule 18)
        from speechedge.synth.engines import render_keyword

        engines = [e for e in args.text_engines.split(",") if e]
        renders = {w: render_keyword(w, engines=engines) for w in names}  # what `demo kws --enroll-text` adds
        ex_28 = [np.vstack([x, np.stack([model.embed(c) for c in renders[w]])]) for w, x in zip(names, ex)]
        s_28 = [model._background_scales(x) for x in ex_28]  # the runtime's per-exemplar scale (rule 18)
        n_text = len(renders[names[0]])
        rules.append((f"28. rule 18 + {n_text} renderings of the keyword's name by {'/'.join(engines)} voices",
                      lambda e: np.stack([(1 - ((e[:, None] - x[None]) ** 2).sum(-1) / sc).max(1)
                                          for x, sc in zip(ex_28, s_28)], 1), 4, 4, np.linspace(-1, 1, 801)))
        if wanted(29):  # the renderings alone: a keyword enrolled from its name, no recording
            n_rec = [len(x) for x in ex]
            rules.append((f"29. the {n_text} renderings alone (no recorded clip), calibrated as rule 18",
                          lambda e: np.stack([(1 - ((e[:, None] - x[k:][None]) ** 2).sum(-1) / sc[k:]).max(1)
                                              for x, sc, k in zip(ex_28, s_28, n_rec)], 1), 4, 4,
                          np.linspace(-1, 1, 801)))
    if wanted(9) or wanted(10):
        from speechedge.audio import resample

        clips = {w: [read_audio(f, sample_rate=16000)[0] for f in sorted((work / "enroll" / w).glob("*.wav"))]
                 for w in names}

        def perturbed(factors):
            xs = [np.vstack([x, np.stack([model.embed(resample(c, 16000, int(round(16000 / f)))) for c in clips[w]
                                          for f in factors])]) for w, x in zip(names, ex)]
            return xs, np.array([mean_nearest(x) for x in xs])

        for n, factors in ((9, (0.9, 1.1)), (10, (0.85, 0.92, 1.08, 1.15))):
            if wanted(n):
                rules.append((f"{n}. + enrolment clips at vocal-tract factors " + ", ".join(map(str, factors)),
                              rule_exemplars(*perturbed(factors)), 4, 4, np.linspace(0, 1, 401)))
    d_bg = [((bg[:, None, :] - x[None]) ** 2).sum(-1) for x in ex]  # (background, exemplar) per keyword

    def per_clip(scales):  # max_i 1 - d_i / s_i: each exemplar calibrated against the background set on its own
        return lambda e: np.stack([(1 - ((e[:, None] - x[None]) ** 2).sum(-1) / s).max(1) for x, s in zip(ex, scales)],
                                  1)

    r18 = per_clip([model.background_scale[w] for w in names])  # the runtime's own scales: the shipped rule
    rules.append(("11. per-exemplar calibration", per_clip([d.mean(0) for d in d_bg]), 4, 4, np.linspace(0, 1, 401)))
    rules.append(("18. per-exemplar calibration against the 10th percentile of the background distances (shipped)",
                  r18, 4, 4, np.linspace(-1, 1, 801)))
    for n, label, scale in ((19, "per-exemplar calibration against the median background distance",
                             [np.median(d, axis=0) for d in d_bg]),
                            *((int(100 + 1000 * q), f"per-exemplar calibration, background quantile {q}",
                               [np.quantile(d, q, axis=0) for d in d_bg]) for q in (0.005, 0.01, 0.02, 0.05, 0.2))):
        rules.append((f"{n}. {label}", per_clip(scale), 4, 4, np.linspace(-1, 1, 801)))

    for i, m in enumerate(args.mask):  # these rules take the stream's name: they need the masked windows too
        rules.append((f"{21 + 2 * i}. rule 18 on windows whose first and last {m} frames are silenced",
                      lambda k, m=m: r18(masked[m][k][1]), 4, 4, np.linspace(-1, 1, 801), True))
        rules.append((f"{22 + 2 * i}. the better of rule 18 on the whole and on the silenced window ({m})",
                      lambda k, m=m: np.maximum(r18(emb[k][1]), r18(masked[m][k][1])), 4, 4, np.linspace(-1, 1, 801),
                      True))
    rules.append(("20. per-exemplar z-score against the background distances", lambda e: np.stack(
        [((d.mean(0) - ((e[:, None] - x[None]) ** 2).sum(-1)) / d.std(0)).max(1) for x, d in zip(ex, d_bg)], 1),
        4, 4, np.linspace(0, 5, 501)))
    def as_norm(k: int):
        """Adaptive symmetric score normalisation (AS-norm, from speaker verification): the distance z-scored
        against the ``k`` nearest background windows of the enrolment clip and of the window, averaged; best
        clip; negated so that higher = more like the keyword."""
        stats = [(np.sort(d, 0)[:k].mean(0), np.sort(d, 0)[:k].std(0)) for d in d_bg]  # per keyword: (clips,)

        def fn(e):
            d_w = (e ** 2).sum(1)[:, None] - 2 * e @ bg.T + (bg ** 2).sum(1)[None]
            near = np.sort(d_w, 1)[:, :k]
            mw, sw = near.mean(1)[:, None], near.std(1)[:, None]
            return np.stack([(-0.5 * ((d - m) / s + (d - mw) / sw)).max(1) for d, (m, s) in
                             zip((((e[:, None] - x[None]) ** 2).sum(-1) for x in ex), stats)], 1)
        return fn

    for n, k in ((25, 20), (26, 50), (27, 100)):
        rules.append((f"{n}. AS-norm, the {k} nearest background windows of clip and window", as_norm(k), 4, 4,
                      np.linspace(-4, 20, 2401)))
    if args.within_class:
        z = np.load(args.within_class)
        wc = within_class_covariance(z["embeddings"].astype(np.float64), z["labels"])
        variants = [(12, "whitened by the within-word (voice) covariance, shrinkage 0.1", whitening(wc, 0.1)),
                    (13, "whitened, shrinkage 0.3", whitening(wc, 0.3)),
                    (14, "whitened, shrinkage 0.6", whitening(wc, 0.6)),
                    (15, "the 4 largest within-word directions projected out", nuisance_projection(wc, 4)),
                    (16, "the 8 largest within-word directions projected out", nuisance_projection(wc, 8)),
                    (17, "the 16 largest within-word directions projected out", nuisance_projection(wc, 16))]
        for n, label, proj in variants:
            xs = [x @ proj for x in ex]
            bs = np.array([mean_nearest(x, bg @ proj) for x in xs])
            fn = rule_exemplars(xs, bs)
            rules.append((f"{n}. {label}", (lambda f, q: lambda e: f(e @ q))(fn, proj), 4, 4,
                          np.linspace(0, 1, 401)))
    if keep is not None:
        rules = [r for r in rules if r[0].split(".")[0] in keep]
    engines = sorted({e.get("engine", "?") for s in pos for e in s.events})
    results = {"hours": hours, "events": n_events, "rules": {}}
    print(f"{n_events} keyword events, {hours:.2f} h of audio (1 false alarm = {1 / hours:.2f} FA/h)\n")
    print("| rule | FRR @ 0.5 FA/h | FRR @ 1 FA/h | FRR @ 2 FA/h | FRR @ 10 FA/h | FRR @ 1 FA/h by engine ("
          + ", ".join(engines) + ") |\n|---|---:|---:|---:|---:|---|")
    for label, fn, smooth, agree, thresholds, *named in rules:
        scores = {k: _smooth(fn(k) if named else fn(e), smooth) for k, (t, e) in emb.items()}
        pts = []
        for th in thresholds:
            hits = fas = 0
            for s in pos + neg:
                dets = fire(emb[s.name][0], {w: scores[s.name][:, i] for i, w in enumerate(names)}, float(th), 1.0,
                            agree)
                h, f, _ = _match(dets, s.events, 1.0)
                hits, fas = hits + h, fas + f
            pts.append({"threshold": float(th), "frr": 1 - hits / n_events, "fa_per_hour": fas / hours})
        op = {}
        for target in (0.5, 1, 2, 10):
            ok = [q for q in pts if q["fa_per_hour"] <= target]
            op[str(target)] = min(ok, key=lambda q: q["frr"]) if ok else None
        by_engine = {}
        if op["1"]:  # which engines' voices the misses are at the 1 FA/h operating point
            missed, total = dict.fromkeys(engines, 0), dict.fromkeys(engines, 0)
            for s in pos:
                dets = fire(emb[s.name][0], {w: scores[s.name][:, i] for i, w in enumerate(names)},
                            op["1"]["threshold"], 1.0, agree)
                for e, hit in zip(s.events, _match_events(dets, s.events, 1.0)[0]):
                    total[e.get("engine", "?")] += 1
                    missed[e.get("engine", "?")] += not hit
            by_engine = {g: round(missed[g] / total[g], 3) for g in engines}
        results["rules"][label] = {"smooth": smooth, "agree": agree, "operating_points": op,
                                   "frr_by_engine_at_1_fa_per_hour": by_engine, "det": pts}
        print(f"| {label} | " + " | ".join(f"{op[k]['frr']:.3f}" if op[k] else "not reached" for k in op) + " | "
              + ", ".join(f"{by_engine[g]:.2f}" for g in by_engine) + " |")
    shipped = {k: _smooth(r18(e), 4).max() for k, (t, e) in emb.items() if k in {s.name for s in neg}}
    results["negative_max_score"] = {k: float(v) for k, v in shipped.items()}
    print(f"\nhighest smoothed score of each negative stream under the shipped rule (fires at "
          f"{model.detector_defaults()[0]}): " + ", ".join(f"{k} {v:.2f}" for k, v in shipped.items()))
    (work / "detector_ablation.json").write_text(json.dumps(results, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, r in results["rules"].items():
        q = sorted(r["det"], key=lambda x: x["fa_per_hour"])
        ax.plot([max(x["fa_per_hour"], 0.1) for x in q], [x["frr"] for x in q], label=label, lw=1.2)
    ax.set_xscale("log")
    ax.set_xlabel(f"false alarms per hour ({hours:.2f} h; 0 drawn at 0.1)")
    ax.set_ylabel("false reject rate")
    ax.set_title(f"detector rules, {n_events} keyword events")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(work / "detector_det.png", dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
