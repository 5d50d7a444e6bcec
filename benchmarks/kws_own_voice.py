"""Own-voice detection: what one user gets from ``speechedge demo kws --enroll-mic`` and then talking.

    python benchmarks/kws_own_voice.py MODEL WORK [--speakers 12] [--minutes 8] [--keywords dolphin,lantern]
        [--engines espeak,hibari,pico,kokoro] [--stream] [--room] [--in-sentence [--first-word]] [--enroll-context N]
        [--enroll-room] [--tag NAME]

Each of ``--speakers`` synthetic speakers (the engines in turn) enrols two keywords with 3 takes of its own, then
speaks ``--minutes`` of its own sentences (Zipf text over 4,000 words, without the keywords) and says each keyword
5 times among them, alone between two sentences (0.3-1.0 s pauses, as the long-form test sets insert them).
Every take - enrolment and test - is the speaker's voice with its own rate (x0.92-1.08), pitch (x0.95-1.05, where
the engine has one), engine randomness and level (0.3-0.9 of full scale); a -65 dBFS noise floor runs under the
whole recording (a microphone's self-noise). With ``--room`` the enrolment stays as it is (said close to the
microphone) and the recording is heard across a room: one simulated room per speaker (pyroomacoustics, RT60
0.3-0.8 s, ``speechedge.training.augment.simulate_rirs``) and pink noise or hum at 10-20 dB SNR (against the
recording's mean power, pauses included). With ``--in-sentence`` each keyword event is said inside one of the
sentences, neither first nor last word (coarticulated with its neighbours, no pause; ``--first-word``: as its first
word, a wake word followed by a command), its span from espeak-ng's word events (the other engines give none: there
it is estimated from the sentence cut before and after the keyword, ``estimate_word_span``); the enrolment takes stay
the word said alone (``--enroll-context N``: N more takes per keyword, each said inside another sentence of the
speaker's and cut as the 1-second window centred on it). False alarms are what the speaker's *own* speech makes: the
long-form test sets (``benchmarks/kws_longform.py``) enrol some voices and test others, and never measure that.

For each speaker a model with only that speaker's two keywords enrolled runs over that speaker's recording; the
DET curves are pooled over speakers at each threshold (one threshold for everyone, as a user gets it). Writes
``WORK/own_voice[_stream][_room][_sentence][_TAG].json`` (pooled and per-speaker operating points, the pooled DET) and prints a
table. Synthesis is per speaker and resumable (``WORK/spk_NN/done.json``).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

NOISE_FLOOR_DBFS = -65.0


def _take(voice, rng: np.random.Generator):
    """One take of ``voice``: its rate and pitch moved a little, its own engine randomness."""
    pitch = voice.pitch * float(rng.uniform(0.95, 1.05)) if voice.engine in ("espeak", "pico") else voice.pitch
    return replace(voice, rate=round(voice.rate * float(rng.uniform(0.92, 1.08)), 3), pitch=round(pitch, 3),
                   seed=int(rng.integers(2**31)))


def _say(voice, text: str, rng: np.random.Generator) -> np.ndarray:
    from speechedge.audio import trim_silence
    from speechedge.synth.engines import synthesize

    return trim_silence(synthesize(_take(voice, rng), text)) * float(rng.uniform(0.3, 0.9))


def _say_in_sentence(voice, words: list[str], k: int, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """``words`` said as one sentence by ``voice``; returns the audio and word ``k``'s span (seconds).

    espeak-ng: the span from its word events; raises ``ValueError`` when espeak-ng merged word ``k`` with a
    neighbour (no span of its own). The other engines give no word timings: the span is
    :func:`speechedge.synth.engines.estimate_word_span`'s (from the sentence cut before and after the word).
    """
    from speechedge.synth.engines import estimate_word_span, synthesize_with_spans

    take = _take(voice, rng)
    if voice.engine != "espeak":
        audio, a, b = estimate_word_span(take, words, k)
    else:
        try:
            audio, spans = synthesize_with_spans(take, words)
        except ValueError:
            raise ValueError(f"{take.key}: no word span for {words[k]!r} in {' '.join(words)!r}") from None
        a, b = spans[k].start_s, spans[k].end_s
    # the level after the synthesis (as before other engines were allowed): the same draws, the same recordings
    return audio * float(rng.uniform(0.3, 0.9)), a, b


def _vocabulary_without(keywords: list[str]) -> tuple[list[str], np.ndarray]:
    """The 4,000-word Zipf vocabulary of the speakers' sentences, the keywords taken out (probabilities renormalised)."""
    from speechedge.synth.corpora import vocabulary

    words, probs = vocabulary(4000)
    keep = np.array([w not in keywords for w in words])
    return [w for w, ok in zip(words, keep) if ok], probs[keep] / probs[keep].sum()


def synth_speaker(folder: Path, voice, keywords: list[str], minutes: float, seed: int,
                  in_sentence: bool = False, first_word: bool = False) -> None:
    """``folder/enroll/{keyword}_{n}.wav`` (3 takes each) and ``folder/stream/stream.wav`` + ``stream.json`` (events)."""
    from speechedge.audio import write_audio
    from speechedge.io import atomic_write_text

    args = {"voice": voice.key, "keywords": keywords, "minutes": minutes, "seed": seed,
            **({"in_sentence": True} if in_sentence else {}), **({"first_word": True} if first_word else {})}
    done = folder / "done.json"
    if done.exists() and json.loads(done.read_text()) == args:
        return
    rng = np.random.default_rng(seed)
    for k in keywords:
        for n in range(3):
            write_audio(folder / "enroll" / f"{k}_{n}.wav", _say(voice, k, rng), 16000)
    words, probs = _vocabulary_without(keywords)
    sentences: list[np.ndarray] = []
    texts: list[str] = []
    total = 0
    while total < minutes * 60 * 16000:
        text = " ".join(words[i] for i in rng.choice(len(words), size=int(rng.integers(6, 15)), p=probs))
        audio = _say(voice, text, rng)
        sentences.append(audio)
        texts.append(text)
        total += len(audio) + 16000 * 0.3
    slots = rng.choice(np.arange(1, len(sentences)), size=min(5 * len(keywords), len(sentences) - 1), replace=False)
    said = {int(s): keywords[j % len(keywords)] for j, s in enumerate(sorted(slots))}
    parts, events, t = [], [], 0
    for i, s in enumerate(sentences):
        if i in said and in_sentence:  # this sentence again, the keyword in place of one of its inner words
            words_i = texts[i].split()
            for attempt in range(20):
                if attempt >= 10:  # espeak-ng keeps merging two words of this sentence: another one
                    words_i = [words[j] for j in rng.choice(len(words), size=int(rng.integers(6, 15)), p=probs)]
                k = 0 if first_word else int(rng.integers(1, len(words_i) - 1))
                try:
                    s, a, b = _say_in_sentence(voice, words_i[:k] + [said[i]] + words_i[k + 1:], k, rng)
                    break
                except ValueError:
                    continue
            else:
                raise RuntimeError(f"{voice.key}: espeak-ng gave no span for {said[i]!r} in 20 sentences")
            pause = np.zeros(int(16000 * rng.uniform(0.3, 1.0)), np.float32)
            start = (t + len(pause)) / 16000
            events.append({"keyword": said[i], "start_s": round(start + a, 3), "end_s": round(start + b, 3),
                           "speaker": voice.key, "engine": voice.engine, "in_sentence": True,
                           "span": "word events" if voice.engine == "espeak" else "estimated"})
            parts += [pause, s.astype(np.float32)]
            t += len(pause) + len(s)
            continue
        if i in said:
            gap = np.zeros(int(16000 * rng.uniform(0.3, 1.0)), np.float32)
            clip = _say(voice, said[i], rng)
            start = (t + len(gap)) / 16000
            events.append({"keyword": said[i], "start_s": round(start, 3), "end_s": round(start + len(clip) / 16000, 3),
                           "speaker": voice.key, "engine": voice.engine})
            parts += [gap, clip]
            t += len(gap) + len(clip)
        pause = np.zeros(int(16000 * rng.uniform(0.3, 1.0)), np.float32)
        parts += [pause, s.astype(np.float32)]
        t += len(pause) + len(s)
    stream = np.concatenate(parts)
    stream = stream + rng.normal(0, 10 ** (NOISE_FLOOR_DBFS / 20), len(stream)).astype(np.float32)
    write_audio(folder / "stream" / "stream.wav", np.clip(stream, -1, 1), 16000)
    atomic_write_text(folder / "stream" / "stream.json", json.dumps({"events": events}, indent=1))
    atomic_write_text(done, json.dumps(args))


def synth_context_enrolment(folder: Path, voice, keywords: list[str], takes: int, seed: int) -> None:
    """``folder/{keyword}_{n}.wav``: ``takes`` enrolment clips per keyword said inside a sentence of the speaker's
    own (Zipf text without the keywords, the keyword neither first nor last word), each the 1-second window centred
    on the keyword's span: what enrolling from phrases would keep if it knew where the keyword is."""
    from speechedge.audio import write_audio
    from speechedge.io import atomic_write_text

    args = {"voice": voice.key, "keywords": keywords, "takes": takes, "seed": seed}
    done = folder / "done.json"
    if done.exists() and json.loads(done.read_text()) == args:
        return
    rng = np.random.default_rng([seed, 99])
    words, probs = _vocabulary_without(keywords)
    for kw in keywords:
        n = 0
        for _ in range(20 * takes):
            if n == takes:
                break
            ws = [words[j] for j in rng.choice(len(words), size=int(rng.integers(6, 12)), p=probs)]
            k = int(rng.integers(1, len(ws) - 1))
            try:
                audio, a, b = _say_in_sentence(voice, ws[:k] + [kw] + ws[k + 1:], k, rng)
            except ValueError:
                continue
            c = int((a + b) / 2 * 16000)
            audio = np.concatenate([np.zeros(8000, np.float32), audio.astype(np.float32), np.zeros(8000, np.float32)])
            write_audio(folder / f"{kw}_{n}.wav", audio[c: c + 16000], 16000)
            n += 1
        if n < takes:
            raise RuntimeError(f"{voice.key}: espeak-ng gave no span for {kw!r} in {20 * takes} sentences")
    atomic_write_text(done, json.dumps(args))


def _across_a_room(audio: np.ndarray, seed: int) -> np.ndarray:
    """``audio`` through one simulated room (RT60 0.3-0.8 s) plus pink noise or hum at 10-20 dB SNR."""
    from scipy.signal import fftconvolve

    from speechedge.synth.corpora import noise_signal
    from speechedge.training.augment import simulate_rirs

    rng = np.random.default_rng([seed, 7])
    rir = simulate_rirs(1, 16000, (0.3, 0.8), seed=int(rng.integers(2**31)))[0]
    wet = fftconvolve(audio, np.asarray(rir, np.float64))[: len(audio)]
    noise = noise_signal(("pink_noise", "hum")[int(rng.integers(2))], len(audio), rng).astype(np.float64)
    snr_db = float(rng.uniform(10, 20))
    noise *= np.sqrt(np.mean(wet ** 2) / 10 ** (snr_db / 10) / max(np.mean(noise ** 2), 1e-12))
    return np.clip(wet + noise, -1, 1).astype(np.float32)


def _span_scores(m, streams) -> list[dict]:
    """Per keyword event: the window model's detection score of the word's span alone (zero-padded to the
    window, as an enrolment clip) and of the 1-second window centred on it (the word with its neighbours)."""
    out = []
    for st in streams:
        for e in st.events:
            a, b = int(e["start_s"] * 16000), int(e["end_s"] * 16000)
            c = (a + b) // 2
            alone = m.detection_scores(m.embed(st.audio[a:b], "window"))[e["keyword"]]
            window = m.detection_scores(m.embed(st.audio[max(0, c - 8000): c + 8000], "window"))[e["keyword"]]
            out.append({"keyword": e["keyword"], "alone": round(alone, 4), "in_window": round(window, 4)})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("work", type=Path)
    p.add_argument("--speakers", type=int, default=12)
    p.add_argument("--minutes", type=float, default=8.0, help="minutes of own speech per speaker")
    p.add_argument("--keywords", default="dolphin,lantern")
    p.add_argument("--engines", default="espeak,hibari,pico,kokoro")
    p.add_argument("--seed", type=int, default=41)
    p.add_argument("--stream", action="store_true", help="the streaming step model instead of the window model")
    p.add_argument("--room", action="store_true",
                   help="the recording (not the enrolment) through a simulated room with background noise")
    p.add_argument("--in-sentence", action="store_true",
                   help="each keyword event inside a sentence, not alone between two (its span: espeak-ng's word "
                        "events, estimated for the other engines)")
    p.add_argument("--first-word", action="store_true",
                   help="with --in-sentence: the keyword is the sentence's first word (a wake word and a command "
                        "without a pause)")
    p.add_argument("--enroll-context", type=int, default=0, metavar="N",
                   help="N more enrolment takes per keyword, each said inside a sentence (the 1-second window centred "
                        "on it), besides the 3 said alone")
    p.add_argument("--tag", default="", help="appended to the result file's name (a variant of the model)")
    p.add_argument("--enroll-text", action="store_true",
                   help="add 24 synthetic renderings of each keyword to the speaker's own takes (`demo kws "
                        "--enroll-text`; name the variant with --tag)")
    p.add_argument("--enroll-room", action="store_true",
                   help="enrol with far-field copies of every take as further exemplars (`demo kws "
                        "--enroll-far-field`, `KWSModel.enroll(..., far_field=True)`); name the variant with --tag")
    args = p.parse_args(argv)

    from tqdm import tqdm

    from speechedge.apps.longform import evaluate_streams, load_streams, operating_point, pooled_det
    from speechedge.audio import read_audio
    from speechedge.runtime import KWSModel
    from speechedge.synth.engines import make_voices

    keywords = [k.strip() for k in args.keywords.split(",") if k.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if args.first_word and not args.in_sentence:
        raise SystemExit("--first-word goes with --in-sentence")
    voices = make_voices(args.speakers, np.random.default_rng(args.seed), engines)
    mode = "stream" if args.stream else "window"
    per_speaker = []
    rendered = {}
    if args.enroll_text:
        from speechedge.synth.engines import render_keyword

        rendered = {k: render_keyword(k) for k in keywords}
    for i, v in enumerate(tqdm(voices, desc="speakers", unit="speaker")):
        folder = args.work / f"spk_{i:02d}"
        synth_speaker(folder, v, keywords, args.minutes, args.seed * 1000 + i, args.in_sentence, args.first_word)
        m = KWSModel(args.model_dir, keywords_file=folder / f"keywords_{mode}{args.tag}.json", mode=mode)
        m.forget()
        if args.enroll_context:
            synth_context_enrolment(folder / "enroll_context", v, keywords, args.enroll_context, args.seed * 1000 + i)
        for k in keywords:
            takes = sorted((folder / "enroll").glob(f"{k}_*.wav"))
            if args.enroll_context:
                takes += sorted((folder / "enroll_context").glob(f"{k}_*.wav"))
            m.enroll(k, [read_audio(f, sample_rate=16000)[0] for f in takes], rendered=rendered.get(k, []),
                     far_field=args.enroll_room)
        streams = load_streams(folder / "stream", positive=True)
        if args.room:
            for st in streams:
                st.audio = _across_a_room(st.audio, args.seed * 1000 + i)
        r = evaluate_streams(m, streams, [], progress=False)
        per_speaker.append({"speaker": v.key, "engine": v.engine, "hours": r["hours"], "events": r["events"],
                            "det": r["det"], "operating_points": r["operating_points"],
                            **({"span_scores": _span_scores(m, streams)} if args.in_sentence else {})})
    default = m.detector_defaults()[0]
    det = pooled_det([s["det"] for s in per_speaker], [s["events"] for s in per_speaker],
                     [s["hours"] for s in per_speaker])
    hours, events = sum(s["hours"] for s in per_speaker), sum(s["events"] for s in per_speaker)
    pooled = {f"{t:g}": operating_point(det, t) for t in (0.5, 1, 2)}
    at_default = min(det, key=lambda q: abs(q["threshold"] - default))

    def by_engine(threshold: float) -> dict:  # FRR per engine at one pooled threshold
        out = {}
        for e in engines:
            rows = [(next(q for q in s["det"] if q["threshold"] == threshold), s["events"]) for s in per_speaker
                    if s["engine"] == e]
            if rows:
                out[e] = sum(q["frr"] * n for q, n in rows) / sum(n for _, n in rows)
        return out

    print(f"{args.model_dir} ({mode}, {m.precision}): {len(voices)} speakers, each enrolling {', '.join(keywords)} "
          f"and detecting them in {args.minutes:g} min of its own speech{' across a room' if args.room else ''}"
          f"{', said inside sentences' if args.in_sentence else ''}; "
          f"{events} events, {hours:.2f} h "
          f"(1 false alarm = {1 / hours:.2f} FA/h)\n")
    print("| FA/h target | threshold | FRR | FA/h | FRR by engine |\n|---:|---:|---:|---:|---|")
    for t, q in pooled.items():
        if q is None:
            print(f"| {t} | not reached | | | |")
            continue
        split = " / ".join(f"{e} {f:.2f}" for e, f in by_engine(q["threshold"]).items())
        print(f"| {t} | {q['threshold']:g} | {q['frr']:.3f} | {q['fa_per_hour']:.2f} | {split} |")
    print(f"| default ({default:g}) | {at_default['threshold']:g} | {at_default['frr']:.3f} | "
          f"{at_default['fa_per_hour']:.2f} | "
          + " / ".join(f"{e} {f:.2f}" for e, f in by_engine(at_default["threshold"]).items()) + " |")
    if args.in_sentence:
        spans = [x for sp in per_speaker for x in sp["span_scores"]]
        alone, window = np.array([x["alone"] for x in spans]), np.array([x["in_window"] for x in spans])
        print(f"\nthe keyword's span alone (zero-padded, as an enrolment clip) scores median {np.median(alone):.2f} "
              f"(>= the default threshold {default:g}: {np.mean(alone >= default):.0%}); the 1-second window "
              f"centred on it, with its neighbouring words: median {np.median(window):.2f} "
              f"({np.mean(window >= default):.0%}); window model, {len(spans)} events")
    out = args.work / (f"own_voice{'_stream' if args.stream else ''}{'_room' if args.room else ''}"
                       f"{'_sentence' if args.in_sentence else ''}{'_first' if args.first_word else ''}"
                       f"{f'_ctx{args.enroll_context}' if args.enroll_context else ''}"
                       f"{'_' + args.tag if args.tag else ''}.json")
    out.write_text(json.dumps({"model": str(args.model_dir), "mode": mode, "precision": m.precision, "room": args.room, "in_sentence": args.in_sentence,
                               "keywords": keywords, "speakers": len(voices), "minutes": args.minutes,
                               "events": events, "hours": hours, "operating_points": pooled,
                               "default_threshold": default, "peak_margin": m.detector_peak_margin(),
                               "at_default": at_default,
                               "by_engine_at_1fa": by_engine(pooled["1"]["threshold"]) if pooled["1"] else None,
                               "per_speaker": [{k: v for k, v in s.items() if k != "det"} for s in per_speaker],
                               "pooled_det": det}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
