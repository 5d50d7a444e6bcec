import json
from speechedge.synth.corpora import synth_speech_commands

if __name__ == '__main__':
    w = json.load(open("benchmarks/results/kws_engine_ablation/kokoro_words.json"))
    r = synth_speech_commands("work/kokoro_train", words=w["gsc15"] + w["aux60"], per_word=40,
                              num_speakers=40, seed=11, engines=("kokoro",), max_groups=1, noise_seconds=2.0)
    print(r)
    r = synth_speech_commands("work/kokoro_test", words=w["test10"], per_word=24, num_speakers=24, seed=7,
                              engines=("kokoro",), max_groups=1, noise_seconds=2.0)
    print(r)
