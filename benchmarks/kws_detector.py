"""What each change of the detector's decision rule does to the DET curve (the ablation behind the rule).

    python benchmarks/kws_detector.py WORK [--model DIR]

``WORK`` is a folder written by ``benchmarks/kws_longform.py`` (``enroll/`` clips and ``streams/``). The
embedding of every 100 ms window of every stream is computed once through the real streaming path (Numba
frontend ring buffer -> TFLite), then each rule is scored on the same embeddings:

1. mean prototype, D-ProtoNet open-set softmax, 3 windows smoothed (the rule before: the training rule);
2. mean prototype, raw squared distance;
3. nearest enrolment exemplar instead of the mean prototype;
4. + agreement: the same keyword above the threshold in 4 consecutive windows, 4 windows smoothed;
5. + calibration: ``1 - d / b`` with ``b`` from the model's background set (the shipped rule: the threshold
   means the same for every keyword).

and what was tried on top of rule 5 and not kept:

6. cosine distance instead of squared Euclidean (calibrated the same way);
7. test-side normalisation: ``1 - d / k``, ``k`` the window's mean distance to its 10 nearest background
   embeddings (a window of ordinary speech is near many of them);
8. text enrolment: 24 espeak-ng renderings of the keyword's name added to the 3 recorded enrolment clips;
9. perturbed enrolment: each enrolment clip also at vocal-tract-length factors 0.9 and 1.1 (resampled and played
   at 16 kHz: formants, pitch and duration scaled together, as another speaker's), 9 exemplars;
10. the same at 0.85, 0.92, 1.08, 1.15 (15 exemplars).

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
    """The detector's streaming path, recording (time, embedding) of every window instead of scoring."""

    def _evaluate(self, frames_done: int):
        fe = self.model.frontend
        self.rows.append((((frames_done - 1) * fe.hop_length + fe.n_fft // 2) / fe.sample_rate,
                          self.model.run_features(self.ring)))


def _embeddings(model: KWSModel, streams, cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if cache.exists():
        z = np.load(cache)
        return {s.name: (z[f"{s.name}|t"], z[f"{s.name}|e"]) for s in streams}
    rec = _Recorder(model, threshold=1.0)
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work", type=Path)
    p.add_argument("--model", default=None, help="exported few-shot model (default: the shipped one)")
    p.add_argument("--rules", default=None, help="comma-separated rule numbers to score (default: all)")
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
    emb = _embeddings(model, pos + neg, work / "window_embeddings.npz")
    hours = sum(s.duration_s for s in pos + neg) / 3600
    n_events = sum(len(s.events) for s in pos)
    ex = [model.exemplars[w] for w in names]
    protos = np.stack([e.mean(0) for e in ex])
    b = np.array([model.background_distance[w] for w in names])

    def d_proto(e):
        return ((e[:, None] - protos[None]) ** 2).sum(-1)

    def d_exemplar(e):
        return np.stack([((e[:, None] - x[None]) ** 2).sum(-1).min(1) for x in ex], 1)

    def softmax(e):
        return np.array([[model.scores(v)[w] for w in names] for v in e])

    def d_cos(e, xs=ex):
        en = e / np.linalg.norm(e, axis=1, keepdims=True)
        return np.stack([(1 - en @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T).min(1) for x in xs], 1)

    bg = model.background
    bgn = bg / np.linalg.norm(bg, axis=1, keepdims=True)
    b_cos = np.array([(1 - bgn @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T).min(1).mean() for x in ex])

    def knn_background(e, k=10):
        d = (e ** 2).sum(1)[:, None] - 2 * e @ bg.T + (bg ** 2).sum(1)[None]
        return np.sort(d, 1)[:, :k].mean(1)

    from speechedge.synth.engines import make_voices, synthesize

    text_voices = make_voices(24, np.random.default_rng(7), ["espeak"])
    ex_text = [np.vstack([x, np.stack([model.embed(0.5 * synthesize(v, w)) for v in text_voices])])
               for w, x in zip(names, ex)]
    b_text = np.array([model._background_distance(x) for x in ex_text])

    from speechedge.audio import resample

    clips = {w: [read_audio(f, sample_rate=16000)[0] for f in sorted((work / "enroll" / w).glob("*.wav"))]
             for w in names}

    def perturbed(factors):
        xs = [np.vstack([x, np.stack([model.embed(resample(c, 16000, int(round(16000 / f)))) for c in clips[w]
                                      for f in factors])]) for w, x in zip(names, ex)]
        return xs, np.array([model._background_distance(x) for x in xs])

    def rule_exemplars(xs, bs):
        return lambda e: 1 - np.stack([((e[:, None] - x[None]) ** 2).sum(-1).min(1) for x in xs], 1) / bs

    ex_p2, b_p2 = perturbed((0.9, 1.1))
    ex_p4, b_p4 = perturbed((0.85, 0.92, 1.08, 1.15))

    rules = [
        ("1. mean prototype, D-ProtoNet softmax (before)", softmax, 3, 1, np.linspace(0.05, 0.999, 200)),
        ("2. mean prototype, raw distance", lambda e: -d_proto(e), 3, 1, -np.linspace(0, 60, 241)),
        ("3. nearest exemplar", lambda e: -d_exemplar(e), 3, 1, -np.linspace(0, 60, 241)),
        ("4. + agreement (smooth 4, agree 4)", lambda e: -d_exemplar(e), 4, 4, -np.linspace(0, 60, 241)),
        ("5. + background calibration (shipped)", lambda e: 1 - d_exemplar(e) / b, 4, 4, np.linspace(0, 1, 401)),
        ("6. cosine distance, calibrated", lambda e: 1 - d_cos(e) / b_cos, 4, 4, np.linspace(0, 1, 401)),
        ("7. test-side normalisation (10 nearest background)", lambda e: 1 - d_exemplar(e) / knn_background(e)[:, None],
         4, 4, np.linspace(-1, 1, 401)),
        ("8. + 24 espeak-ng renderings of the keyword's name", lambda e: 1 - np.stack(
            [((e[:, None] - x[None]) ** 2).sum(-1).min(1) for x in ex_text], 1) / b_text, 4, 4,
         np.linspace(0, 1, 401)),
        ("9. + enrolment clips at vocal-tract factors 0.9, 1.1", rule_exemplars(ex_p2, b_p2), 4, 4,
         np.linspace(0, 1, 401)),
        ("10. + enrolment clips at factors 0.85, 0.92, 1.08, 1.15", rule_exemplars(ex_p4, b_p4), 4, 4,
         np.linspace(0, 1, 401)),
    ]
    if args.rules:
        keep = {r.strip() for r in args.rules.split(",")}
        rules = [r for r in rules if r[0].split(".")[0] in keep]
    engines = sorted({e.get("engine", "?") for s in pos for e in s.events})
    results = {"hours": hours, "events": n_events, "rules": {}}
    print(f"{n_events} keyword events, {hours:.2f} h of audio (1 false alarm = {1 / hours:.2f} FA/h)\n")
    print("| rule | FRR @ 0.5 FA/h | FRR @ 1 FA/h | FRR @ 2 FA/h | FRR @ 10 FA/h | FRR @ 1 FA/h by engine ("
          + ", ".join(engines) + ") |\n|---|---:|---:|---:|---:|---|")
    for label, fn, smooth, agree, thresholds in rules:
        scores = {k: _smooth(fn(e), smooth) for k, (t, e) in emb.items()}
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
    shipped = {k: _smooth(1 - d_exemplar(e) / b, 4).max() for k, (t, e) in emb.items() if k in {s.name for s in neg}}
    results["negative_max_score"] = {k: float(v) for k, v in shipped.items()}
    print("\nhighest smoothed score of each negative stream under the shipped rule (fires at 0.8): "
          + ", ".join(f"{k} {v:.2f}" for k, v in shipped.items()))
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
