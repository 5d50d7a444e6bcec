#!/bin/bash
# stop 35: the shipped model (nb0) + 2,000 steps at lr 5e-4 with 4,800 Kokoro-82M clips (64 new speakers, 75 words)
# added to training (--add-train); nb1 is the same continuation without them (the control). Then every evaluation
# the README states of the shipped model (long-form A-D, ship_eval.sh). Resumable: run again to continue.
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/kws_v2; R=/work/runs; T=nbk
ts() { echo "[$(date +%H:%M:%S)] $*"; }
V2=(--work $W --voices 400 --aux-words 1000 --aux-voices 160 --train-engines espeak,hibari,pico --held-out-engines ""
  --threads 2 --seed 0 --episode-words gsc+aux --set tau=3 --set eval_every=250 --set augment.babble_prob=0.2
  --set augment.speed_prob=0.3 --set augment.gain_prob=0.2 --set augment.reverb_prob=0.4 --set augment.noise_prob=0.6
  --extra-test "Kokoro-82M=/work/runs/kokoro_test" --extra-test "Flite=/work/runs/flite_test")
[ -f $R/kokoro_train_v3/manifest.jsonl ] || OMP_NUM_THREADS=1 python benchmarks/results/kws_pretrained_v3/synth_kokoro_train.py $R/kokoro_train_v3
export OMP_NUM_THREADS=2
ts "$T train"
python benchmarks/kws_pretrained.py "${V2[@]}" --steps 2000 --set lr=0.0005 --set init_from=$W/exp_nb0 --set neighbours_prob=0 \
  --add-train "Kokoro-82M=$R/kokoro_train_v3" --tag _$T > $W/$T.log 2>&1
ts "$T long-form"
export OMP_NUM_THREADS=1
E=$W/export_$T
python benchmarks/kws_longform.py $E $R/longform --tag $T > $W/lf_a_$T.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9 --tag $T > $W/lf_b_$T.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_c --keywords marshmallow,octopus --enroll-seed 520 --seed 13 --tag $T > $W/lf_c_$T.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_d --keywords penguin,telescope --enroll-seed 530 --seed 17 --engines kokoro --tag $T > $W/lf_d_$T.log 2>&1
ts "$T ship evaluations"
bash benchmarks/results/kws_pretrained_v2/ship_eval.sh $T > $W/ship_eval_$T.log 2>&1
ts "done"
