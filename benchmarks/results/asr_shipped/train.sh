#!/bin/bash
# The shipped streaming ASR model (speechedge/pretrained/asr_stream): the tiny streaming student (320 ms chunks,
# 4 left chunks, 0.79 M parameters) trained alone on 10 h of four engines' voices (espeak-ng, SVOX Pico, hibari,
# CMU Flite; 200 speakers, 70/15/15 train/dev/test), waveform augmentation after 1,000 clean steps (the milder
# setting of README "Other engines and recording conditions"). Resumable: run again to continue.
#   bash benchmarks/results/asr_shipped/train.sh [WORK]      (default /work/runs/asr_ship; STEPS=7000; stop 39 started it
#     with 10000 and resumed at step 3000 with 7000; train_more.sh sets TRAIN_MANIFEST and EXP_DIR for stage 2)
set -eo pipefail
W=$(realpath -m "${1:-/work/runs/asr_ship}")
cd "$(dirname "$0")/../../.."
source .venv/bin/activate
[ -f "$W/LibriSpeech/synth_report.json" ] || speechedge synth librispeech --out "$W/LibriSpeech" --hours 10 \
  --speakers 200 --engines espeak,pico,hibari,flite --seed 41
[ -f "$W/manifests/librispeech_stats.json" ] || speechedge prepare librispeech --corpus "$W/LibriSpeech" \
  --out "$W/manifests"
M=$W/manifests
data="--set train_manifest=${TRAIN_MANIFEST:-$M/librispeech_train-clean-100.jsonl.gz} --set val_manifest=$M/librispeech_dev-clean.jsonl.gz --set alignments=$W/LibriSpeech/alignments/train-clean-100 --set steps=${STEPS:-7000} --set eval_every=1000 --set threads=2"
aug="--set augment_after=1000 --set augment.reverb_prob=0.3 --set augment.noise_prob=0.4 --set augment.synthetic_noise=true --set augment.snr_db=10,30 --set augment.babble_prob=0.1 --set augment.colour_prob=0.3 --set augment.gain_prob=0.2"
speechedge train asr --config speechedge/recipes/configs/asr_student_tiny.toml --exp-dir "${EXP_DIR:-$W/student}" $data $aug
