#!/bin/bash
# stop 37: a microcontroller candidate (exp_$T of run.sh) exported as kws_mcu is (int8 streaming step model +
# window model, 32 KB RAM budget), its detector calibrated on the 6 development pairs (window and stream), then the
# long-form test sets A-D (window and stream) and pooled. T=kws_mcu evaluates the shipped folder (a copy, so the
# shipped fewshot.json is not rewritten). Each step is skipped when its result exists.
set -e
cd /work/main && source .venv/bin/activate
export OMP_NUM_THREADS=1
T=$1; W=/work/runs/kws_v2; R=/work/runs; O=$R/mcukd; E=$O/export_$T
ts() { echo "[$(date +%H:%M:%S)] $*"; }
if [ "$T" = kws_mcu ]; then
  [ -d $E ] || cp -r speechedge/pretrained/kws_mcu $E
else
  ts "$T export"
  [ -f $E/report.json ] || speechedge export --exp-dir $W/exp_$T --out $E --target mcu --ram-kb 32 --mcu-model stream \
    --background-manifest $W/aux_words/manifest.jsonl > $O/export_$T.log 2>&1 || { echo "export failed: $O/export_$T.log"; tail -5 $O/export_$T.log; exit 1; }
fi
ts "$T calibrate window + stream (6 pairs)"
[ -f $O/calw_$T.done ] || { python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --write > $O/calw_$T.log 2>&1 && touch $O/calw_$T.done; }
[ -f $O/cals_$T.done ] || { python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --stream --write > $O/cals_$T.log 2>&1 && touch $O/cals_$T.done; }
TT=mcu37_$T
for S in "" "--stream"; do
  sfx=${S:+_s}; rs=${S:+stream_}
  lf() { local d=$1; shift; [ -f $R/$d/result_${rs}$TT.json ] || python benchmarks/kws_longform.py $E $R/$d $S "$@" --tag $TT > $O/lf_${d}${sfx}_$T.log 2>&1; }
  ts "$T long-form A-D $S"
  lf longform
  lf longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9
  lf longform_c --keywords marshmallow,octopus --enroll-seed 520 --seed 13
  lf longform_d --keywords penguin,telescope --enroll-seed 530 --seed 17 --engines kokoro
  python benchmarks/kws_longform_pool.py --model $E $S A=$R/longform/result_${rs}$TT.json B=$R/longform_b/result_${rs}$TT.json \
    C=$R/longform_c/result_${rs}$TT.json D=$R/longform_d/result_${rs}$TT.json --out $O/pooled_abcd_$T$sfx.json > $O/pool_$T$sfx.log 2>&1
done
ts "$T done"
