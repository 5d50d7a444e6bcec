#!/bin/bash
# stop 35: the int8 budget, the quiet-microphone table and the espeak-ng in-sentence set for the export of tag T (as for nb0 in stop 34)
set -e
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=1
T=$1; W=/work/runs/kws_v2; E=$W/export_$T; R=/work/runs
python benchmarks/kws_int8_exported.py $E --calibration $W/manifests/train.jsonl --held-out $W/manifests/test_voices.jsonl \
  $R/kokoro_test/manifest.jsonl $R/flite_test/manifest.jsonl --ranges mse --weights tensor --json $W/int8_$T.json > $W/int8_$T.log 2>&1
python benchmarks/kws_level.py $R/level --models $E --json $W/level_$T.json > $W/level_$T.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice_sentence --speakers 6 --engines espeak --in-sentence --tag $T > $W/ov_sentence_$T.log 2>&1
echo done
