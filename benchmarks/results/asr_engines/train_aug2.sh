#!/bin/bash
# stop 28: the mixed-engine student alone with milder waveform augmentation that starts after 1,000 clean steps
# (augment_after), after augmentation from step 0 kept the model on the CTC plateau (train_aug_from_step0.sh);
# same data, config, steps and seed as student_none_mixed_6k; resumable (run again to continue)
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/asr_engines
C=/work/runs/asr10h/LibriSpeech
common="--set train_manifest=$W/train_mixed.jsonl.gz --set val_manifest=$W/dev_mixed.jsonl.gz --set alignments=$C/alignments/train-clean-100 --set steps=6000 --set eval_every=1000 --set threads=1"
aug="--set augment_after=1000 --set augment.reverb_prob=0.3 --set augment.noise_prob=0.4 --set augment.synthetic_noise=true --set augment.snr_db=10,30 --set augment.babble_prob=0.1 --set augment.colour_prob=0.3 --set augment.gain_prob=0.2"
export OMP_NUM_THREADS=1
speechedge train asr --config speechedge/recipes/configs/asr_student_tiny.toml --exp-dir $W/student_none_mixed_aug2_6k $common $aug
