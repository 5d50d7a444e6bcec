#!/bin/bash
# Copy the verified export (eval.sh) into the package as speechedge/pretrained/asr_stream: the dynamic-range int8
# step model and what the runtime reads beside it (no fp32 file: 3.2 MB), and the lexicon decoder's word list
# (words.txt.gz, `speechedge prepare words`: 20,000 words). MODEL_CARD.md is kept (written by hand from
# eval/table.md and the export's report.json).
#   bash benchmarks/results/asr_shipped/ship.sh [WORK]       (OUT=...: where eval.sh wrote, as there)
set -eo pipefail
W=$(realpath -m "${1:-/work/runs/asr_ship}")
O=${OUT:-$W}
cd "$(dirname "$0")/../../.."
E=$O/export
[ -f "$E/report.json" ] && [ -f "$E/model_dynamic_int8.tflite" ] || { echo "$E: run eval.sh first" >&2; exit 1; }
D=speechedge/pretrained/asr_stream
mkdir -p "$D"
for f in model_dynamic_int8.tflite asr.json tokens.txt frontend.json level.json report.json; do cp "$E/$f" "$D/"; done
[ -f "$E/state_init.npz" ] && cp "$E/state_init.npz" "$D/"
cp "$O/words.txt.gz" "$D/"
ls -l "$D"
