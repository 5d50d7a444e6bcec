# stop 36: sourced by nbk2.sh and peak_eval.sh: the window detector's long-form sets A-E for export $E of tag $T
# (each skipped when its result exists), pooled A-D. Needs W, R, E, T set.
lf() { local d=$1; shift; [ -f $R/$d/result_$T.json ] || python benchmarks/kws_longform.py $E $R/$d "$@" --tag $T > $W/lf_${d}_$T.log 2>&1; }
lf longform
lf longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9
lf longform_c --keywords marshmallow,octopus --enroll-seed 520 --seed 13
lf longform_d --keywords penguin,telescope --enroll-seed 530 --seed 17 --engines kokoro
lf longform_e --keywords tornado,raspberry --enroll-seed 540 --seed 21 --engines flite
python benchmarks/kws_longform_pool.py --model $E A=$R/longform/result_$T.json B=$R/longform_b/result_$T.json \
  C=$R/longform_c/result_$T.json D=$R/longform_d/result_$T.json --out $W/pooled_abcd_$T.json > $W/pool_$T.log 2>&1
