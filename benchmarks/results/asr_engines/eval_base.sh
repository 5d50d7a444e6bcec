#!/bin/bash
# stop 28: the espeak-only 10 h models (teacher_char_6k, student_none/layer_char_6k) on: espeak-ng test-clean,
# the same utterances under recording conditions (degraded), pico+hibari speakers, Kokoro speakers
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/asr_engines
A=/work/runs/asr10h
M=/work/runs/asr_data/manifests
export OMP_NUM_THREADS=1

mkdir -p $W/eval
cp $A/student_none_char_6k/test_utts.json $W/eval/student_none_char_6k_espeak.json
cp $A/student_layer_char_6k/test.json $W/eval/student_layer_char_6k_espeak.json
for set in ${@:-espeak degraded picohibari kokoro}; do
  case $set in
    espeak) D=$M/librispeech_test-clean.jsonl.gz;;
    degraded) D=$W/manifests_degraded/librispeech_test-clean.jsonl.gz;;
    picohibari) D=$W/manifests_picohibari/librispeech_test-clean.jsonl.gz;;
    kokoro) D=$W/kokoro_all.jsonl.gz; [ -f $D ] || cat $W/manifests_kokoro/librispeech_{train-clean-100,dev-clean,test-clean}.jsonl.gz > $D;;
  esac
  [ -f $W/eval/teacher_char_6k_$set.json ] || speechedge eval asr --exp-dir $A/teacher_char_6k --data $D --chunk-ms full --json $W/eval/teacher_char_6k_$set.json
  for s in student_none_char_6k student_layer_char_6k; do
    [ -f $W/eval/${s}_$set.json ] || speechedge eval asr --exp-dir $A/$s --data $D --chunk-ms 320 --json $W/eval/${s}_$set.json
  done
done
