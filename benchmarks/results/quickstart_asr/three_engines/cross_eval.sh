#!/bin/bash
# stop 28: the espeak-only quickstart models (qs_asr, 2026-12-05) and the three-engine ones (qs_asr_mix) on each
# other's test-clean and on the Kokoro set
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=1
O=/work/runs/qs_asr; N=/work/runs/qs_asr_mix; K=/work/runs/asr_engines/kokoro_all.jsonl.gz; R=/work/runs/qs_cross
mkdir -p $R
ev() { [ -f $R/$3.json ] || speechedge eval asr --exp-dir $1 --data $2 --chunk-ms $4 --json $R/$3.json > /dev/null 2>&1; }
( ev $O/exp/teacher $N/manifests/librispeech_test-clean.jsonl.gz old-teacher_mixtest full
  ev $O/exp/teacher $K old-teacher_kokoro full
  ev $N/exp/teacher $O/manifests/librispeech_test-clean.jsonl.gz new-teacher_espeaktest full
  ev $N/exp/teacher $K new-teacher_kokoro full ) &
( ev $O/exp/student $N/manifests/librispeech_test-clean.jsonl.gz old-student_mixtest 320
  ev $O/exp/student $K old-student_kokoro 320
  ev $N/exp/student $O/manifests/librispeech_test-clean.jsonl.gz new-student_espeaktest 320
  ev $N/exp/student $K new-student_kokoro 320 ) &
wait
