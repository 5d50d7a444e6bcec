"""Per stream voice: the best detection score each keyword event of a long-form work folder gets (windows centred
within +-0.3 s of the event's centre, the shipped rule), with the 3 recorded enrolment clips (and, with --enroll-text,
the 24 renderings). Shows which voices the detector misses and how far they are from the threshold.

    python benchmarks/results/kws_pretrained_v3/event_scores.py MODEL /work/runs/longform_e tornado,raspberry [--enroll-text]
"""
import argparse
import glob
import json
import tempfile
from pathlib import Path

import numpy as np

from speechedge.audio import read_audio
from speechedge.runtime import KWSModel

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path)
    p.add_argument("work", type=Path)
    p.add_argument("keywords")
    p.add_argument("--enroll-text", action="store_true")
    a = p.parse_args()
    m = KWSModel(a.model, keywords_file=Path(tempfile.mkdtemp()) / "k.json", mode="window")
    m.forget()
    enrolled = {}
    for w in a.keywords.split(","):
        clips = [read_audio(f, sample_rate=16000)[0] for f in sorted((a.work / "enroll" / w).glob("*.wav"))]
        if a.enroll_text:
            from speechedge.synth.engines import render_keyword

            m.enroll(w, clips, rendered=render_keyword(w), save=False)
        else:
            m.enroll(w, clips, save=False)
    for line in (a.work / "enroll" / "voices.jsonl").read_text().splitlines():
        v = json.loads(line)
        enrolled[v["speaker"]] = v["name"]
    names = {}
    for vf in glob.glob(str(a.work / "streams" / "**" / "voices.jsonl"), recursive=True):
        for line in open(vf):
            v = json.loads(line)
            names[v["speaker"]] = v.get("name", "?")
    threshold = m.detector_defaults()[0]
    by = {}
    for f in sorted((a.work / "streams" / "positives").glob("*.json")):
        audio = read_audio(f.with_suffix(".wav"), sample_rate=16000)[0]
        for e in json.loads(f.read_text())["events"]:
            centre = int((e["start_s"] + e["end_s"]) / 2 * 16000)
            best = max(m.detection_scores(m.embed(audio[s: s + 16000]))[e["keyword"]]
                       for s in range(centre - 8000 - 4800, centre - 8000 + 4801, 800) if 0 <= s <= len(audio) - 16000)
            by.setdefault(names.get(e["speaker"], "?"), []).append(best)
    print(f"enrolment voices: {sorted(enrolled.values())}; the model's threshold {threshold:g}")
    print("| stream voice | events | median best score | events >= threshold |\n|---|---:|---:|---:|")
    for k, v in sorted(by.items()):
        print(f"| {k} | {len(v)} | {np.median(v):.2f} | {sum(x >= threshold for x in v)} |")
