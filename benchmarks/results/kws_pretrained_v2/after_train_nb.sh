#!/bin/bash
# stop 32 -> next: after train.sh (and after_train.sh): does training on running-speech windows (neighbours_prob)
# find keywords said inside sentences? Two 1,500-step continuations of the v2 model, identical but for
# neighbours_prob (0.5 vs 0), lr 1e-3; then own voice in sentences / alone / across a room and long-form A-D.
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/kws_v2; R=/work/runs
COMMON=(--work $W --voices 400 --aux-words 1000 --aux-voices 160 --train-engines espeak,hibari,pico --held-out-engines ""
  --steps 1500 --threads 2 --seed 0 --episode-words gsc+aux --set tau=3 --set eval_every=250 --set lr=0.001
  --set augment.babble_prob=0.2 --set augment.speed_prob=0.3 --set augment.gain_prob=0.2 --set augment.reverb_prob=0.4
  --set augment.noise_prob=0.6 --set init_from=$W/exp_t3_aux_full_pico --extra-test "Kokoro-82M=/work/runs/kokoro_test")
export OMP_NUM_THREADS=2
python benchmarks/kws_pretrained.py "${COMMON[@]}" --set neighbours_prob=0.5 --tag _nb05 > $W/nb05.log 2>&1
python benchmarks/kws_pretrained.py "${COMMON[@]}" --set neighbours_prob=0 --tag _nb0 > $W/nb0.log 2>&1
export OMP_NUM_THREADS=1
for t in _nb05 _nb0; do
  E=$W/export$t
  python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --write > $W/calib$t.log 2>&1
  python benchmarks/kws_own_voice.py $E $R/own_voice_sentence --speakers 6 --engines espeak --in-sentence --tag ${t#_} > $W/ov_sentence$t.log 2>&1
  python benchmarks/kws_own_voice.py $E $R/own_voice_espeak --speakers 6 --engines espeak --tag ${t#_} > $W/ov_alone$t.log 2>&1
  python benchmarks/kws_own_voice.py $E $R/own_voice --room --tag ${t#_} > $W/ov_room$t.log 2>&1
  python benchmarks/kws_longform.py $E $R/longform --tag ${t#_} > $W/lf_a$t.log 2>&1
  python benchmarks/kws_longform.py $E $R/longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9 --tag ${t#_} > $W/lf_b$t.log 2>&1
  python benchmarks/kws_longform.py $E $R/longform_c --keywords marshmallow,octopus --enroll-seed 520 --seed 13 --tag ${t#_} > $W/lf_c$t.log 2>&1
  python benchmarks/kws_longform.py $E $R/longform_d --keywords penguin,telescope --enroll-seed 530 --seed 17 --engines kokoro --tag ${t#_} > $W/lf_d$t.log 2>&1
done
echo "done $(date)"
