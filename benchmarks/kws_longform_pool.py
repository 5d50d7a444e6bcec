"""Long-form results of several keyword pairs (``benchmarks/kws_longform.py`` ``result[_stream].json``) pooled at
one threshold for every keyword, as a user gets it: FRR at 0.5 / 1 / 2 FA/h per set and pooled, and the pooled
result at the model's default threshold.

    python benchmarks/kws_longform_pool.py --model speechedge/pretrained/kws_fewshot [--stream] \\
        A=work/longform/result.json B=work/longform_b/result.json C=work/longform_c/result.json [--out pooled.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from speechedge.apps.longform import operating_point, pooled_det
from speechedge.runtime import KWSModel


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", nargs="+", help="NAME=result.json")
    p.add_argument("--model", type=Path, required=True, help="the model folder (for its default threshold)")
    p.add_argument("--stream", action="store_true", help="the streaming detector's default threshold")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    results = {}
    for item in args.sets:
        name, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"{item!r}: expected NAME=result.json")
        results[name] = json.loads(Path(path).read_text())
    m = KWSModel(args.model, mode="stream" if args.stream else "window", keywords_file=Path("/nonexistent.json"))
    default = m.detector_defaults()[0]
    det = pooled_det([r["det"] for r in results.values()], [r["events"] for r in results.values()],
                     [r["hours"] for r in results.values()])
    rows = {name: {str(t): operating_point(r["det"], t) for t in (0.5, 1, 2)} for name, r in results.items()}
    rows["pooled"] = {str(t): operating_point(det, t) for t in (0.5, 1, 2)}
    at_default = min(det, key=lambda q: abs(q["threshold"] - default))
    hours = sum(r["hours"] for r in results.values())
    events = sum(r["events"] for r in results.values())
    print(f"{args.model.name} ({m.mode}, {m.precision}): {len(results)} sets, {events} events, {hours:.2f} h\n")
    print("| set | FRR @ 0.5 FA/h | @ 1 | @ 2 |\n|---|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{q['frr']:.3f} ({q['threshold']:g})" if q else "not reached"
                                           for q in r.values()) + " |")
    print(f"\npooled at the model's default threshold {default:g}: FRR {at_default['frr']:.3f}, "
          f"{at_default['fa_per_hour']:.2f} FA/h")
    if args.out:
        args.out.write_text(json.dumps({"model": str(args.model), "mode": m.mode, "precision": m.precision,
                                        "events": events, "hours": hours, "operating_points": rows,
                                        "default_threshold": default, "at_default": at_default, "pooled_det": det},
                                       indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
