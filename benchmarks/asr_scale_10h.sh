#!/bin/bash
# ASR at 10 h / 140 training voices (README "Scale: 10 h, 140 voices"): char vs BPE-256 teachers, then
# streaming students (320 ms chunks) alone and with token KD from the char teacher, test-clean (30 unseen
# voices) at 160/320/640 ms with emission latency, and the export of the KD student (fp32 + int8).
# Resumable: a re-run resumes each training and repeats only the evaluations.
#   bash benchmarks/asr_scale_10h.sh work/asr10h        (about 1.5 h on 2 idle cores)
#   STEPS=6000 EVAL_EVERY=1000 bash benchmarks/asr_scale_10h.sh work/asr10h_6k   (the 6,000-step runs; README)
set -e
W=$(realpath -m "${1:-work/asr10h}")
mkdir -p "$W"
[ -f "$W/LibriSpeech/synth_report.json" ] || speechedge synth librispeech --out "$W/LibriSpeech" --hours 10 --speakers 200 --seed 3
[ -f "$W/manifests/librispeech_test-clean.jsonl.gz" ] || speechedge prepare librispeech --corpus "$W/LibriSpeech" --out "$W/manifests"
M=$W/manifests
data="--set train_manifest=$M/librispeech_train-clean-100.jsonl.gz --set val_manifest=$M/librispeech_dev-clean.jsonl.gz --set alignments=$W/LibriSpeech/alignments/train-clean-100 --set steps=${STEPS:-2000} --set eval_every=${EVAL_EVERY:-500}"
test_set=$M/librispeech_test-clean.jsonl.gz
for tok in char bpe; do
  extra=""; [ $tok = bpe ] && extra="--set tokenizer=bpe --set vocab_size=256"
  speechedge train asr --config speechedge/recipes/configs/asr_teacher_tiny.toml --exp-dir "$W/teacher_$tok" $data $extra
  speechedge eval asr --exp-dir "$W/teacher_$tok" --data $test_set --chunk-ms full --json "$W/teacher_$tok/test.json"
done
for mode in token none; do
  kd=""; [ $mode = token ] && kd="--set distill=token --set teacher_exp_dir=$W/teacher_char"
  speechedge train asr --config speechedge/recipes/configs/asr_student_tiny.toml --exp-dir "$W/student_${mode}_char" $data $kd
  speechedge eval asr --exp-dir "$W/student_${mode}_char" --data $test_set --chunk-ms 160 320 640 \
    --alignments "$W/LibriSpeech/alignments" --json "$W/student_${mode}_char/test.json"
done
speechedge export --exp-dir "$W/student_token_char" --out "$W/export_token_char_q" --int8 --int16x8 --held-out $test_set || true  # int8 refused: see README
speechedge export --exp-dir "$W/student_token_char" --out "$W/export_token_char_16x8" --int16x8 --held-out $test_set
