#!/bin/bash
# stop 34: does the shipped model (nb0) gain from 2,000 more steps at half the learning rate? then the ship evaluations
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/kws_v2
ts() { echo "[$(date +%H:%M:%S)] $*"; }
V2=(--work $W --voices 400 --aux-words 1000 --aux-voices 160 --train-engines espeak,hibari,pico --held-out-engines ""
  --threads 2 --seed 0 --episode-words gsc+aux --set tau=3 --set eval_every=250 --set augment.babble_prob=0.2
  --set augment.speed_prob=0.3 --set augment.gain_prob=0.2 --set augment.reverb_prob=0.4 --set augment.noise_prob=0.6
  --extra-test "Kokoro-82M=/work/runs/kokoro_test")
export OMP_NUM_THREADS=2
ts "nb1 train"
python benchmarks/kws_pretrained.py "${V2[@]}" --steps 2000 --set lr=0.0005 --set init_from=$W/exp_nb0 --set neighbours_prob=0 --tag _nb1 > $W/nb1.log 2>&1
ts "nb1 long-form"
export OMP_NUM_THREADS=1
E=$W/export_nb1; R=/work/runs
python benchmarks/kws_longform.py $E $R/longform --tag nb1 > $W/lf_a_nb1.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9 --tag nb1 > $W/lf_b_nb1.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_c --keywords marshmallow,octopus --enroll-seed 520 --seed 13 --tag nb1 > $W/lf_c_nb1.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_d --keywords penguin,telescope --enroll-seed 530 --seed 17 --engines kokoro --tag nb1 > $W/lf_d_nb1.log 2>&1
ts "nb1 ship evaluations"
bash $W/ship_eval.sh nb1 > $W/ship_eval_nb1.log 2>&1
ts "done"
