#!/bin/bash
# The shipped streaming ASR model's numbers (MODEL_CARD.md): the trained student (torch, masked chunk forward) on
# test-clean (30 unseen voices of the four training engines) at 160/320/640 ms with emission latency, on the same
# utterances under recording conditions (asr_degraded_test.py) and on Kokoro-82M (an engine it never heard); the
# export (fp32 + dynamic-range int8, parity and CER checks); the exported dynamic-range model in the torch-free
# runtime (100 ms pushes) on test-clean and Kokoro; the table. Resumable: finished results are kept.
#   bash benchmarks/results/asr_shipped/eval.sh [WORK]
set -eo pipefail
W=$(realpath -m "${1:-/work/runs/asr_ship}")
R=$(cd "$(dirname "$0")" && pwd)
cd "$R/../../.."
source .venv/bin/activate
M=$W/manifests
T=$M/librispeech_test-clean.jsonl.gz
mkdir -p "$W/eval"
[ -f "$W/kokoro/synth_report.json" ] || speechedge synth librispeech --out "$W/kokoro" --hours 0.3 --speakers 12 \
  --engines kokoro --seed 31
[ -f "$W/kokoro_manifests/librispeech_stats.json" ] || speechedge prepare librispeech --corpus "$W/kokoro" \
  --out "$W/kokoro_manifests"
K=$W/kokoro_all.jsonl.gz
[ -f "$K" ] || { cat "$W"/kokoro_manifests/librispeech_{train-clean-100,dev-clean,test-clean}.jsonl.gz > "$K.tmp" \
  && mv "$K.tmp" "$K"; }
[ -f "$W/degraded/degrade.json" ] || python benchmarks/asr_degraded_test.py --corpus "$W/LibriSpeech" \
  --split test-clean --out "$W/degraded" --seed 777
[ -f "$W/degraded_manifests/librispeech_stats.json" ] || speechedge prepare librispeech \
  --corpus "$W/degraded" --out "$W/degraded_manifests"
D=$W/degraded_manifests/librispeech_test-clean.jsonl.gz
[ -f "$W/eval/student_test.json" ] || speechedge eval asr --exp-dir "$W/student" --data "$T" --chunk-ms 160 320 640 \
  --alignments "$W/LibriSpeech/alignments/test-clean" --json "$W/eval/student_test.json"
[ -f "$W/eval/student_degraded.json" ] || speechedge eval asr --exp-dir "$W/student" --data "$D" --chunk-ms 320 \
  --json "$W/eval/student_degraded.json"
[ -f "$W/eval/student_kokoro.json" ] || speechedge eval asr --exp-dir "$W/student" --data "$K" --chunk-ms 320 \
  --json "$W/eval/student_kokoro.json"
[ -f "$W/export/report.json" ] || speechedge export --exp-dir "$W/student" --out "$W/export" --dynamic-int8 \
  --held-out "$T" > "$W/export.log"
for ts in test kokoro; do
  S=$T; [ $ts = kokoro ] && S=$K
  [ -f "$W/eval/exportdyn8_$ts.json" ] || python benchmarks/asr_runtime_eval.py "$W/export" "$S" \
    --precision dynamic_int8 --json "$W/eval/exportdyn8_$ts.json"
done
python benchmarks/asr_table.py "$W/eval" --by-engine "test=$W/LibriSpeech/SPEAKERS.TXT" \
  --pair student,exportdyn8 --json "$W/eval/table.json" | tee "$W/eval/table.md"
