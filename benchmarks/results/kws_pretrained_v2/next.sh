#!/bin/bash
# stop 33: after train.sh (6,500 steps): the prioritized evaluation. v2's export and in-sentence numbers first,
# then the neighbours continuation (does it find keywords inside sentences?), then the long-form sets, then the control.
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
}
longf() {  # model tag
  python benchmarks/kws_longform.py $1 $R/longform --tag $2 > $W/lf_a_$2.log 2>&1
  python benchmarks/kws_longform.py $1 $R/longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9 --tag $2 > $W/lf_b_$2.log 2>&1
  python benchmarks/kws_longform.py $1 $R/longform_c --keywords marshmallow,octopus --enroll-seed 520 --seed 13 --tag $2 > $W/lf_c_$2.log 2>&1
  python benchmarks/kws_longform.py $1 $R/longform_d --keywords penguin,telescope --enroll-seed 530 --seed 17 --engines kokoro --tag $2 > $W/lf_d_$2.log 2>&1
  python benchmarks/kws_longform_pool.py --model $1 A=$R/longform/result_$2.json B=$R/longform_b/result_$2.json \
    C=$R/longform_c/result_$2.json D=$R/longform_d/result_$2.json --out $W/pooled_abcd_$2.json > $W/pool_$2.log 2>&1
}
export OMP_NUM_THREADS=2
ts "v2 eval + export"
[ -f $E/model_fp32.tflite ] || python benchmarks/kws_pretrained.py "${V2[@]}" --steps 6500 --tag _t3_aux_full_pico > $W/eval_export.log 2>&1
export OMP_NUM_THREADS=1
ts "v2 calibrate"
python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --write > $W/calib.log 2>&1
ts "v2 own voice"
ownv $E v2
export OMP_NUM_THREADS=2
ts "nb05 train"
python benchmarks/kws_pretrained.py "${V2[@]}" --steps 1500 --set lr=0.001 --set init_from=$W/exp_t3_aux_full_pico --set neighbours_prob=0.5 --tag _nb05 > $W/nb05.log 2>&1
export OMP_NUM_THREADS=1
ts "nb05 calibrate + own voice"
python benchmarks/kws_calibrate_detector.py $W/export_nb05 $R/kws_dev3 --write > $W/calib_nb05.log 2>&1
ownv $W/export_nb05 nb05
python benchmarks/kws_own_voice.py $W/export_nb05 $R/own_voice_first --speakers 6 --engines espeak --in-sentence --first-word --tag nb05 > $W/ov_first_nb05.log 2>&1
ts "long-form v2"
longf $E v2
ts "long-form nb05"
longf $W/export_nb05 nb05
ts "own voice 12 speakers, room"
python benchmarks/kws_own_voice.py $E $R/own_voice --tag v2 --room > $W/ov_room_v2.log 2>&1
python benchmarks/kws_own_voice.py $W/export_nb05 $R/own_voice --tag nb05 --room > $W/ov_room_nb05.log 2>&1
export OMP_NUM_THREADS=2
ts "nb0 control"
python benchmarks/kws_pretrained.py "${V2[@]}" --steps 1500 --set lr=0.001 --set init_from=$W/exp_t3_aux_full_pico --set neighbours_prob=0 --tag _nb0 > $W/nb0.log 2>&1
export OMP_NUM_THREADS=1
python benchmarks/kws_calibrate_detector.py $W/export_nb0 $R/kws_dev3 --write > $W/calib_nb0.log 2>&1
ownv $W/export_nb0 nb0
longf $W/export_nb0 nb0
ts "done"
