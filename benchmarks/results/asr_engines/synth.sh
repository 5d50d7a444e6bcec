#!/bin/bash
# stop 28: speech of other engines in the LibriSpeech layout, for the 10 h ASR models
set -e
cd /work/main && source .venv/bin/activate
W=/work/runs/asr_engines
# pico + hibari speakers: train/dev/test (test = voices of these engines the training never heard)
speechedge synth librispeech --out $W/picohibari --hours 6 --speakers 90 --seed 21 --engines pico,hibari --quiet > $W/picohibari_report.json
# Kokoro-82M: an engine no model trains on (all of it is test material)
speechedge synth librispeech --out $W/kokoro --hours 0.3 --speakers 12 --seed 31 --engines kokoro --quiet > $W/kokoro_report.json
for c in picohibari kokoro; do speechedge prepare librispeech --corpus $W/$c --out $W/manifests_$c; done
