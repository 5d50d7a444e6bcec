#!/bin/bash
# stop 35: text enrolment (24 renderings of the keyword by espeak-ng / Pico / hibari voices added to the 3 recorded
# clips; `demo kws --enroll-text`) with the model of tag T (nb0 = the shipped model, nbk): the long-form test sets
# A-E (E: CMU Flite voices, an engine no model trained on, nor the renderings), the development pairs, own voice.
set -e
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=1
T=$1; W=/work/runs/kws_v2; E=$W/export_$T; R=/work/runs
ts() { echo "[$(date +%H:%M:%S)] $*"; }
for text in "" "--enroll-text"; do
  sfx=${text:+_text}
  if [ -n "$text" ] && [ "$T" != nb0 ]; then  # nb0's development run (below) only measured, at its plain threshold
    ts "$T development pairs: the text enrolment operating point (window, then streaming) + write"
    [ -f $W/cal6w_text_$T.done ] || { python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --enroll-text --write > $W/cal6w_text_$T.log 2>&1 && touch $W/cal6w_text_$T.done; }
    [ -f $W/cal6s_text_$T.done ] || { python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --stream --enroll-text --write > $W/cal6s_text_$T.log 2>&1 && touch $W/cal6s_text_$T.done; }
  fi
  ts "$T long-form A-E $text"
  [ -f $R/longform/result${sfx}_$T.json ] || python benchmarks/kws_longform.py $E $R/longform --tag $T $text > $W/lf_a${sfx}_$T.log 2>&1
  [ -f $R/longform_b/result${sfx}_$T.json ] || python benchmarks/kws_longform.py $E $R/longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9 --tag $T $text > $W/lf_b${sfx}_$T.log 2>&1
  [ -f $R/longform_c/result${sfx}_$T.json ] || python benchmarks/kws_longform.py $E $R/longform_c --keywords marshmallow,octopus --enroll-seed 520 --seed 13 --tag $T $text > $W/lf_c${sfx}_$T.log 2>&1
  [ -f $R/longform_d/result${sfx}_$T.json ] || python benchmarks/kws_longform.py $E $R/longform_d --keywords penguin,telescope --enroll-seed 530 --seed 17 --engines kokoro --tag $T $text > $W/lf_d${sfx}_$T.log 2>&1
  [ -f $R/longform_e/result${sfx}_$T.json ] || python benchmarks/kws_longform.py $E $R/longform_e --keywords tornado,raspberry --enroll-seed 540 --seed 21 --engines flite --tag $T $text > $W/lf_e${sfx}_$T.log 2>&1
  python benchmarks/kws_longform_pool.py --model $E A=$R/longform/result${sfx}_$T.json B=$R/longform_b/result${sfx}_$T.json \
    C=$R/longform_c/result${sfx}_$T.json D=$R/longform_d/result${sfx}_$T.json --out $W/pooled_abcd${sfx}_$T.json > $W/pool${sfx}_$T.log 2>&1
  python benchmarks/kws_longform_pool.py --model $E A=$R/longform/result${sfx}_$T.json B=$R/longform_b/result${sfx}_$T.json \
    C=$R/longform_c/result${sfx}_$T.json D=$R/longform_d/result${sfx}_$T.json E=$R/longform_e/result${sfx}_$T.json \
    --out $W/pooled_abcde${sfx}_$T.json > $W/pool5${sfx}_$T.log 2>&1
done
if [ "$T" = nb0 ]; then
  ts "$T development pairs, text enrolment (measured)"
  python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --enroll-text > $W/cal6w_text_$T.log 2>&1
fi
ts "$T own voice across a room, text enrolment"
python benchmarks/kws_own_voice.py $E $R/own_voice --room --enroll-text --tag ${T}_text > $W/ov12_room_text_$T.log 2>&1
ts "done"
