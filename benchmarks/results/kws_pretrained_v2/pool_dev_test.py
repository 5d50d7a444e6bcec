"""Two models' DET curves pooled at one threshold over every keyword pair measured: the 6 development pairs
(``kws_calibrate_detector.py``'s calibration JSON) and the 4 long-form test sets A-D (``kws_longform.py`` results):
600 events, 21 h. Prints FRR at <= 0.5 / 1 / 2 FA/h for dev, test and both.

    python pool_dev_test.py NAME=CALIBRATION_JSON,RESULT_A,RESULT_B,RESULT_C,RESULT_D ...
"""
import json
import sys


def curves(calibration: str, results: list[str]) -> dict[str, list[dict]]:
    c = json.load(open(calibration))["det"]
    dev = {k: v for k, v in c[next(iter(c))].items() if k != "pooled"}
    test = {f"test_{'abcd'[i]}": json.load(open(r))["det"] for i, r in enumerate(results)}
    return {**dev, **test}


def pooled(dets: dict[str, list[dict]], target: float):
    """Lowest FRR among shared thresholds whose pooled FA/h <= target (ties: the higher threshold). Each set's
    events: hits / (1 - FRR) at any threshold with a hit; its hours: false alarms / FA/h at one that has them."""
    size = {}
    for k, det in dets.items():
        q = next(q for q in det if q["hits"] > 0)
        h = next(q for q in det if q["false_alarms"] > 0)
        size[k] = (round(q["hits"] / (1 - q["frr"])), h["false_alarms"] / h["fa_per_hour"])
    by_t: dict[float, dict[str, dict]] = {}
    for k, det in dets.items():
        for q in det:
            by_t.setdefault(q["threshold"], {})[k] = q
    events, hours = sum(e for e, _ in size.values()), sum(h for _, h in size.values())
    best = None
    for t, qs in by_t.items():
        if len(qs) != len(dets):
            continue
        frr = sum(size[k][0] - q["hits"] for k, q in qs.items()) / events
        fah = sum(q["false_alarms"] for q in qs.values()) / hours
        if fah <= target and (best is None or (frr, -t) < (best[1], -best[0])):
            best = (t, frr, fah)
    return best, events, hours


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        name, files = arg.split("=", 1)
        cal, *res = files.split(",")
        d = curves(cal, res)
        dev = {k: v for k, v in d.items() if not k.startswith("test_")}
        test = {k: v for k, v in d.items() if k.startswith("test_")}
        for label, part in (("dev (6 pairs)", dev), ("test A-D", test), ("all 10", d)):
            cells = []
            for t in (0.5, 1, 2):
                b, events, hours = pooled(part, t)
                cells.append(f"{b[1]:.3f} (thr {b[0]:g}, {b[2]:.2f} FA/h)" if b else "not reached")
            print(f"| {name} | {label} ({events} events, {hours:.1f} h) | " + " | ".join(cells) + " |")
