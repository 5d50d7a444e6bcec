"""The lexicon decoder of the streaming ASR runtime (flashlight-text's LexiconDecoder with a unigram word model),
its word lists (``speechedge prepare words``) and how StreamingASR and `demo asr` choose it."""

from __future__ import annotations

import gzip
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speechedge.ctc import greedy_decode, ids_to_text
from speechedge.runtime.lexicon import LexiconCTC, read_word_list

TOKENS = ["<blk>", "|", *"abcdefghijklmnopqrstuvwxyz", "'"]
TID = {t: i for i, t in enumerate(TOKENS)}
SHIPPED = Path(__file__).resolve().parents[1] / "speechedge" / "pretrained" / "asr_stream"


def frames(spec: list) -> np.ndarray:
    """Log-probabilities, one frame per entry: a token (probability 0.9) or ``{token: probability, ...}``; the
    rest of each frame's mass is spread over the other tokens."""
    out = []
    for f in spec:
        f = {f: 0.9} if isinstance(f, str) else f
        p = np.full(len(TOKENS), (1 - sum(f.values())) / (len(TOKENS) - len(f)))
        for t, q in f.items():
            p[TID[t]] = q
        out.append(np.log(p))
    return np.asarray(out, np.float32)


# "hello wurld": the model is unsure of the o of "world" (0.6 u, 0.3 o); no '|' after the last word
HELLO_WURLD = frames(["<blk>", "h", "e", "l", "<blk>", "l", "o", "<blk>", "|", "<blk>", "w", {"u": 0.6, "o": 0.3},
                      "r", "l", "d", "<blk>", "<blk>"])


def word_list(tmp_path, text: str, name: str = "words.txt"):
    p = tmp_path / name
    p.write_text(text)
    return read_word_list(p, TOKENS)


def test_lexicon_decoder_spells_words_of_its_list_where_greedy_misspells(tmp_path):
    words = word_list(tmp_path, "hello 5\nworld 3\nword 1\nhelp 1\n")
    assert ids_to_text(TOKENS, greedy_decode(HELLO_WURLD)) == "hello wurld"
    dec = LexiconCTC(TOKENS, words)
    assert dec.decode(HELLO_WURLD) == "hello world"  # the last word ends without a '|' frame
    # the same in chunks of 3 frames, as a stream: partial text has the finished words only
    dec.reset()
    partial = []
    for i in range(0, len(HELLO_WURLD), 3):
        dec.push(HELLO_WURLD[i: i + 3])
        partial.append(dec.segment_text)
    assert partial[2] == "hello" and dec.end_segment() == "hello world" and dec.text == "hello world"
    # without "world" in the list: the listed word closest to what was heard
    only = word_list(tmp_path, "hello\nword\nwhirled\n", "other.txt")
    assert LexiconCTC(TOKENS, only).decode(HELLO_WURLD) == "hello word"


@pytest.mark.parametrize("keep", [100, 8, 3])
def test_a_long_segment_keeps_its_words_when_the_search_is_cut(tmp_path, keep):
    """prune() forgets the history before the cut: the words of the best path there must be kept (14 x "hello
    world" = 238 frames, 9.5 s of 40 ms frames: cut after 200 frames with the default keep_frames)."""
    words = word_list(tmp_path, "hello 5\nworld 3\nword 1\nhelp 1\n")
    long = np.concatenate([HELLO_WURLD[:-2], frames(["|"])] * 13 + [HELLO_WURLD])
    want = " ".join(["hello world"] * 14)
    dec = LexiconCTC(TOKENS, words, keep_frames=keep)
    assert dec.decode(long) == want
    dec.reset()
    for i in range(0, len(long), 8):
        dec.push(long[i: i + 8])
        assert want.startswith(dec.segment_text)
    assert dec._cut > 0 and len(dec.segment_text.split()) >= 24  # cut, and the words before it are there
    assert dec.end_segment() == want
    with pytest.raises(ValueError, match="keep_frames must be >= 1"):
        LexiconCTC(TOKENS, words, keep_frames=0)


def test_lexicon_segments_and_the_unigram_weight(tmp_path):
    dec = LexiconCTC(TOKENS, word_list(tmp_path, "hello\nworld\n"))
    assert dec.decode(HELLO_WURLD[:8]) == "hello"
    assert dec.decode(HELLO_WURLD[9:]) == "world"
    assert dec.text == "hello world" and dec.segment_text == ""
    dec.reset()
    assert dec.text == ""
    # a word the acoustics hear only weakly wins when the word model prefers it enough
    weak = frames(["<blk>", "b", {"a": 0.5, "u": 0.4}, "d", "<blk>"])
    lists = {"even": "bad 1\nbud 1\n", "bud frequent": "bad 1\nbud 1000\n"}
    got = {k: LexiconCTC(TOKENS, word_list(tmp_path, v), lm_weight=1.0).decode(weak) for k, v in lists.items()}
    assert got == {"even": "bad", "bud frequent": "bud"}


def test_word_list_weights_skips_and_errors(tmp_path):
    wl = word_list(tmp_path, "# comment\nHello 3\nworld\nna\u00efve 2\nhello 5  # repeated: the first weight stays\n")
    assert wl.words == ["hello", "world"] and wl.skipped == ["na\u00efve"]
    assert np.allclose(np.exp(wl.log_probs), [0.75, 0.25])
    for bad, line in (("hello\nworld -1\n", 2), ("a b c\n", 1), ("x nan\n", 1)):
        with pytest.raises(ValueError, match=rf"bad.txt:{line}: expected 'WORD \[WEIGHT\]'"):
            word_list(tmp_path, bad, "bad.txt")
    with pytest.raises(ValueError, match="no word the model can spell"):
        word_list(tmp_path, "\u00e9t\u00e9\n", "none.txt")
    gz = tmp_path / "words.txt.gz"
    gz.write_bytes(gzip.compress(b"hello 1\nworld 1\n"))
    assert read_word_list(gz, TOKENS).words == ["hello", "world"]
    gz.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="words.txt.gz: cannot read the word list"):
        read_word_list(gz, TOKENS)


def test_prepare_words_writes_a_list_the_decoder_reads(tmp_path):
    extra = tmp_path / "names.txt"
    extra.write_text("Zyxwordia\nthe 0.5\n")
    out = tmp_path / "words.txt.gz"
    p = subprocess.run([str(Path(sys.executable).with_name("speechedge")), "prepare", "words", "--out", str(out),
                        "--size", "100", "--add", str(extra)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    wl = read_word_list(out, TOKENS)
    assert len(wl) == 101 and wl.words[0] == "the" and wl.words[-1] == "zyxwordia"
    assert math.isclose(math.exp(wl.log_probs[0]) / math.exp(wl.log_probs[1]), 0.5 / 0.0269, rel_tol=0.2)
    extra.write_text("fine\nbad -3\n")
    p = subprocess.run([str(Path(sys.executable).with_name("speechedge")), "prepare", "words", "--out", str(out),
                        "--size", "10", "--add", str(extra)], capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "names.txt:2: expected 'WORD [WEIGHT]'" in p.stderr
    assert len(read_word_list(out, TOKENS)) == 101  # the earlier list is untouched


@pytest.mark.skipif(not (SHIPPED / "words.txt.gz").exists(), reason="no shipped streaming ASR model")
def test_streaming_asr_chooses_its_decoder(tmp_path):
    from speechedge.runtime import StreamingASR

    assert StreamingASR(SHIPPED).decoder_name == "lexicon"
    assert StreamingASR(SHIPPED, decoder="greedy").lexicon is None
    bare = tmp_path / "bare"
    shutil.copytree(SHIPPED, bare, ignore=shutil.ignore_patterns("words.txt*"))
    assert StreamingASR(bare).decoder_name == "greedy"
    with pytest.raises(FileNotFoundError, match=r"bare/words.txt: no word list for the lexicon decoder"):
        StreamingASR(bare, decoder="lexicon")
    (tmp_path / "cmds.txt").write_text("lights\non\noff\n")
    asr = StreamingASR(bare, words=tmp_path / "cmds.txt")
    assert asr.decoder_name == "lexicon" and asr.word_list.words == ["lights", "on", "off"]
    with pytest.raises(ValueError, match="decoder must be auto, greedy or lexicon"):
        StreamingASR(SHIPPED, decoder="beam")
