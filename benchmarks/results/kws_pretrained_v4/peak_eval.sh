#!/bin/bash
# stop 36: the peak rule (one window at threshold + peak_margin fires on its own) on an export of tag T whose
# fewshot.json has it (kws_calibrate_detector.py --peak --write): the window detector's long-form sets A-E, own
# voice (close, room), a keyword as a sentence's first word and inside a sentence. Resumable.
set -e
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=1
T=$1; W=/work/runs/kws_v2; E=$W/export_$T; R=/work/runs
ts() { echo "[$(date +%H:%M:%S)] $*"; }
lf() { local d=$1; shift; [ -f $R/$d/result_$T.json ] || python benchmarks/kws_longform.py $E $R/$d "$@" --tag $T > $W/lf_${d}_$T.log 2>&1; }
ts "$T first word, own voice"
[ -f $R/own_voice_first/own_voice_sentence_first_$T.json ] || python benchmarks/kws_own_voice.py $E $R/own_voice_first --speakers 6 --engines espeak --in-sentence --first-word --tag $T > $W/ov_first_$T.log 2>&1
ts "$T long-form A-E"
lf longform
lf longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9
lf longform_c --keywords marshmallow,octopus --enroll-seed 520 --seed 13
lf longform_d --keywords penguin,telescope --enroll-seed 530 --seed 17 --engines kokoro
lf longform_e --keywords tornado,raspberry --enroll-seed 540 --seed 21 --engines flite
python benchmarks/kws_longform_pool.py --model $E A=$R/longform/result_$T.json B=$R/longform_b/result_$T.json \
  C=$R/longform_c/result_$T.json D=$R/longform_d/result_$T.json --out $W/pooled_abcd_$T.json > $W/pool_$T.log 2>&1
ts "$T own voice: close, room; in-sentence"
python benchmarks/kws_own_voice.py $E $R/own_voice --tag $T > $W/ov12_$T.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice --room --tag $T > $W/ov12_room_$T.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice_sentence --speakers 6 --engines espeak --in-sentence --tag $T > $W/ov_sentence_$T.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice_sentence_multi --speakers 6 --engines pico,hibari,kokoro --minutes 4 --in-sentence --tag $T > $W/ovm_sentence_$T.log 2>&1
ts done
