#!/bin/bash
# 5-way 1/5-shot on the kws_v2 test sets through the runtime (int8 and fp32 window models), as evaluate_experiment
# does for the checkpoint (1,000 episodes, seed 1234, 5 queries): usage eval5.sh NAME MODEL_DIR
set -e
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=1
N=$1; M=$2; O=/work/runs/mcukd/eval5; mkdir -p $O
for P in int8 fp32; do
  for S in "voices=/work/runs/kws_v2/manifests/test_voices.jsonl" "kokoro=/work/runs/kokoro_test" "flite=/work/runs/flite_test"; do
    k=${S%%=*}; d=${S#*=}
    [ -f $O/${N}_${P}_$k.json ] || speechedge eval kws-fewshot --model $M --precision $P --data $d --ways 5 --shots 1,5 \
      --queries 5 --episodes 1000 --seed 1234 --json $O/${N}_${P}_$k.json > $O/${N}_${P}_$k.log 2>&1
  done
done
