#!/bin/bash
# stop 33: the same-voice neighbours continuation (neighbours_voice = same), then the control without neighbours,
# then the room condition
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/kws_v2; E=$W/export_t3_aux_full_pico; R=/work/runs
ts() { echo "[$(date +%H:%M:%S)] $*"; }
V2=(--work $W --voices 400 --aux-words 1000 --aux-voices 160 --train-engines espeak,hibari,pico --held-out-engines ""
  --threads 2 --seed 0 --episode-words gsc+aux --set tau=3 --set eval_every=250 --set augment.babble_prob=0.2
  --set augment.speed_prob=0.3 --set augment.gain_prob=0.2 --set augment.reverb_prob=0.4 --set augment.noise_prob=0.6
  --extra-test "Kokoro-82M=/work/runs/kokoro_test")
ownv() {  # model tag
  python benchmarks/kws_own_voice.py $1 $R/own_voice_sentence --speakers 6 --engines espeak --in-sentence --tag $2 > $W/ov_sentence_$2.log 2>&1
  python benchmarks/kws_own_voice.py $1 $R/own_voice_espeak --speakers 6 --engines espeak --tag $2 > $W/ov_alone_$2.log 2>&1
  python benchmarks/kws_own_voice.py $1 $R/own_voice_first --speakers 6 --engines espeak --in-sentence --first-word --tag $2 > $W/ov_first_$2.log 2>&1
}
longf() {  # model tag
  python benchmarks/kws_longform.py $1 $R/longform --tag $2 > $W/lf_a_$2.log 2>&1
  python benchmarks/kws_longform.py $1 $R/longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9 --tag $2 > $W/lf_b_$2.log 2>&1
  python benchmarks/kws_longform.py $1 $R/longform_c --keywords marshmallow,octopus --enroll-seed 520 --seed 13 --tag $2 > $W/lf_c_$2.log 2>&1
  python benchmarks/kws_longform.py $1 $R/longform_d --keywords penguin,telescope --enroll-seed 530 --seed 17 --engines kokoro --tag $2 > $W/lf_d_$2.log 2>&1
  python benchmarks/kws_longform_pool.py --model $1 A=$R/longform/result_$2.json B=$R/longform_b/result_$2.json \
    C=$R/longform_c/result_$2.json D=$R/longform_d/result_$2.json --out $W/pooled_abcd_$2.json > $W/pool_$2.log 2>&1
}
for t in nbsame nb0; do
  export OMP_NUM_THREADS=2
  ts "$t train"
  if [ $t = nbsame ]; then extra=(--set neighbours_prob=0.5 --set neighbours_voice=same); else extra=(--set neighbours_prob=0); fi
  python benchmarks/kws_pretrained.py "${V2[@]}" --steps 1500 --set lr=0.001 --set init_from=$W/exp_t3_aux_full_pico "${extra[@]}" --tag _$t > $W/$t.log 2>&1
  export OMP_NUM_THREADS=1
  ts "$t calibrate + own voice"
  python benchmarks/kws_calibrate_detector.py $W/export_$t $R/kws_dev3 --write > $W/calib_$t.log 2>&1
  ownv $W/export_$t $t
  ts "$t long-form"
  longf $W/export_$t $t
done
ts "room"
for m in "$E v2" "$W/export_nb05 nb05" "$W/export_nbsame nbsame"; do
  set -- $m
  python benchmarks/kws_own_voice.py $1 $R/own_voice --tag $2 --room > $W/ov_room_$2.log 2>&1
done
ts "done"
