"""More Kokoro-82M training clips for the v4 continuation (stop 36): 150 auxiliary words the v3 set
(`kws_pretrained_v3/synth_kokoro_train.py`, 75 words) does not have, drawn (seed 23) from the shipped recipe's
1,000 auxiliary words minus every keyword an evaluation enrols (long-form A-E, the detector's development pairs,
own-voice, quickstart), plus the 15 splitGSC training keywords, by 40 new speakers (seed 23; the test set is
seed 7, v3's training set seed 21).

    python benchmarks/results/kws_pretrained_v4/synth_kokoro_train2.py /work/runs/kokoro_train_v4
"""
import json
import sys

import numpy as np

from speechedge.synth.corpora import SPEECH_COMMANDS_V2_WORDS, synth_speech_commands, vocabulary

EVAL_KEYWORDS = set("pineapple jupiter avocado saturday marshmallow octopus penguin telescope tornado raspberry "
                    "lemonade november butterfly kangaroo sunflower volcano elephant umbrella dinosaur helicopter "
                    "giraffe lighthouse dolphin lantern".split())


def words() -> list[str]:
    w = json.load(open("benchmarks/results/kws_engine_ablation/kokoro_words.json"))
    vocab, _ = vocabulary(4000)
    aux = [v for v in vocab if len(v) >= 4 and v not in SPEECH_COMMANDS_V2_WORDS][:1000]  # kws_pretrained's
    pool = sorted(set(aux) - set(w["aux60"]) - EVAL_KEYWORDS)
    new = sorted(np.random.default_rng(23).choice(pool, size=150, replace=False).tolist())
    return w["gsc15"] + new


if __name__ == "__main__":
    r = synth_speech_commands(sys.argv[1], words=words(), per_word=40, num_speakers=40, seed=23,
                              engines=("kokoro",), noise_seconds=2.0)
    print(r)
