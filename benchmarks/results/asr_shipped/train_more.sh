#!/bin/bash
# Stage 2 of the shipped streaming ASR model (stop 40): the stage-1 student (train.sh, 7,000 steps on 7 h of 140
# voices) continued on 4x the data: a second 30 h corpus of 600 new speakers of the same four engines (seed 42, all
# of its splits used for training) added to stage 1's train split (37 h, 740 training speakers in all); the
# evaluation sets stay stage 1's (its dev-clean picks nothing but is logged; test-clean and the Kokoro set are
# untouched). The step-7,000 checkpoint is copied to a new experiment and resumed with a 15,000-step schedule: the
# cosine learning rate restarts at 0.56x its peak (a warm restart) and decays to 0 at step 15,000.
#   bash benchmarks/results/asr_shipped/train_more.sh [WORK]      (default /work/runs/asr_ship; resumable)
set -eo pipefail
W=$(realpath -m "${1:-/work/runs/asr_ship}")
W2=$W-more
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
[ -f "$W2/LibriSpeech/synth_report.json" ] || speechedge synth librispeech --out "$W2/LibriSpeech" --hours 30 \
  --speakers 600 --engines espeak,pico,hibari,flite --seed 42
[ -f "$W2/manifests/librispeech_stats.json" ] || speechedge prepare librispeech --corpus "$W2/LibriSpeech" \
  --out "$W2/manifests"
M=$W/manifests
if [ ! -f "$W2/train_all.jsonl.gz" ]; then  # the two corpora share some utterance ids: the second's are dropped
  python - "$M" "$W2" <<'PY'
import gzip, json, os, sys
m, w2 = sys.argv[1:]
parts = [f"{m}/librispeech_train-clean-100.jsonl.gz"] + [f"{w2}/manifests/librispeech_{s}.jsonl.gz"
                                                          for s in ("train-clean-100", "dev-clean", "test-clean")]
seen, rows, dropped = set(), [], 0
for p in parts:
    for line in gzip.open(p, "rt"):
        uid = json.loads(line)["id"]
        dropped += uid in seen
        if uid not in seen:
            seen.add(uid)
            rows.append(line)
with gzip.open(f"{w2}/train_all.jsonl.gz.tmp", "wt") as f:
    f.writelines(rows)
os.replace(f"{w2}/train_all.jsonl.gz.tmp", f"{w2}/train_all.jsonl.gz")
print(f"train_all: {len(rows)} utterances, {dropped} dropped (id already used)")
PY
fi
if [ ! -d "$W2/student" ]; then
  mkdir -p "$W2/student.tmp" && cp "$W"/student/{checkpoint-latest.pt,config.json,metrics.jsonl,tokens.txt} "$W2/student.tmp/" \
    && mv "$W2/student.tmp" "$W2/student"
fi
TRAIN_MANIFEST=$W2/train_all.jsonl.gz EXP_DIR=$W2/student STEPS=${STEPS:-15000} \
  bash benchmarks/results/asr_shipped/train.sh "$W"
