"""Few-shot accuracy of the streaming (stateful) embedding against the window embedding, on the same clips.

    python benchmarks/kws_streaming.py --exp EXP_DIR --test LABEL=MANIFEST_OR_FOLDER [...] [--episodes 1000]
        [--json OUT]

The window embedding is the model on the isolated 1-second clip (zero padding inside the network at both
ends), as the window detector and the model card measure it. The streaming embedding is what the streaming
step model returns for the clip said in silence: the network over the clip with 0.61 s of digital silence
before and 0.58 s after, pooled over the clip's frames (exactly what enrolment computes in stream mode and
what the step model computes in a stream, tested). 5-way episodes with 5 queries per class and 25 unknown
queries, as the model card; 95% CIs over episodes; the same episodes (seed) for both.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True, type=Path)
    p.add_argument("--test", action="append", required=True, metavar="LABEL=PATH")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    from speechedge.audio import from_int16
    from speechedge.export.kws_stream import build_stream, stream_embeddings_torch
    from speechedge.recipes.kws_fewshot import evaluate, load_model
    from speechedge.training.kws_data import load_folder_clips, load_manifest_clips

    model, cfg = load_model(args.exp)
    model.eval()
    stream = build_stream(model, model.encoder, 100)

    def stream_embed(m, clips, device):
        audio = from_int16(clips.audio)  # int16 (N, clip_samples)
        return torch.from_numpy(stream_embeddings_torch(m, m.encoder, stream, audio))

    rows = {}
    print("| test set | window 5-shot acc / AUROC | streaming 5-shot acc / AUROC |\n|---|---:|---:|")
    for spec in args.test:
        label, _, path = spec.partition("=")
        load = dict(sample_rate=cfg.frontend.sample_rate, clip_samples=cfg.clip_samples)
        clips = load_folder_clips(path, **load) if Path(path).is_dir() else load_manifest_clips(path, **load)
        if len(set(clips.labels)) <= 5:
            raise SystemExit(f"--test {spec}: {len(clips)} readable clips of {len(set(clips.labels))} words; "
                             "5-way open-set episodes need 6 words or more")
        r = {}
        for mode, embed in (("window", None), ("stream", stream_embed)):
            m, _ = evaluate(model, clips, method=cfg.method, ways=5, shots=(5,), queries=5, episodes=args.episodes,
                            seed=1234, temperature=cfg.temperature, gamma=cfg.gamma, embed=embed)
            r[mode] = m["5shot"]
        rows[label] = {"clips": len(clips), **r}
        w, s = r["window"], r["stream"]
        print(f"| {label} ({len(clips)} clips) | {w['acc']:.3f} +-{w['acc_ci95']:.3f} / {w['auroc']:.3f} | "
              f"{s['acc']:.3f} +-{s['acc_ci95']:.3f} / {s['auroc']:.3f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
