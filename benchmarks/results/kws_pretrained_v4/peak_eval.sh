#!/bin/bash
# stop 36: the peak rule (one window at threshold + peak_margin fires on its own) on an export of tag T whose
# fewshot.json has it (kws_calibrate_detector.py --peak --write): the window detector's long-form sets A-E, own
# voice (close, room), a keyword as a sentence's first word and inside a sentence. Resumable.
set -e
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=1
T=$1; W=/work/runs/kws_v2; E=$W/export_$T; R=/work/runs
ts() { echo "[$(date +%H:%M:%S)] $*"; }
ts "$T first word, own voice"
[ -f $R/own_voice_first/own_voice_sentence_first_$T.json ] || python benchmarks/kws_own_voice.py $E $R/own_voice_first --speakers 6 --engines espeak --in-sentence --first-word --tag $T > $W/ov_first_$T.log 2>&1
ts "$T long-form A-E"
source benchmarks/results/kws_pretrained_v4/longform_sets.sh
ts "$T own voice: close, room; in-sentence"
python benchmarks/kws_own_voice.py $E $R/own_voice --tag $T > $W/ov12_$T.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice --room --tag $T > $W/ov12_room_$T.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice_sentence --speakers 6 --engines espeak --in-sentence --tag $T > $W/ov_sentence_$T.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice_sentence_multi --speakers 6 --engines pico,hibari,kokoro --minutes 4 --in-sentence --tag $T > $W/ovm_sentence_$T.log 2>&1
ts done
