#!/bin/bash
# The shipped streaming ASR model's numbers (MODEL_CARD.md): the trained student (torch, masked chunk forward) on
# test-clean (30 unseen voices of the four training engines) at 160/320/640 ms with emission latency, on the same
# utterances under recording conditions (asr_degraded_test.py) and on Kokoro-82M (an engine it never heard); the
# export (fp32 + dynamic-range int8, parity and CER checks); the exported dynamic-range model in the torch-free
# runtime (100 ms pushes) on test-clean and Kokoro, greedy and with the lexicon decoder (the shipped word list;
# since stop 40); the table. Resumable: finished results are kept.
#   bash benchmarks/results/asr_shipped/eval.sh [WORK]
#   EXP=/work/runs/asr_ship-more/student OUT=/work/runs/asr_ship-more bash benchmarks/results/asr_shipped/eval.sh
#     (stage 2, train_more.sh: the same test sets, results and export under OUT)
set -eo pipefail
W=$(realpath -m "${1:-/work/runs/asr_ship}")
EXP=${EXP:-$W/student}
O=${OUT:-$W}
R=$(cd "$(dirname "$0")" && pwd)
cd "$R/../../.."
source .venv/bin/activate
M=$W/manifests
T=$M/librispeech_test-clean.jsonl.gz
mkdir -p "$O/eval"
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
[ -f "$O/eval/student_test.json" ] || speechedge eval asr --exp-dir "$EXP" --data "$T" --chunk-ms 160 320 640 \
  --alignments "$W/LibriSpeech/alignments/test-clean" --json "$O/eval/student_test.json"
[ -f "$O/eval/student_degraded.json" ] || speechedge eval asr --exp-dir "$EXP" --data "$D" --chunk-ms 320 \
  --json "$O/eval/student_degraded.json"
[ -f "$O/eval/student_kokoro.json" ] || speechedge eval asr --exp-dir "$EXP" --data "$K" --chunk-ms 320 \
  --json "$O/eval/student_kokoro.json"
[ -f "$O/export/report.json" ] || speechedge export --exp-dir "$EXP" --out "$O/export" --dynamic-int8 \
  --held-out "$T" > "$O/export.log"
[ -f "$O/words.txt.gz" ] || speechedge prepare words --out "$O/words.txt.gz"
[ -f "$O/lexicon_grid_dev.json" ] || python benchmarks/asr_lexicon_grid.py "$O/export" "$M/librispeech_dev-clean.jsonl.gz" \
  --words "$O/words.txt.gz" --json "$O/lexicon_grid_dev.json" | tee "$O/lexicon_grid_dev.md"
for ts in test kokoro; do
  S=$T; [ $ts = kokoro ] && S=$K
  [ -f "$O/eval/exportdyn8_$ts.json" ] || python benchmarks/asr_runtime_eval.py "$O/export" "$S" \
    --precision dynamic_int8 --decoder greedy --json "$O/eval/exportdyn8_$ts.json"
  [ -f "$O/eval/exportlex_$ts.json" ] || python benchmarks/asr_runtime_eval.py "$O/export" "$S" \
    --precision dynamic_int8 --words "$O/words.txt.gz" --json "$O/eval/exportlex_$ts.json"
done
for f in 10 30; do  # the lexicon's price: 10% / 30% of the test words (outside the 1,000 most frequent) unlisted
  [ -f "$O/eval/oov${f}_test.json" ] || python benchmarks/asr_runtime_eval.py "$O/export" "$T" --precision \
    dynamic_int8 --words "$O/words.txt.gz" --oov 0.$f --json "$O/eval/oov${f}_test.json" > "$O/oov${f}_test.log"
done
python benchmarks/asr_table.py "$O/eval" --by-engine "test=$W/LibriSpeech/SPEAKERS.TXT" \
  --pair student,exportdyn8 --pair exportdyn8,exportlex --json "$O/eval/table.json" | tee "$O/eval/table.md"
