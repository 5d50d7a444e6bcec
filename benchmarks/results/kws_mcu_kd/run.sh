#!/bin/bash
# stop 37: the microcontroller architecture (BC-ResNet-1, blocks 1,1,1,1, ReLU; kws_mcu's) trained on the shipped
# model's corpus (kws_v2 + Kokoro v3) with / without embedding distillation from the shipped model (exp_nbk).
# usage: run.sh TAG [extra --set ...]; resumable: run again to continue.
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/kws_v2; R=/work/runs; T=$1; shift
export OMP_NUM_THREADS=2
python benchmarks/kws_pretrained.py --work $W --voices 400 --aux-words 1000 --aux-voices 160 \
  --train-engines espeak,hibari,pico --held-out-engines "" --threads 2 --seed 0 --episode-words gsc+aux \
  --set tau=1 --set blocks=1,1,1,1 --set block_act=relu --set eval_every=500 \
  --extra-test "Kokoro-82M=$R/kokoro_test" --extra-test "Flite=$R/flite_test" \
  --add-train "Kokoro-82M=$R/kokoro_train_v3" --tag _$T --stop-after eval "$@"
echo "rc=$? $(date)"
