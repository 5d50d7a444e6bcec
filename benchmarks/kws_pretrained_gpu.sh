#!/usr/bin/env bash
# The pretrained few-shot KWS model at GPU scale: one voice-diverse corpus, then several training variants
# side by side on one GPU (each a `benchmarks/kws_pretrained.py` run with its own --tag; stages resume).
#
#   STAGE=data  bash benchmarks/kws_pretrained_gpu.sh   # synthesize + prepare + build the clip caches + time a step
#   STAGE=train STEPS=6500 bash benchmarks/kws_pretrained_gpu.sh   # train + evaluate every variant (no export)
#
# Run on a lent 16-core H100 machine (2026-11-24): data 328 s (174k clips), four variants side by side in
# 8.4 min at 6,500 steps (0.066 s/step each). The TFLite export runs where the converter is installed:
#   python benchmarks/kws_pretrained.py <the variant's arguments> --background-manifest <word clips here>
# Results: benchmarks/results/kws_pretrained_gpu/ and the README's "pretrained model" section.
set -euo pipefail
W=${W:-work/pretrained_gpu}
# TRAIN_ENGINES=espeak,hibari,kokoro (with a new W) adds Kokoro-82M voices to training: +4.7 points 5-shot accuracy on
# held-out Kokoro voices and +1.9 AUROC on Pico in benchmarks/kws_engine_ablation.py (README); Kokoro synthesizes
# at ~1 clip/s per core, so AUX_ENGINES=espeak,hibari keeps the 160k-clip word corpus as fast as before
DATA=(--work "$W" --voices "${VOICES:-400}" --aux-words "${AUX_WORDS:-1000}" --aux-voices "${AUX_VOICES:-160}"
      --episodes "${EPISODES:-1000}" --max-groups 32 --train-engines "${TRAIN_ENGINES:-espeak,hibari}"
      --aux-engines "${AUX_ENGINES:-${TRAIN_ENGINES:-espeak,hibari}}")
COMMON=(--set device=${DEVICE:-cuda} --set threads=2 --set eval_every=1000)
# tag : episode classes : config overrides
FULL="augment.babble_prob=0.2 augment.speed_prob=0.3 augment.gain_prob=0.2 augment.reverb_prob=0.4 augment.noise_prob=0.6"
VARIANTS=(
  "_L_t1_gsc:gsc:tau=1"
  "_L_t1_aux:gsc+aux:tau=1"
  "_L_t2_aux:gsc+aux:tau=2"
  "_L_t2_aux_full:gsc+aux:tau=2 $FULL"
)
# the second batch run the same way: "_L_t1_aux_full:gsc+aux:tau=1 $FULL" "_L_t3_aux_full:gsc+aux:tau=3 $FULL"
# ("_L_t8_aux_full" did not finish inside the lease)
python benchmarks/kws_pretrained.py "${DATA[@]}" --stop-after data
run_variant() {  # $1 = tag:episodes:overrides, $2 = steps, then extra arguments
  IFS=: read -r tag episodes overrides <<<"$1"; local steps=$2; shift 2
  sets=(); for o in $overrides ${EXTRA:-}; do sets+=(--set "$o"); done
  python benchmarks/kws_pretrained.py "${DATA[@]}" --episode-words "$episodes" --steps "$steps" --tag "$tag" \
    "${COMMON[@]}" "${sets[@]}" "$@"
}
if [[ "${STAGE:-train}" == data ]]; then
  # one short run per episode manifest builds its clip cache (so parallel variants do not each build it)
  # and measures the step time on this machine
  for v in "_probe_gsc:gsc:tau=2" "_probe_aux:gsc+aux:tau=2"; do run_variant "$v" 50 --stop-after train >"$W/probe${v%%:*}.log" 2>&1 || { tail -30 "$W/probe${v%%:*}.log"; exit 1; }; done
  grep -h "s_per_step" "$W"/train_probe_*.done.json
  exit 0
fi
for v in "${VARIANTS[@]}"; do
  run_variant "$v" "${STEPS:?set STEPS, the training steps of every variant}" --stop-after eval >"$W/train${v%%:*}.log" 2>&1 &
done
wait
for v in "${VARIANTS[@]}"; do tag=${v%%:*}; tail -6 "$W/train$tag.log"; done
