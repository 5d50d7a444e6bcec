"""An unseen-engine test set for the few-shot KWS models: the 10 splitGSC test keywords said by 24 CMU Flite
speakers (its four English voices with random rate, mean F0 and vocal-tract factor; seed 7, as the Kokoro test
set). No model of the project has trained on Flite.

    python benchmarks/results/kws_pretrained_v3/synth_flite_test.py /work/runs/flite_test
"""
import json
import sys

from speechedge.synth.corpora import synth_speech_commands

if __name__ == "__main__":
    w = json.load(open("benchmarks/results/kws_engine_ablation/kokoro_words.json"))
    print(synth_speech_commands(sys.argv[1], words=w["test10"], per_word=24, num_speakers=24, seed=7,
                                engines=("flite",), max_groups=1, noise_seconds=2.0))
