#!/bin/bash
# stop 28: the 10 h ASR models again with pico + hibari speakers added to the training set (same configs,
# steps and schedule as teacher_char_6k / student_none_char_6k); resumable (run again to continue)
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/asr_engines
M=/work/runs/asr_data/manifests
C=/work/runs/asr10h/LibriSpeech
P=$W/manifests_picohibari
cat $M/librispeech_train-clean-100.jsonl.gz $P/librispeech_train-clean-100.jsonl.gz > $W/train_mixed.jsonl.gz
cat $M/librispeech_dev-clean.jsonl.gz $P/librispeech_dev-clean.jsonl.gz > $W/dev_mixed.jsonl.gz
common="--set train_manifest=$W/train_mixed.jsonl.gz --set val_manifest=$W/dev_mixed.jsonl.gz --set alignments=$C/alignments/train-clean-100 --set steps=6000 --set eval_every=1000 --set threads=1"
export OMP_NUM_THREADS=1
speechedge train asr --config speechedge/recipes/configs/asr_teacher_tiny.toml --exp-dir $W/teacher_mixed_6k $common > $W/teacher.log 2>&1 &
speechedge train asr --config speechedge/recipes/configs/asr_student_tiny.toml --exp-dir $W/student_none_mixed_6k $common > $W/student.log 2>&1 &
wait
