"""Kokoro-82M training clips for the v3 continuation: the 75 words of the engine ablation (the 15 splitGSC
training keywords and 60 auxiliary words; none is a test, development or long-form keyword) by 64 new speakers
(random two-style mixes, seed 21; the Kokoro test set is seed 7, the ablation's training set seed 11).

    python benchmarks/results/kws_pretrained_v3/synth_kokoro_train.py /work/runs/kokoro_train_v3
"""
import json
import sys

from speechedge.synth.corpora import synth_speech_commands

if __name__ == "__main__":
    w = json.load(open("benchmarks/results/kws_engine_ablation/kokoro_words.json"))
    r = synth_speech_commands(sys.argv[1], words=w["gsc15"] + w["aux60"], per_word=64, num_speakers=64, seed=21,
                              engines=("kokoro",), noise_seconds=2.0)
    print(r)
