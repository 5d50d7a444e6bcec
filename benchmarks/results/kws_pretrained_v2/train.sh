#!/bin/bash
# stop 32: the shipped model's recipe (BC-ResNet-3, D-ProtoNet on splitGSC + 1,000 aux words, word supervision, full
# augmentation, 6,500 steps) with SVOX Pico voices in training; resumable: run again to continue from the last checkpoint
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=2
python benchmarks/kws_pretrained.py --work /work/runs/kws_v2 --voices 400 --aux-words 1000 --aux-voices 160 \
  --train-engines espeak,hibari,pico --held-out-engines "" --steps 6500 --threads 2 --seed 0 \
  --episode-words gsc+aux --set tau=3 --set eval_every=250 --set augment.babble_prob=0.2 --set augment.speed_prob=0.3 \
  --set augment.gain_prob=0.2 --set augment.reverb_prob=0.4 --set augment.noise_prob=0.6 --tag _t3_aux_full_pico \
  --stop-after train
echo "rc=$? $(date)"
