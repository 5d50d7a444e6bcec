#!/bin/bash
# stop 36: the shipped model (nbk) + 2,000 steps at lr 5e-4 with a second, larger Kokoro-82M set added to training
# (kokoro_train_v4: 165 words x 40 new speakers, synth_kokoro_train2.py) beside v3's; then the decision tests:
# 5-shot (held-out voices, Kokoro, Flite: kws_pretrained.py does them) and long-form A-E with the window detector.
# Resumable: run again to continue (finished stages and long-form results are kept).
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/kws_v2; R=/work/runs; T=${T:-nbk2}
ts() { echo "[$(date +%H:%M:%S)] $*"; }
V2=(--work $W --voices 400 --aux-words 1000 --aux-voices 160 --train-engines espeak,hibari,pico --held-out-engines ""
  --threads 2 --seed 0 --episode-words gsc+aux --set tau=3 --set eval_every=250 --set augment.babble_prob=0.2
  --set augment.speed_prob=0.3 --set augment.gain_prob=0.2 --set augment.reverb_prob=0.4 --set augment.noise_prob=0.6
  --extra-test "Kokoro-82M=/work/runs/kokoro_test" --extra-test "Flite=/work/runs/flite_test")
[ -f $R/kokoro_train_v4/manifest.jsonl ] || python benchmarks/results/kws_pretrained_v4/synth_kokoro_train2.py $R/kokoro_train_v4
export OMP_NUM_THREADS=2
ts "$T train"
python benchmarks/kws_pretrained.py "${V2[@]}" --steps 2000 --set lr=0.0005 --set init_from=$W/exp_nbk --set neighbours_prob=0 \
  --add-train "Kokoro-82M=$R/kokoro_train_v3" --add-train "Kokoro-82M-v4=$R/kokoro_train_v4" --tag _$T > $W/$T.log 2>&1
ts "$T long-form A-E (window)"
export OMP_NUM_THREADS=1
E=$W/export_$T
source benchmarks/results/kws_pretrained_v4/longform_sets.sh
python benchmarks/kws_longform_pool.py --model $E A=$R/longform/result_$T.json B=$R/longform_b/result_$T.json \
  C=$R/longform_c/result_$T.json D=$R/longform_d/result_$T.json E=$R/longform_e/result_$T.json \
  --out $W/pooled_abcde_$T.json > $W/poole_$T.log 2>&1
ts "done"
