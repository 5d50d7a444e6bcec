#!/bin/bash
# own voice (12 speakers enrol dolphin/lantern and talk; close and across a room), window and stream: ov.sh NAME DIR
set -e
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=2
N=$1; E=$2; R=/work/runs; O=$R/mcukd
for S in "" "--stream"; do for M in "" "--room"; do
  f=$R/own_voice/own_voice${S:+_stream}${M:+_room}_mcu37_$N.json
  [ -f $f ] || python benchmarks/kws_own_voice.py $E $R/own_voice $S $M --tag mcu37_$N > $O/ov${S:+_s}${M:+_room}_$N.log 2>&1
  echo "$(date +%T) $N $S $M done"
done; done
