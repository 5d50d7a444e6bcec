#!/bin/bash
# next experiment (planned stop 33, not run): word supervision and episodes from LibriWord cut out of read
# sentences (each 1-second window keeps its real neighbouring words), instead of isolated synthesized words.
# Resumable stage by stage; a 1,500-step continuation of v2 like nb05/nbsame, then the same evaluations.
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/kws_v2; L=/work/runs/lw_sent; R=/work/runs
ts() { echo "[$(date +%H:%M:%S)] $*"; }
mkdir -p $L
ts "sentences (espeak-ng: the engine with word alignments)"
[ -f $L/corpus.done ] || { speechedge synth librispeech --out $L/corpus --hours 48 --speakers 240 --engines espeak --seed 21 --quiet && touch $L/corpus.done; }
ts "LibriWord"
speechedge prepare libriword --librispeech $L/corpus --alignments $L/corpus/alignments --out $L/libriword \
  --num-words 300 --min-chars 4 --clips-per-word 100 --workers 2 --quiet
python - <<'PY'
from dataclasses import replace
from pathlib import Path
from speechedge.manifest import ClipRecord, read_manifest, write_manifest
m, lw = Path("/work/runs/kws_v2/manifests"), Path("/work/runs/lw_sent/libriword")
from speechedge.synth.corpora import SPEECH_COMMANDS_V2_WORDS as SC
# Speech Commands words (the few-shot test classes among them) never enter word supervision or episodes
lw_rows = [replace(r, path=str((lw / r.path).resolve())) for r in read_manifest(lw / "manifest.jsonl", ClipRecord)
           if r.label not in SC]
kept = sorted({r.label for r in lw_rows})
print(len(kept), "LibriWord words after dropping Speech Commands words")
write_manifest(Path("/work/runs/lw_sent/libriword_nosc.jsonl"), lw_rows)
# mixed with the isolated auxiliary words (1,000 words x 160 espeak-ng/hibari/Pico voices): the same word alone
# and inside a sentence is one class
aux = Path("/work/runs/kws_v2/aux_words")
aux_rows = [replace(r, path=str((aux / r.path).resolve())) for r in read_manifest(aux / "manifest.jsonl", ClipRecord)]
write_manifest(Path("/work/runs/lw_sent/libriword_mixed.jsonl"), aux_rows + lw_rows)
rows = list(read_manifest(m / "train_gsc+aux.jsonl", ClipRecord)) + [r for r in lw_rows if r.split == "train"]
write_manifest(Path("/work/runs/lw_sent/train_gsc+aux+lw.jsonl"), rows)
print(len(rows), "episode clips")
PY
V2=(--work $W --voices 400 --aux-words 1000 --aux-voices 160 --train-engines espeak,hibari,pico --held-out-engines ""
  --threads 2 --seed 0 --episode-words gsc+aux --set tau=3 --set eval_every=250 --set augment.babble_prob=0.2
  --set augment.speed_prob=0.3 --set augment.gain_prob=0.2 --set augment.reverb_prob=0.4 --set augment.noise_prob=0.6
  --extra-test "Kokoro-82M=/work/runs/kokoro_test")
export OMP_NUM_THREADS=2
ts "train"
python benchmarks/kws_pretrained.py "${V2[@]}" --steps 1500 --set lr=0.001 --set init_from=$W/exp_t3_aux_full_pico \
  --set libriword_manifest=$L/libriword_mixed.jsonl --set train_manifest=$L/train_gsc+aux+lw.jsonl --tag _lwmix > $W/lwmix.log 2>&1
export OMP_NUM_THREADS=1
E=$W/export_lwmix
python benchmarks/kws_calibrate_detector.py $E $R/kws_dev3 --write > $W/calib_lwmix.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice_sentence --speakers 6 --engines espeak --in-sentence --tag lwmix > $W/ov_sentence_lwmix.log 2>&1
python benchmarks/kws_own_voice.py $E $R/own_voice_espeak --speakers 6 --engines espeak --tag lwmix > $W/ov_alone_lwmix.log 2>&1
python benchmarks/kws_longform.py $E $R/longform --tag lwmix > $W/lf_a_lwmix.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_b --keywords avocado,saturday --enroll-seed 510 --seed 9 --tag lwmix > $W/lf_b_lwmix.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_c --keywords marshmallow,octopus --enroll-seed 520 --seed 13 --tag lwmix > $W/lf_c_lwmix.log 2>&1
python benchmarks/kws_longform.py $E $R/longform_d --keywords penguin,telescope --enroll-seed 530 --seed 17 --engines kokoro --tag lwmix > $W/lf_d_lwmix.log 2>&1
python benchmarks/kws_longform_pool.py --model $E A=$R/longform/result_lwmix.json B=$R/longform_b/result_lwmix.json \
  C=$R/longform_c/result_lwmix.json D=$R/longform_d/result_lwmix.json --out $W/pooled_abcd_lwmix.json > $W/pool_lwmix.log 2>&1
ts "done"
