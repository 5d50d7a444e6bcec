#!/bin/bash
# stop 28: the mixed-engine student alone with waveform augmentation from step 0 (rooms, noise, babble, colouring,
# gain): stayed on the CTC plateau (val CER 80.4 at step 1,000, 95.1 at 2,000, train loss 2.86 -> 2.72); stopped at ~2,500
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/asr_engines
C=/work/runs/asr10h/LibriSpeech
common="--set train_manifest=$W/train_mixed.jsonl.gz --set val_manifest=$W/dev_mixed.jsonl.gz --set alignments=$C/alignments/train-clean-100 --set steps=6000 --set eval_every=1000 --set threads=1"
aug="--set augment.reverb_prob=0.5 --set augment.noise_prob=0.6 --set augment.synthetic_noise=true --set augment.snr_db=5,25 --set augment.babble_prob=0.2 --set augment.colour_prob=0.4 --set augment.gain_prob=0.3"
export OMP_NUM_THREADS=1
speechedge train asr --config speechedge/recipes/configs/asr_student_tiny.toml --exp-dir $W/student_none_mixed_aug_6k $common $aug
