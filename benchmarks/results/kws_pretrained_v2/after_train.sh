#!/bin/bash
# stop 32 -> next: after train.sh has finished (6,500 steps), evaluate, export and compare with the shipped model
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/kws_v2; E=$W/export_t3_aux_full_pico; R=/work/runs
export OMP_NUM_THREADS=2
# episode tests (held-out voices of the three engines, Kokoro) + verified fp32 export (window + streaming step model)
python benchmarks/kws_pretrained.py --work $W --voices 400 --aux-words 1000 --aux-voices 160 \
  --train-engines espeak,hibari,pico --held-out-engines "" --steps 6500 --threads 2 --seed 0 \
  --episode-words gsc+aux --set tau=3 --set eval_every=250 --set augment.babble_prob=0.2 --set augment.speed_prob=0.3 \
  --set augment.gain_prob=0.2 --set augment.reverb_prob=0.4 --set augment.noise_prob=0.6 --tag _t3_aux_full_pico \
  --extra-test "Kokoro-82M=/work/runs/kokoro_test" > $W/eval_export.log 2>&1
export OMP_NUM_THREADS=1
# (the shipped model's Kokoro row in its model card is the same folder recipe: seed 7, 24 mixes, same episodes)
# the detector's operating point on the development streams (three keyword pairs), window and streaming
python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --write > $W/calib.log 2>&1
python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --stream --write >> $W/calib.log 2>&1
# long-form A-D (the same streams as the shipped model's results) and own voice
python benchmarks/kws_longform.py $E $R/longform --tag v2 > $W/lf_a.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9 --tag v2 > $W/lf_b.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_c --keywords marshmallow,octopus --enroll-seed 520 --seed 13 --tag v2 > $W/lf_c.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_d --keywords penguin,telescope --enroll-seed 530 --seed 17 --engines kokoro --tag v2 > $W/lf_d.log 2>&1
python benchmarks/kws_longform_pool.py --model $E A=$R/longform/result_v2.json B=$R/longform_b/result_v2.json \
  C=$R/longform_c/result_v2.json D=$R/longform_d/result_v2.json --out $W/pooled_abcd_v2.json > $W/pool.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice --tag v2 > $W/own_voice_v2.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice --tag v2 --room >> $W/own_voice_v2.log 2>&1
echo "done $(date)"
