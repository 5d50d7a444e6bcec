"""data_prep: LibriSpeech manifests, alignment readers, the LibriWord builder, Speech Commands and splitGSC."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from speechedge.audio import read_audio
from speechedge.data_prep.alignments import (
    AlignmentFormatError,
    parse_alignment_line,
    read_alignment_file,
    read_textgrid_words,
)
from speechedge.data_prep.librispeech import find_splits, prepare_librispeech
from speechedge.data_prep.libriword import LibriWordConfig, build_libriword, clip_window, merge_shards
from speechedge.data_prep.speech_commands import GSC12_COMMANDS, SPLIT_GSC, prepare_speech_commands
from speechedge.data_prep.words import merge_forms, normalize_word
from speechedge.manifest import ClipRecord, UtteranceRecord, read_manifest

TEXTGRID = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 2.5
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = 2.5
        intervals: size = 4
        intervals [1]:
            xmin = 0
            xmax = 0.42
            text = ""
        intervals [2]:
            xmin = 0.42
            xmax = 0.91
            text = "hello"
        intervals [3]:
            xmin = 0.91
            xmax = 1.6
            text = "world"
        intervals [4]:
            xmin = 1.6
            xmax = 2.5
            text = "sil"
    item [2]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 2.5
        intervals: size = 1
        intervals [1]:
            xmin = 0
            xmax = 2.5
            text = "HH"
'''

# a hand-written file in the public LibriSpeech alignment format: silences are empty words
ALIGNMENT_TXT = (
    '84-121123-0000 ",GO,,DO,YOU,HEAR," "0.490,0.890,1.270,1.380,1.490,1.890,2.090"\n'
    '84-121123-0001 ",BUT,IN,LESS,THAN,FIVE,MINUTES," "0.410,0.630,0.710,0.950,1.160,1.480,2.000,2.220"\n'
)


def test_alignment_text_format(tmp_path):
    p = tmp_path / "84-121123.alignment.txt"
    p.write_text(ALIGNMENT_TXT)
    al = read_alignment_file(p)
    assert set(al) == {"84-121123-0000", "84-121123-0001"}
    go, do, you, hear = al["84-121123-0000"]
    assert (go.word, go.start_s, go.end_s) == ("GO", 0.49, 0.89)
    assert (do.start_s, do.end_s) == (1.27, 1.38)  # the silence 0.89-1.27 is not a word
    assert hear.end_s == 1.89


@pytest.mark.parametrize("line,match", [
    ('U ",A,B," "0.1,0.2"', "4 words but 2 times"),
    ('U ",A," "0.5,0.2,0.9"', "before start"),
    ("U A B", "expected"),
    ('U ",A," "0.1,x,0.3"', "bad time"),
])
def test_alignment_format_errors(line, match):
    with pytest.raises(AlignmentFormatError, match=match):
        parse_alignment_line(line, where="f.txt:3")


def test_textgrid_words(tmp_path):
    p = tmp_path / "84-121123-0000.TextGrid"
    p.write_text(TEXTGRID)
    words = read_textgrid_words(p)
    assert [(w.word, w.start_s, w.end_s) for w in words] == [("HELLO", 0.42, 0.91), ("WORLD", 0.91, 1.6)]
    with pytest.raises(AlignmentFormatError, match="no interval tier named 'words2'"):
        read_textgrid_words(p, tier="words2")
    bad = tmp_path / "x.TextGrid"
    bad.write_text("not a textgrid")
    with pytest.raises(AlignmentFormatError, match="x.TextGrid"):
        read_textgrid_words(bad)
    # hostile interval values: one clear error naming the file (load_alignments counts it and goes on)
    for xmin, xmax, match in (("1.2.3", "1.5", "bad interval time"), ("-0.5", "0.3", "need 0 <= xmin <= xmax"),
                              ("0.9", "0.4", "need 0 <= xmin <= xmax")):
        bad.write_text(TEXTGRID.replace("xmin = 0.42", f"xmin = {xmin}").replace("xmax = 0.91", f"xmax = {xmax}", 1))
        with pytest.raises(AlignmentFormatError, match=rf"x\.TextGrid: .*{match}"):
            read_textgrid_words(bad)


@pytest.mark.parametrize("line,match", [
    ("7", "not a JSON object"), ("[1, 2, 3]", "not a JSON object"), ('"hello"', "not a JSON object"),
    ('{"id": "a", "path": 123}', "field 'path' must be a string, got 123"),
    ('{"id": "a", "transcript": 5}', "field 'transcript' must be a string"),
    ('{"id": "a", "num_samples": "lots"}', "field 'num_samples' must be an integer"),
    ('{"id": "a", "duration_s": true}', "field 'duration_s' must be a number"),
])
def test_manifest_lines_of_the_wrong_shape_are_named(tmp_path, line, match):
    from speechedge.manifest import ManifestError, UtteranceRecord, read_manifest

    m = tmp_path / "m.jsonl"
    m.write_text('\n' + line + "\n")
    with pytest.raises(ManifestError, match=rf"m\.jsonl:2: {match}"):
        list(read_manifest(m, UtteranceRecord))


def test_truncated_or_corrupt_manifests_are_named(tmp_path):
    import gzip

    from speechedge.manifest import ClipRecord, ManifestError, read_manifest

    row = json.dumps({"id": "a/b", "word": "a", "speaker": "s", "path": "a/b.wav", "split": "train"})
    whole = gzip.compress(("\n".join([row] * 2000) + "\n").encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ManifestError, match=r"cut\.jsonl\.gz: unreadable after line \d+ .*truncated or corrupt"):
        list(read_manifest(tmp_path / "cut.jsonl.gz", ClipRecord))
    (tmp_path / "latin.jsonl").write_bytes(row.encode() + b"\n" + row.replace("s", "\xe9").encode("latin-1") + b"\n")
    with pytest.raises(ManifestError, match=r"latin\.jsonl: unreadable after line \d+ \(UnicodeDecodeError"):
        list(read_manifest(tmp_path / "latin.jsonl", ClipRecord))


def test_word_normalisation_and_form_merging():
    assert normalize_word("DON'T") == "don't" and normalize_word("Hello,") == "hello" and normalize_word("42") == ""
    m = merge_forms("dog dogs city cities box boxes horse horses walk walked use used us stop stopped try tried "
                    "seed see need news new this less agree agreed his".split())
    assert m == {"dogs": "dog", "cities": "city", "boxes": "box", "horses": "horse", "walked": "walk",
                 "used": "use", "stopped": "stop", "tried": "try", "agreed": "agree"}


def test_clip_window_pads_only_at_edges():
    w = clip_window(1.0, 1.2, 5.0, 1.0, 16000)
    assert (w["src_start"], w["src_end"], w["pad_left"], w["pad_right"]) == (9600, 25600, 0, 0)
    assert (w["word_start_s"], w["word_end_s"]) == (0.4, 0.6)
    w = clip_window(0.05, 0.25, 5.0, 1.0, 16000)  # near the start: zeros on the left only
    assert w["src_start"] == 0 and w["pad_left"] == 8000 - 2400 and w["pad_right"] == 0
    w = clip_window(4.8, 4.95, 5.0, 1.0, 16000)  # near the end
    assert w["src_end"] == 80000 and w["pad_right"] > 0 and w["pad_left"] == 0


# ---------------------------------------------------------------- LibriSpeech manifests

def test_prepare_librispeech(librispeech_dir, tmp_path):
    root, report = librispeech_dir
    stats = prepare_librispeech(root, tmp_path)
    assert find_splits(root) == ["dev-clean", "test-clean", "train-clean-100"]
    total = 0
    for split in ("dev-clean", "test-clean", "train-clean-100"):
        rows = list(read_manifest(tmp_path / f"librispeech_{split}.jsonl.gz", UtteranceRecord))
        total += len(rows)
        assert rows and all(r.split == split and r.sample_rate == 16000 and r.duration_s > 0.5 for r in rows)
        assert all(Path(r.path).is_file() and r.id.startswith(f"{r.speaker}-{r.chapter}-") for r in rows)
        assert stats["splits"][split]["utterances"] == len(rows)
    assert total == report.num_files
    again = prepare_librispeech(root, tmp_path)  # idempotent
    assert again["splits"] == stats["splits"]


def test_prepare_librispeech_counts_bad_files(librispeech_dir, tmp_path):
    root, _ = librispeech_dir
    corpus = tmp_path / "LS"
    shutil.copytree(root / "dev-clean", corpus / "dev-clean")
    flacs = sorted((corpus / "dev-clean").rglob("*.flac"))
    flacs[0].write_bytes(b"garbage" * 10)  # corrupt
    flacs[1].unlink()  # listed in the transcript, missing
    stats = prepare_librispeech(corpus, tmp_path / "out")
    s = stats["splits"]["dev-clean"]
    assert s["bad_audio"] == 1 and s["missing_audio"] == 1 and s["utterances"] == len(flacs) - 2
    with pytest.raises(FileNotFoundError, match="nope"):
        prepare_librispeech(corpus, tmp_path / "out", ["nope"])


def test_utterance_ids_that_escape_the_corpus_are_refused_and_counted(librispeech_dir, tmp_path):
    """An ID is a file name: `SPK-CH-x/../../elsewhere/NAME` must neither read audio outside the corpus nor
    (through LibriWord) write clips outside --out."""
    root, _ = librispeech_dir
    corpus = tmp_path / "LS"
    shutil.copytree(root / "dev-clean", corpus / "dev-clean")
    trans = sorted((corpus / "dev-clean").rglob("*.trans.txt"))[0]
    spk, ch = trans.parent.parent.name, trans.parent.name
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    flac = sorted(trans.parent.glob("*.flac"))[0]
    shutil.copy(flac, outside / "NAME.flac")  # a real file the traversal would reach
    evil = f"{spk}-{ch}-x/../../../../elsewhere/NAME"
    trans.write_text(trans.read_text() + f"{evil} HELLO WORLD\n")
    stats = prepare_librispeech(corpus, tmp_path / "out")
    s = stats["splits"]["dev-clean"]
    assert s["bad_utterance_id"] == 1
    from speechedge.manifest import UtteranceRecord, read_manifest

    rows = list(read_manifest(tmp_path / "out" / "librispeech_dev-clean.jsonl.gz", UtteranceRecord))
    assert rows and all(Path(r.path).resolve().is_relative_to(corpus.resolve()) for r in rows)


# ---------------------------------------------------------------- LibriWord

CFG = LibriWordConfig(num_words=6, clips_per_word=5, min_word_seconds=0.1, max_clips_per_speaker=2,
                      val_fraction=0.3, seed=1)


@pytest.fixture(scope="module")
def libriword(librispeech_dir, tmp_path_factory):
    root, _ = librispeech_dir
    out = tmp_path_factory.mktemp("libriword")
    stats = build_libriword(root, root / "alignments", out, CFG, workers=1, progress=False)
    return out, stats


def _manifest(out: Path) -> list[ClipRecord]:
    return list(read_manifest(out / "manifest.jsonl", ClipRecord))


def test_libriword_outputs(libriword):
    out, stats = libriword
    rows = _manifest(out)
    n_words = min(CFG.num_words, stats["eligible_words"])
    assert n_words >= 3 and stats["words"] == n_words and stats["clips"] == len(rows) == n_words * 5
    assert all(n == 5 for n in json.loads((out / "stats.json").read_text())["clips_per_word"].values())
    for r in rows:
        assert r.path == f"clips/{r.word}/{r.id}.flac" and (out / r.path).is_file()
        assert r.split in ("train", "val") and r.source_end_s > r.source_start_s
    by_split = {s: {r.speaker for r in rows if r.split == s} for s in ("train", "val")}
    assert not (by_split["train"] & by_split["val"]), "train/val are speaker-disjoint"
    for word in {r.word for r in rows}:  # speaker diversity: at most 2 clips per speaker and word
        speakers = [r.speaker for r in rows if r.word == word]
        assert max(speakers.count(s) for s in speakers) <= 2
    assert (out / "stats.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the most frequent eligible words are chosen: "the" is the most frequent English word
    assert "the" in {r.word for r in rows}


def test_libriword_clips_hold_their_word_where_the_manifest_says(libriword, librispeech_dir):
    """Rebuild every clip from the synthesis ground truth (source audio + its alignment) and compare."""
    root, _ = librispeech_dir
    out, _ = libriword
    alignments = {}
    for f in (root / "alignments").rglob("*.alignment.txt"):
        alignments.update(read_alignment_file(f))
    padded = 0
    for r in _manifest(out):
        clip, sr = read_audio(out / r.path)
        assert len(clip) == sr
        speaker, chapter, _ = r.source_id.split("-")
        source, _ = read_audio(next(root.glob(f"*/{speaker}/{chapter}/{r.source_id}.flac")))
        word = alignments[r.source_id][int(r.id.rsplit("_", 1)[1])]
        assert word.word.lower().startswith(r.word[:3].lower())  # the key may be a merged base form
        # the window is centred on the aligned word; outside the utterance it is silence
        start = round((word.start_s + word.end_s) / 2 * sr) - sr // 2
        idx = np.arange(start, start + sr)
        inside = (idx >= 0) & (idx < len(source))
        expected = np.where(inside, source[np.clip(idx, 0, len(source) - 1)], 0.0)
        np.testing.assert_array_equal(clip, expected)
        padded += int(not inside.all())
        assert abs(r.word_start_s - (word.start_s - start / sr)) < 1e-3
        assert abs(r.word_end_s - (word.end_s - start / sr)) < 1e-3
        assert abs(r.source_start_s - max(0, start) / sr) < 1e-3
        # and the word is audible where the manifest says: louder than the clip's quietest 100 ms
        seg = clip[round(r.word_start_s * sr) : round(r.word_end_s * sr)]
        frames = clip.reshape(-1, sr // 10)
        assert np.mean(seg**2) > 3 * np.min(np.mean(frames**2, axis=1)) + 1e-9
    assert padded < len(_manifest(out)), "most clips have real audio on both sides"


def test_libriword_is_idempotent_and_resumes(libriword, librispeech_dir):
    root, _ = librispeech_dir
    out, first = libriword
    before = (out / "manifest.jsonl").read_text()
    victims = sorted((out / "clips").rglob("*.flac"))[:3]
    for v in victims:
        v.unlink()  # an interrupted run: some clips and the final manifest missing
    (out / "manifest.jsonl").unlink()
    stats = build_libriword(root, root / "alignments", out, CFG, workers=1, progress=False)
    assert (out / "manifest.jsonl").read_text() == before
    assert stats["clips_written"] == 3 and stats["clips_reused"] == len(_manifest(out)) - 3
    assert not list(out.rglob(".*")), "no temporary files left"


def test_libriword_shards_workers_and_corrupt_source(librispeech_dir, libriword, tmp_path):
    root, _ = librispeech_dir
    single = (libriword[0] / "manifest.jsonl").read_text()
    out = tmp_path / "sharded"
    for i in range(2):
        build_libriword(root, root / "alignments", out, CFG, workers=2, shard=(i, 2), progress=False)
    with pytest.raises(FileNotFoundError):
        merge_shards(tmp_path / "empty")
    merge_shards(out)
    assert (out / "manifest.jsonl").read_text() == single, "shards + merge == one run, whatever the workers"

    corpus = tmp_path / "LS"
    shutil.copytree(root, corpus)
    victim = _manifest(libriword[0])[0].source_id
    speaker, chapter, _ = victim.split("-")
    bad = next(corpus.glob(f"*/{speaker}/{chapter}/{victim}.flac"))
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 3])  # truncated FLAC: header fine, audio cut short
    stats = build_libriword(corpus, corpus / "alignments", tmp_path / "lw2", CFG, workers=1, progress=False)
    assert stats["bad_sources"] == 1 and stats["bad_source_files"] == [str(bad.resolve())]
    assert victim not in {r.source_id for r in _manifest(tmp_path / "lw2")}


def test_libriword_counts_missing_and_mismatched_alignments(librispeech_dir, tmp_path):
    root, _ = librispeech_dir
    corpus = tmp_path / "LS"
    shutil.copytree(root, corpus)
    files = sorted((corpus / "alignments").rglob("*.alignment.txt"))
    lines = files[0].read_text().splitlines()
    files[0].write_text("\n".join(lines[1:]) + "\n")  # the first utterance has no alignment now
    lines2 = files[1].read_text().splitlines()
    utt, words, times = lines2[0].split(" ", 2)
    labels = words.strip('"').split(",")
    labels[[i for i, w in enumerate(labels) if w][0]] = "XYZZY"  # an alignment that disagrees with the text
    lines2[0] = f'{utt} "{",".join(labels)}" {times}'
    files[1].write_text("\n".join(lines2) + "\n")
    stats = build_libriword(corpus, corpus / "alignments", tmp_path / "lw", CFG, workers=1, progress=False)
    assert stats["corpus"]["missing_alignment"] == 1
    assert stats["corpus"]["alignment_transcript_mismatch"] == 1


def test_libriword_bad_options(librispeech_dir, tmp_path):
    root, _ = librispeech_dir
    with pytest.raises(ValueError, match="max_word_seconds"):
        LibriWordConfig(max_word_seconds=2.0)
    with pytest.raises(ValueError, match="no word has 100000"):
        build_libriword(root, root / "alignments", tmp_path, LibriWordConfig(clips_per_word=100000), progress=False)
    with pytest.raises(FileNotFoundError, match="alignments folder"):
        build_libriword(root, tmp_path / "none", tmp_path, CFG, progress=False)


# ---------------------------------------------------------------- Speech Commands

def test_prepare_speech_commands(gsc35, tmp_path):
    gsc35 = gsc35[0]
    stats = prepare_speech_commands(gsc35, tmp_path)
    rows = {s: list(read_manifest(tmp_path / f"gsc35_{s}.jsonl", ClipRecord)) for s in ("train", "val", "test")}
    assert sum(len(v) for v in rows.values()) == 35 * 4
    val_list = set((gsc35 / "validation_list.txt").read_text().split())
    assert {r.id + ".wav" for r in rows["val"]} == val_list
    speakers = {s: {r.speaker for r in v} for s, v in rows.items()}
    assert not (speakers["train"] & speakers["val"] or speakers["train"] & speakers["test"])
    twelve = list(read_manifest(tmp_path / "gsc12_train.jsonl", ClipRecord))
    labels = {r.label for r in twelve}
    assert labels == set(GSC12_COMMANDS) | {"_unknown_", "_silence_"}
    silence = [r for r in twelve if r.label == "_silence_"]
    assert silence and all(r.source_end_s - r.source_start_s == 1.0 for r in silence)
    test_silence = [r for r in read_manifest(tmp_path / "gsc12_test.jsonl", ClipRecord) if r.label == "_silence_"]
    for a in silence:  # train and test silence windows never overlap
        for b in test_silence:
            assert a.path != b.path or a.source_end_s <= b.source_start_s or b.source_end_s <= a.source_start_s
    few = json.loads((tmp_path / "splitgsc.json").read_text())
    assert [len(few["classes"][s]) for s in ("train", "val", "test")] == [15, 10, 10]
    assert sorted(w for ws in few["classes"].values() for w in ws) == sorted(w for ws in SPLIT_GSC.values() for w in ws)
    assert set(few["unknown_pool"]["test"]) == set(SPLIT_GSC["train"]) | set(SPLIT_GSC["val"])
    for s in ("train", "val", "test"):
        part = list(read_manifest(tmp_path / f"splitgsc_{s}.jsonl", ClipRecord))
        assert {r.word for r in part} == set(SPLIT_GSC[s]) and len(part) == 4 * len(SPLIT_GSC[s])
    assert stats["gsc35_train"] == len(rows["train"])


def test_speech_commands_missing_pieces_are_named(gsc35, tmp_path):
    gsc35 = gsc35[0]
    corpus = tmp_path / "gsc"
    shutil.copytree(gsc35, corpus)
    (corpus / "testing_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="testing_list.txt"):
        prepare_speech_commands(corpus, tmp_path / "o")
    shutil.rmtree(corpus / "marvin")
    with pytest.raises(FileNotFoundError, match="marvin"):
        prepare_speech_commands(corpus, tmp_path / "o")


@pytest.mark.parametrize("clip_seconds", [0.5, 1.0, 1.5])
@pytest.mark.parametrize("file_rate", [16000, 22050])
def test_libriword_clips_are_exact_at_both_edges_of_an_utterance(tmp_path, clip_seconds, file_rate):
    """A word at the very start and one at the very end of a source, at several clip lengths, from a file at
    the target rate and from one that is resampled (its decoded length can miss a sample): every clip has
    exactly clip_seconds x 16 kHz samples, padded with zeros only beyond the source."""
    from speechedge.audio import info, write_audio
    from speechedge.data_prep.libriword import _cut_source

    src = tmp_path / "u.flac"
    n = int(2.345 * file_rate)
    write_audio(src, (0.1 * np.sin(np.arange(n) / 7.0)).astype(np.float32), file_rate)
    dur = info(src).duration_s
    words = [(0.0, 0.21), (dur - 0.25, dur), (dur / 2 - 0.1, dur / 2 + 0.1)]
    clips = [{"out": str(tmp_path / f"c{i}.flac"), "window": clip_window(s, e, dur, clip_seconds, 16000), "id": str(i)}
             for i, (s, e) in enumerate(words)]
    assert _cut_source((str(src), 16000, clip_seconds, clips))[3] == ""
    for c in clips:
        clip, sr = read_audio(c["out"])
        assert sr == 16000 and len(clip) == int(round(clip_seconds * 16000)), (c["window"], len(clip))


def test_libriword_skips_words_beyond_a_short_source(librispeech_dir, tmp_path):
    """A source file shorter than its alignment says: the words past its end are skipped and counted, and no
    clip is cut from silence or comes out with the wrong length."""
    from speechedge.audio import write_audio

    root, _ = librispeech_dir
    corpus = tmp_path / "LS"
    shutil.copytree(root, corpus)
    flacs = sorted(corpus.glob("train-clean-100/*/*/*.flac"))
    for f in flacs[:3]:  # keep the first 40% of three utterances; their alignments still cover the whole
        audio, sr = read_audio(f)
        write_audio(f, audio[: int(0.4 * len(audio))], sr)
    stats = build_libriword(corpus, corpus / "alignments", tmp_path / "lw", CFG, workers=1, progress=False)
    assert stats["corpus"]["dropped_word_beyond_audio"] > 0
    for r in read_manifest(tmp_path / "lw" / "manifest.jsonl", ClipRecord):
        clip, _ = read_audio(tmp_path / "lw" / r.path)
        assert len(clip) == 16000 and r.source_start_s <= r.source_end_s


def test_prepare_speech_commands_skips_bad_noise_and_writes_all_or_nothing(gsc35, tmp_path):
    """An unreadable noise file is skipped and counted; when no noise file is usable the command fails
    before writing anything, so an earlier run's manifests stay as they were (not a mix of old and new)."""
    corpus = tmp_path / "gsc"
    shutil.copytree(gsc35[0], corpus)
    out = tmp_path / "out"
    prepare_speech_commands(corpus, out)
    noise = sorted((corpus / "_background_noise_").glob("*.wav"))
    noise[0].write_text("not audio")
    stats = prepare_speech_commands(corpus, out)
    assert stats["problems"]["unreadable_noise_files"] == 1
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for f in noise[1:]:
        f.write_bytes(b"RIFF....WAVE")  # truncated: every noise file unreadable now
    (corpus / "yes" / "extra_nohash_0.wav").write_bytes((corpus / "no").glob("*.wav").__next__().read_bytes())
    with pytest.raises(ValueError, match="_background_noise_: no usable background noise file"):
        prepare_speech_commands(corpus, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before



def test_prepare_speech_commands_killed_while_renaming_is_rolled_forward(gsc35, tmp_path, monkeypatch):
    """Killed after its third output was renamed into place (the others staged, the commit record written),
    the folder is a mix only until the next run, which finishes the commit first and ends byte-identical to
    an uninterrupted run, with nothing staged left behind."""
    import os

    from speechedge.data_prep import speech_commands as sc

    ref, out = tmp_path / "ref", tmp_path / "out"
    prepare_speech_commands(gsc35[0], ref)
    real, calls = os.replace, []

    def dying(a, b):
        if str(a).endswith(".staged"):  # the commit's renames (atomic writes rename their .partial files too)
            calls.append(b)
            if len(calls) == 4:
                raise KeyboardInterrupt("killed between renames")
        real(a, b)

    monkeypatch.setattr(os, "replace", dying)
    with pytest.raises(KeyboardInterrupt):
        prepare_speech_commands(gsc35[0], out)
    monkeypatch.setattr(os, "replace", real)
    assert (out / sc._COMMIT).exists() and any(p.name.endswith(".staged") for p in out.iterdir())
    sc._finish_commit(out)  # what the next run does first (here alone, to see its effect)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {p.name: p.read_bytes() for p in ref.iterdir()}
    prepare_speech_commands(gsc35[0], out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {p.name: p.read_bytes() for p in ref.iterdir()}
