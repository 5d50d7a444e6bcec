#!/bin/bash
# stop 37: the peak rule for the distilled kws_mcu, on a copy of its export (export_kdp): the margin chosen on the
# development streams (window and stream), then the first-word test, long-form A-D and own voice with it.
set -e
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=2
R=/work/runs; O=$R/mcukd; E=$O/export_kdp; T=mcu37_kdp
[ -d $E ] || cp -r $O/export_kd $E
ts() { echo "[$(date +%H:%M:%S)] $*"; }
ts calibrate
[ -f $O/calpw.done ] || { python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --peak --write > $O/calpw.log 2>&1 && touch $O/calpw.done; }
[ -f $O/calps.done ] || { python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --stream --peak --write > $O/calps.log 2>&1 && touch $O/calps.done; }
ts "first word (before: export_kd; with: export_kdp)"
for X in kd kdp; do for S in "" "--stream"; do
  f=$R/own_voice_first/own_voice${S:+_stream}_sentence_first_mcu37_$X.json
  [ -f $f ] || python benchmarks/kws_own_voice.py $O/export_$X $R/own_voice_first --speakers 6 --engines espeak \
    --in-sentence --first-word $S --tag mcu37_$X > $O/first${S:+_s}_$X.log 2>&1
done; done
ts done
