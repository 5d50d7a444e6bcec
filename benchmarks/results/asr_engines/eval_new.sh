#!/bin/bash
# stop 28: a trained model of this folder on the four test sets (args: EXP-NAME CHUNK), resumable
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/asr_engines
M=/work/runs/asr_data/manifests
E=$1; CH=$2
export OMP_NUM_THREADS=1
for set in espeak degraded picohibari kokoro; do
  case $set in
    espeak) D=$M/librispeech_test-clean.jsonl.gz;;
    degraded) D=$W/manifests_degraded/librispeech_test-clean.jsonl.gz;;
    picohibari) D=$W/manifests_picohibari/librispeech_test-clean.jsonl.gz;;
    kokoro) D=$W/kokoro_all.jsonl.gz;;
  esac
  [ -f $W/eval/${E}_$set.json ] || speechedge eval asr --exp-dir $W/$E --data $D --chunk-ms $CH --json $W/eval/${E}_$set.json
done
