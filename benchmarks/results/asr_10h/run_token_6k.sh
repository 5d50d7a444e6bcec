#!/bin/bash
# stop 27: the 6,000-step token-level KD student from the 6,000-step char teacher (test-clean CER 8.4), same data and
# schedule as student_none_char_6k / student_layer_char_6k; resumable (run again to continue)
set -e
cd /work/main && source .venv/bin/activate
M=/work/runs/asr_data/manifests
C=/work/runs/asr10h/LibriSpeech
common="--set train_manifest=$M/librispeech_train-clean-100.jsonl.gz --set val_manifest=$M/librispeech_dev-clean.jsonl.gz --set alignments=$C/alignments/train-clean-100 --set steps=6000 --set eval_every=1000 --set threads=1"
speechedge train asr --config speechedge/recipes/configs/asr_student_tiny.toml --exp-dir /work/runs/asr10h/student_token_char_6k $common --set distill=token --set teacher_exp_dir=/work/runs/asr10h/teacher_char_6k
OMP_NUM_THREADS=1 speechedge eval asr --exp-dir /work/runs/asr10h/student_token_char_6k --data $M/librispeech_test-clean.jsonl.gz --chunk-ms 160 320 640 --alignments $C/alignments --json /work/runs/asr10h/student_token_char_6k/test.json
