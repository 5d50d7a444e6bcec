#!/bin/bash
# stop 34: everything the README states of the shipped model, for a candidate export (tag = nb0 | lwmix)
set -e
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=1
T=$1; W=/work/runs/kws_v2; E=$W/export_$T; R=/work/runs
ts() { echo "[$(date +%H:%M:%S)] $*"; }
ts "$T window calibration (6 pairs) + write"
[ -f $W/cal6w_$T.done ] || { python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --write > $W/cal6w_$T.log 2>&1 && touch $W/cal6w_$T.done; }
ts "stream calibration + write"
[ -f $W/cal6s_$T.done ] || { python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --stream --write > $W/cal6s_$T.log 2>&1 && touch $W/cal6s_$T.done; }
ts "pools at the new default"
python benchmarks/kws_longform_pool.py --model $E A=$R/longform/result_$T.json B=$R/longform_b/result_$T.json \
  C=$R/longform_c/result_$T.json D=$R/longform_d/result_$T.json --out $W/pooled_abcd_$T.json > $W/pool_$T.log 2>&1
ts "stream long-form"
python benchmarks/kws_longform.py $E $R/longform --stream --tag $T > $W/lfs_a_$T.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9 --stream --tag $T > $W/lfs_b_$T.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_c --keywords marshmallow,octopus --enroll-seed 520 --seed 13 --stream --tag $T > $W/lfs_c_$T.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_d --keywords penguin,telescope --enroll-seed 530 --seed 17 --engines kokoro --stream --tag $T > $W/lfs_d_$T.log 2>&1
python benchmarks/kws_longform_pool.py --model $E --stream A=$R/longform/result_stream_$T.json B=$R/longform_b/result_stream_$T.json \
  C=$R/longform_c/result_stream_$T.json D=$R/longform_d/result_stream_$T.json --out $W/pooled_abcd_${T}_s.json > $W/pools_$T.log 2>&1
ts "own voice 12 speakers: close, room, stream close, stream room"
python benchmarks/kws_own_voice.py $E $R/own_voice --tag $T > $W/ov12_$T.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice --room --tag $T > $W/ov12_room_$T.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice --stream --tag $T > $W/ov12_stream_$T.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice --stream --room --tag $T > $W/ov12_stream_room_$T.log 2>&1
ts "in-sentence, other engines; first word"
python benchmarks/kws_own_voice.py $E $R/own_voice_sentence_multi --speakers 6 --engines pico,hibari,kokoro --minutes 4 --in-sentence --tag $T > $W/ovm_sentence_$T.log 2>&1
[ -f $R/own_voice_first/own_voice_sentence_first_$T.json ] || python benchmarks/kws_own_voice.py $E $R/own_voice_first --speakers 6 --engines espeak --in-sentence --first-word --tag $T > $W/ov_first_$T.log 2>&1
ts "done"
