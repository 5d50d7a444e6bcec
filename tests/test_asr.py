"""Streaming Conformer, CTC decoding, forced alignment, distillation losses and the ASR recipe."""

from __future__ import annotations

import itertools
import json
import math
import os

from pathlib import Path

import numpy as np
import pytest
import torch

from speechedge.ctc import CharTokenizer, edit_distance, error_rate, greedy_decode, prefix_beam_search
from speechedge.models.distill import LayerDistiller, parse_layer_map, token_kd_loss
from speechedge.kernels.align import AlignmentError, ctc_forced_align
from speechedge.models.conformer import ConformerConfig, ConformerEncoder, chunk_mask
from conftest import assert_same_run

TINY = ConformerConfig(n_mels=80, d_model=32, num_layers=2, num_heads=4, ff_mult=2, conv_kernel=5, sub_channels=8,
                       dropout=0.0)


def _encoder(seed: int = 0, **kw) -> ConformerEncoder:
    torch.manual_seed(seed)
    enc = ConformerEncoder(ConformerConfig(**{**TINY.__dict__, **kw})).eval()
    with torch.no_grad():  # non-trivial CMVN and relative-position biases
        enc.feat_mean.normal_()
        enc.feat_std.uniform_(0.5, 2.0)
        for layer in enc.layers:
            layer.att.rel_bias.normal_()
    return enc


def _stream(enc, x, chunk, left):
    state = enc.init_state(x.shape[0], chunk, left)
    outs = []
    for i in range(0, x.shape[1] - 4 * chunk + 1, 4 * chunk):
        y, state = enc.step(x[:, i: i + 4 * chunk], state)
        outs.append(y)
    return torch.cat(outs, 1), state


@pytest.mark.parametrize("chunk,left", [(1, 0), (1, 5), (3, 2), (8, 4), (7, 1)])
def test_chunk_by_chunk_equals_masked_forward(chunk, left):
    enc = _encoder()
    x = torch.randn(2, 4 * 8 * 7, 80, generator=torch.Generator().manual_seed(1))
    full, out_len, _ = enc(x, torch.tensor([x.shape[1]] * 2), chunk, left)
    with torch.no_grad():
        streamed, _ = _stream(enc, x, chunk, left)
    assert out_len.tolist() == [x.shape[1] // 4] * 2
    n = streamed.shape[1]
    assert n >= full.shape[1] - chunk
    torch.testing.assert_close(streamed, full[:, :n], atol=2e-5, rtol=1e-4)


def test_chunk_context_is_limited():
    """Changing input after a chunk must not change that chunk's outputs; changing input far before it
    (beyond the left context) must not either."""
    enc = _encoder()
    x = torch.randn(1, 4 * 40, 80, generator=torch.Generator().manual_seed(2))
    chunk, left = 4, 1
    y0, _, _ = enc(x, torch.tensor([160]), chunk, left)
    x2 = x.clone()
    x2[:, 4 * 24:] += 5.0  # future of chunks 0..5
    y1, _, _ = enc(x2, torch.tensor([160]), chunk, left)
    torch.testing.assert_close(y0[:, :24], y1[:, :24])
    assert not torch.allclose(y0[:, 24:], y1[:, 24:])


def test_batched_equals_itemwise_with_padding():
    enc = _encoder(causal=False)
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(1, 120, 80, generator=g), torch.randn(1, 77, 80, generator=g)
    batch = torch.zeros(2, 120, 80)
    batch[0], batch[1, :77] = a[0], b[0]
    yb, lens, _ = enc(batch, torch.tensor([120, 77]))
    ya, _, _ = enc(a, torch.tensor([120]))
    yb1, _, _ = enc(b, torch.tensor([77]))
    assert lens.tolist() == [30, 19]
    torch.testing.assert_close(yb[0], ya[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(yb[1, :19], yb1[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("causal,chunk,left", [(False, 0, -1), (True, 3, 2), (True, 8, -1)])
def test_forward_over_query_blocks_equals_one_block(monkeypatch, causal, chunk, left):
    """Long inputs attend a block of query rows at a time (bounded memory); the rows are the same as from one
    (T, T) attention, with padding and chunk masks, for blocks that do not divide T and that cut chunks."""
    from speechedge.models.conformer import AttentionMask

    enc = _encoder(causal=causal)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4 * 61, 80, generator=g)
    lengths = torch.tensor([4 * 61, 4 * 40])
    with torch.no_grad():
        whole, _, hid_whole = enc(x, lengths, chunk, left)
        assert len(AttentionMask(torch.ones(2, 61), chunk, left).blocks()) == 1
        monkeypatch.setattr(AttentionMask, "BLOCK_ELEMENTS", 7 * 9)
        blocks = AttentionMask(torch.ones(2, 61), chunk, left).blocks()
        assert len(blocks) > 2 and blocks[-1][1] == 61
        if left >= 0:  # a band of keys: fewer than all
            assert all(ke - ks <= (e - s) + left * chunk + chunk for s, e, ks, ke in blocks)
            assert any(ke - ks < 61 for s, e, ks, ke in blocks)
        blocked, _, hid_blocked = enc(x, lengths, chunk, left)
    for a, b in zip([blocked, *hid_blocked], [whole, *hid_whole]):  # padding rows are don't-care
        torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(a[1, :40], b[1, :40], atol=1e-5, rtol=1e-4)


def test_teacher_cannot_stream_and_bad_config_raises():
    enc = _encoder(causal=False)
    with pytest.raises(ValueError, match="causal"):
        enc.init_state(1, 4, 2)
    with pytest.raises(ValueError, match="chunk"):
        enc(torch.zeros(1, 16, 80), torch.tensor([16]), 4, 1)
    with pytest.raises(ValueError, match="left_chunks"):
        _encoder().init_state(1, 4, -1)
    with pytest.raises(ValueError, match="divisible"):
        ConformerConfig(d_model=30, num_heads=4)


def test_chunk_mask_is_finite_and_blockwise():
    m = chunk_mask(6, 2, 1)
    assert torch.isfinite(m).all()
    allowed = (m == 0).int().tolist()
    assert allowed == [[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0],
                       [0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]


def test_state_and_chunk_cost_constant_over_ten_minutes():
    """10 minutes of 320 ms chunks: the state keeps its size and the last chunk costs exactly the floating-point
    operations of an early one (counted, not timed: a wall-clock ratio is flaky on a shared core)."""
    from torch.utils.flop_counter import FlopCounterMode

    enc = _encoder()
    chunk, left = 8, 4
    state = enc.init_state(1, chunk, left)
    size0 = [t.numel() for t in state]
    x = torch.randn(1, 4 * chunk, 80, generator=torch.Generator().manual_seed(4))
    n_chunks = int(600 / 0.32)

    def flops_of_one_step(state):
        with FlopCounterMode(display=False) as counter:
            _, state = enc.step(x, state)
        return counter.get_total_flops(), state

    with torch.no_grad():
        early = None
        for i in range(n_chunks):
            if i == 50:
                early, state = flops_of_one_step(state)
            else:
                _, state = enc.step(x, state)
        late, state = flops_of_one_step(state)
    assert [t.numel() for t in state] == size0
    assert early > 0 and late == early, (early, late)  # a growing cache would make late chunks cost more


# -- CTC ---------------------------------------------------------------------------------------------------
def _labelling_probs(lp: np.ndarray) -> dict[tuple, float]:
    """Brute force: probability of every labelling, summed over all paths."""
    out: dict[tuple, float] = {}
    for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
        p = math.exp(sum(lp[t, k] for t, k in enumerate(path)))
        lab = tuple(k for i, k in enumerate(path) if k != 0 and (i == 0 or path[i - 1] != k))
        out[lab] = out.get(lab, 0.0) + p
    return out


@pytest.mark.parametrize("seed", range(5))
def test_prefix_beam_search_finds_most_probable_labelling(seed):
    r = np.random.default_rng(seed)
    logits = r.normal(size=(5, 3)) * 2
    lp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    probs = _labelling_probs(lp)
    best = max(probs, key=probs.get)
    assert tuple(prefix_beam_search(lp, beam=50, token_prune=-1e9)) == best


def test_greedy_merges_repeats_and_drops_blanks():
    lp = np.log(np.full((7, 4), 1e-3))
    for t, k in enumerate([1, 1, 0, 1, 2, 2, 0]):
        lp[t, k] = 0.0
    assert greedy_decode(lp) == [1, 1, 2]


def test_tokenizer_roundtrip(tmp_path):
    tok = CharTokenizer()
    ids = tok.encode("  HELLO, World's  end ")
    assert tok.decode(ids) == "hello world's end"
    assert tok.unknown("HELLO, 42") == 3
    tok.save(tmp_path / "tokens.txt")
    assert CharTokenizer.load(tmp_path / "tokens.txt").tokens == tok.tokens


def test_subword_tokenizer_roundtrip_and_meta(tmp_path):
    from speechedge.ctc import SubwordTokenizer, ids_to_text, make_tokenizer, tokenizer_from_meta

    rng = np.random.default_rng(0)
    vocab = ("the cat sat on mat a dog's life is dog with mouse house under over table chair window morning "
             "evening quickly slowly jumped walked talked bright dark river mountain").split()
    texts = ["THE CAT SAT ON THE MAT", "A DOG'S LIFE IS THE LIFE"] + [
        " ".join(rng.choice(vocab, 8)).upper() for _ in range(200)]
    for kind in ("bpe", "unigram"):
        tok = make_tokenizer(kind, texts, 40)
        assert isinstance(tok, SubwordTokenizer) and len(tok) == 40 and tok.tokens[0] == "<blk>"
        ids = tok.encode("  The cat's MAT, the dog!")
        assert 0 not in ids and tok.decode(ids) == "the cat's mat the dog"
        # fewer units than characters, and the token table alone decodes (what the runtime does)
        assert len(ids) < len(CharTokenizer().encode("the cat's mat the dog"))
        tok.save(tmp_path / "tokens.txt")
        table = [line.rsplit(" ", 1)[0] for line in (tmp_path / "tokens.txt").read_text().splitlines()]
        assert table == tok.tokens and ids_to_text(table, ids) == "the cat's mat the dog"
        again = tokenizer_from_meta(tok.meta())
        assert again.encode("the mat is a cat") == tok.encode("the mat is a cat")
    assert isinstance(tokenizer_from_meta(CharTokenizer().meta()), CharTokenizer)
    with pytest.raises(ValueError, match="vocab_size=5000"):
        make_tokenizer("bpe", texts, 5000)


def test_emission_latency_matches_words_in_order():
    from speechedge.data_prep.alignments import WordAlignment
    from speechedge.recipes.asr import emission_latency

    ref = [WordAlignment("THE", 0.1, 0.3), WordAlignment("CAT", 0.4, 0.8), WordAlignment("SAT", 0.9, 1.2)]
    hyp = [("the", 0.5), ("hat", 1.0), ("sat", 1.6)]  # "hat" is wrong: no latency for it
    assert emission_latency(hyp, ref) == pytest.approx([0.2, 0.4])


@pytest.mark.parametrize("seed", range(3))
def test_edit_distance_equals_the_textbook_recurrence(seed):
    """The vectorized rows (cumulative-min insertion chain) against the plain dynamic programme."""
    def textbook(a, b):
        d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
        return d[-1][-1]

    rng = np.random.default_rng(seed)
    for _ in range(300):
        a = list(rng.choice(list("abc"), size=rng.integers(0, 14)))
        b = list(rng.choice(list("abcd"), size=rng.integers(0, 14)))
        assert edit_distance(a, b) == textbook(a, b), (a, b)


def test_error_rates():
    assert edit_distance("kitten", "sitting") == 3
    wer, cer = error_rate(["a b c d"], ["a x c"])
    assert wer == pytest.approx(50.0)
    assert cer == pytest.approx(100 * 3 / 7)


def test_paired_bootstrap_interval_excludes_zero_only_for_a_real_difference():
    """The paired bootstrap matches utterances by id: a system that fixes one error in every utterance is better
    with an interval that excludes zero; a system that moves the same errors between utterances is not; the
    point estimate is the pooled rate difference; resampling whole speakers gives a wider interval than
    resampling utterances when a speaker's errors go together; mismatched test sets are refused."""
    from speechedge.ctc import paired_bootstrap

    rng = np.random.default_rng(0)
    chars = rng.integers(20, 60, 200)
    errs = rng.integers(2, 8, 200)
    a = [{"id": f"{i % 20}-1-{i}", "char_errors": int(e), "chars": int(n)} for i, (e, n) in enumerate(zip(errs, chars))]
    better = [{**r, "char_errors": r["char_errors"] - 1} for r in reversed(a)]  # order does not matter
    r = paired_bootstrap(a, better, samples=2000)
    assert r["groups"] == 20 and r["by"] == "speaker"
    assert r["diff"] == pytest.approx(-100 * 200 / chars.sum()) and r["ci95"][1] < 0 and r["p_b_not_better"] == 0
    shuffled = rng.permutation(errs)  # the same total, moved between utterances of similar length
    moved = [{**r, "char_errors": int(e)} for r, e in zip(a, shuffled)]
    r = paired_bootstrap(a, moved, samples=2000, by="utterance")
    assert r["ci95"][0] < 0 < r["ci95"][1]
    # B better on half the speakers and worse on the other half, by a lot: the speaker bootstrap is wider
    split = [{**r, "char_errors": r["char_errors"] + (3 if int(r["id"].split("-")[0]) < 10 else -2)} for r in a]
    wide = paired_bootstrap(a, split, samples=2000)
    narrow = paired_bootstrap(a, split, samples=2000, by="utterance")
    assert wide["ci95"][1] - wide["ci95"][0] > 1.5 * (narrow["ci95"][1] - narrow["ci95"][0])
    with pytest.raises(ValueError, match="same utterances"):
        paired_bootstrap(a, a[1:])
    with pytest.raises(ValueError, match="same utterances"):
        paired_bootstrap(a, [*a[:-1], a[0]])  # a duplicated id


# -- forced alignment --------------------------------------------------------------------------------------
def _brute_force_align(lp: np.ndarray, targets: list[int]) -> float:
    best = -math.inf
    for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
        lab = [k for i, k in enumerate(path) if k != 0 and (i == 0 or path[i - 1] != k)]
        if lab == targets:
            best = max(best, sum(lp[t, k] for t, k in enumerate(path)))
    return best


@pytest.mark.parametrize("targets", [[1], [1, 2], [2, 2], [1, 2, 1]])
def test_forced_alignment_is_the_best_path(targets):
    r = np.random.default_rng(len(targets))
    logits = r.normal(size=(6, 3)) * 2
    lp = (logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(np.float32)
    first, last, score = ctc_forced_align(lp, targets)
    assert score == pytest.approx(_brute_force_align(lp.astype(np.float64), targets), abs=1e-4)
    assert (first <= last).all() and (last[:-1] < first[1:]).all()


def test_forced_alignment_finds_planted_spans():
    lp = np.full((12, 4), np.log(0.01), np.float32)
    planted = {1: (2, 3), 3: (6, 6), 2: (9, 10)}
    for t in range(12):
        lp[t, 0] = np.log(0.97)
    for k, (a, b) in planted.items():
        lp[a: b + 1, :] = np.log(0.01)
        lp[a: b + 1, k] = np.log(0.97)
    first, last, _ = ctc_forced_align(lp, [1, 3, 2])
    assert list(zip(first.tolist(), last.tolist())) == [(2, 3), (6, 6), (9, 10)]


def test_forced_alignment_errors():
    lp = np.zeros((2, 3), np.float32)
    with pytest.raises(AlignmentError, match="frames"):
        ctc_forced_align(lp, [1, 1])  # a repeat needs a blank: 3 frames
    with pytest.raises(ValueError, match="non-blank"):
        ctc_forced_align(lp, [0, 1])


# -- distillation ------------------------------------------------------------------------------------------
def test_layer_map():
    assert parse_layer_map("auto", 4, 8) == [(1, 3), (3, 7)]
    assert parse_layer_map("1:2,3:3", 3, 3) == [(0, 1), (2, 2)]
    with pytest.raises(ValueError, match="out of range"):
        parse_layer_map("5:1", 4, 4)
    with pytest.raises(ValueError, match="student:teacher"):
        parse_layer_map("a-b", 4, 4)


def test_token_kd_is_zero_for_equal_posteriors_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)
    valid = torch.ones(2, 5)
    assert float(token_kd_loss(a, a, valid)) == pytest.approx(0.0, abs=1e-6)
    assert float(token_kd_loss(a, b, valid)) > 0.1


def test_apc_targets_the_teacher_k_frames_ahead():
    k, d = 3, 8
    teacher_cfg = ConformerConfig(n_mels=80, d_model=d, num_heads=2, causal=False)
    dist = LayerDistiller([(0, 0)], d, teacher_cfg, apc_shift=k)
    with torch.no_grad():
        dist.predictors[0].weight.copy_(torch.eye(d))
        dist.predictors[0].bias.zero_()
    ht = torch.randn(2, 20, d, generator=torch.Generator().manual_seed(5))
    hs = torch.zeros_like(ht)
    hs[:, :-k] = ht[:, k:]  # the student "predicts" the teacher k frames ahead exactly
    valid = torch.ones(2, 20)
    with torch.no_grad():
        _, apc = dist([hs], [ht], valid)
        _, apc_wrong = dist([ht], [ht], valid)  # the same frame is not the target
    assert float(apc) == pytest.approx(0.0, abs=1e-6)
    assert float(apc_wrong) > 0.5


def test_aux_branch_carries_gradient_to_the_student():
    d = 16
    dist = LayerDistiller([(0, 0)], d, ConformerConfig(n_mels=80, d_model=24, num_heads=2, causal=False))
    hs = torch.randn(2, 10, d, requires_grad=True)
    ht = torch.randn(2, 10, 24)
    layer, apc = dist([hs], [ht], torch.ones(2, 10))
    (layer + apc).backward()
    assert hs.grad is not None and hs.grad.abs().sum() > 0


# -- word-span curriculum -----------------------------------------------------------------------------------
def test_span_batches_are_aligned_word_spans(librispeech_dir, tmp_path):
    from speechedge.data_prep.librispeech import prepare_librispeech
    from speechedge.recipes.asr import read_alignments
    from speechedge.training.asr_data import load_utterances

    corpus, _ = librispeech_dir
    prepare_librispeech(corpus, tmp_path / "m")
    tok = CharTokenizer()
    utts = load_utterances(tmp_path / "m" / "librispeech_train-clean-100.jsonl.gz", tok)
    words = read_alignments(corpus / "alignments" / "train-clean-100")
    rng = np.random.default_rng(0)
    lengths = set()
    for _ in range(12):
        x, n, toks = utts.span_batch(words, tok, 3000, 3, rng)
        assert x.shape[0] == len(n) == len(toks) > 1 and int(n.max()) == x.shape[1]
        assert len(n) * (int(n.max()) // 160 + 1) <= 3000  # padded frames within the budget
        assert len({len(tok.decode(t).split()) for t in toks}) == 1  # one span length per batch
        for r, t in enumerate(toks):
            text = tok.decode(t)
            assert 1 <= len(text.split()) <= 3
            lengths.add(len(text.split()))
            # the span's words are consecutive words of one aligned utterance, its audio is theirs (+- 50 ms)
            hits = [ws for ws in words.values() for k in range(len(ws))
                    if " ".join(w.word.lower() for w in ws[k: k + len(text.split())]) == text]
            assert hits
            assert float(x[r, int(n[r]):].abs().sum()) == 0.0  # zero padding after the span
    assert lengths == {1, 2, 3}
    with pytest.raises(ValueError, match="no utterance"):
        utts.span_batch({}, tok, 3000, 3, rng)


def test_utterance_store_equals_decoding_skips_bad_files_and_is_reused(librispeech_dir, tmp_path, monkeypatch):
    """The memory-mapped utterance store gives the same utterances as decoding into memory, skips and counts an
    unreadable file, is built once (a second load decodes nothing) and is rebuilt when the manifest changes."""
    import gzip
    import shutil

    from speechedge.data_prep.librispeech import prepare_librispeech
    from speechedge.training import asr_data
    from speechedge.training.asr_data import Ragged, build_utterance_store, load_utterances

    monkeypatch.setenv("SPEECHEDGE_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus"
    shutil.copytree(librispeech_dir[0], corpus)
    prepare_librispeech(corpus, tmp_path / "m", splits=["dev-clean"])
    man = tmp_path / "m" / "librispeech_dev-clean.jsonl.gz"
    rows = [json.loads(x) for x in gzip.open(man, "rt")]
    bad = Path(rows[1]["path"])
    bad.write_bytes(b"not audio")
    tok = CharTokenizer()
    mem = load_utterances(man, tok, cache=False)
    mapped = load_utterances(man, tok, workers=2)
    assert isinstance(mapped.audio, Ragged) and isinstance(mapped.audio.flat, np.memmap)
    assert len(mem) == len(mapped) == len(rows) - 1 and rows[1]["id"] not in mapped.ids
    assert mem.ids == mapped.ids and mem.texts == mapped.texts
    assert all(np.array_equal(a, b) for a, b in zip(mem.audio, mapped.audio))
    assert all(np.array_equal(a, b) for a, b in zip(mem.tokens, mapped.tokens))
    assert mem.batches(3000, None) == mapped.batches(3000, None)
    _, _, meta = build_utterance_store(man)
    assert list(meta["skipped"]) == [rows[1]["id"]] and bad.name in meta["skipped"][rows[1]["id"]]
    names = sorted(f.name for f in (tmp_path / "cache").iterdir())
    assert not [n for n in names if n.startswith(".")]  # no temporary file left
    assert [n.split(".", 1)[1] for n in names] == ["utts.i16", "utts.json", "utts.lock", "utts.offsets.npy"]

    def no_decoding(task):
        raise AssertionError("the store was decoded again")

    monkeypatch.setattr(asr_data, "_decode_utterance", no_decoding)
    again = load_utterances(man, tok, workers=1)
    assert np.array_equal(again.audio[0], mapped.audio[0])
    os.utime(man, ns=(man.stat().st_atime_ns, man.stat().st_mtime_ns + 10**9))  # the manifest changed
    with pytest.raises(AssertionError, match="decoded again"):
        load_utterances(man, tok, workers=1)
    monkeypatch.undo()
    load_utterances(man, tok, workers=1)  # the rebuilt store replaces the old one
    assert len(list((tmp_path / "cache").glob("*.utts.i16"))) == 1
    assert sorted(f.name for f in (tmp_path / "cache").iterdir()) != names
    # two corpora merged into one manifest with a shared id: refused (the store would pair one id's audio with
    # both transcripts)
    merged = tmp_path / "merged.jsonl.gz"
    lines = gzip.open(man, "rt").read().splitlines()
    merged.write_bytes(gzip.compress(("\n".join(lines + lines[2:3]) + "\n").encode()))
    with pytest.raises(ValueError, match=rf"merged.jsonl.gz: utterance id '{rows[2]['id']}' appears twice "
                                         rf"\(rows 3 and {len(rows) + 1}\)"):
        load_utterances(merged, tok)


def test_train_batches_are_a_function_of_the_step(librispeech_dir, tmp_path):
    """Worker processes build the same batches as the training process, and a stream started at step k (a
    resume) gives the batches an uninterrupted one gives from k on, word spans and whole utterances alike."""
    from speechedge.data_prep.librispeech import prepare_librispeech
    from speechedge.recipes.asr import read_alignments
    from speechedge.training.asr_data import BatchStream, TrainBatches, load_utterances

    corpus, _ = librispeech_dir
    prepare_librispeech(corpus, tmp_path / "m", splits=["train-clean-100"])
    tok = CharTokenizer()
    utts = load_utterances(tmp_path / "m" / "librispeech_train-clean-100.jsonl.gz", tok)
    words = read_alignments(corpus / "alignments" / "train-clean-100")
    make = lambda: TrainBatches(utts, tok, batch_frames=1500, seed=3, crop_steps=2, words=words)  # noqa: E731
    steps = 2 + 2 * make().n_batches  # two passes over the data after the spans
    inline = BatchStream(make(), steps, workers=0)
    ref = [inline.next_for(s) for s in range(1, steps + 1)]
    workers = BatchStream(make(), steps, workers=2)
    got = [workers.next_for(s) for s in range(1, steps + 1)]
    for a, b in zip(ref, got):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    for first, workers in ((2, 2), (4, 0)):  # resumed inside the span steps, and after them
        resumed = BatchStream(make(), steps, workers=workers)
        for s in range(first, steps + 1):
            x, n, toks = resumed.next_for(s)
            assert torch.equal(x, ref[s - 1][0]) and toks == ref[s - 1][2]
    # starting a stream leaves torch's global RNG alone (a resumed run restores it from the checkpoint)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    BatchStream(make(), steps, workers=2).next_for(5)
    assert torch.equal(torch.rand(3), expected)
    # whole-utterance steps: each pass covers every utterance once, in a different order
    passes = [sorted(i for s in range(3 + k * (steps - 2) // 2, 3 + (k + 1) * (steps - 2) // 2)
                     for i in make().indices(s)) for k in range(2)]
    assert passes[0] == passes[1] == list(range(len(utts)))
    n = make().n_batches
    assert n > 4 and [make().indices(3 + b) for b in range(n)] != [make().indices(3 + n + b) for b in range(n)]
    assert all(len(set(tok.decode(t).count(" ") for t in ref[s][2])) == 1 for s in range(2))  # span steps


def test_asr_augmentation_refuses_what_would_cut_utterances(tmp_path):
    from speechedge.recipes.asr import ASRConfig
    from speechedge.training.config import load_config

    base = ["train_manifest=a", "val_manifest=b"]
    # a partial [augment] table fills in from the recipe's defaults (no shift, no noise), as --set does
    toml = tmp_path / "c.toml"
    toml.write_text('train_manifest = "a"\nval_manifest = "b"\n[augment]\nreverb_prob = 0.5\n')
    aug = load_config(ASRConfig, toml, []).augment
    assert (aug.reverb_prob, aug.shift_ms, aug.noise_prob) == (0.5, 0.0, 0.0)
    for bad, match in (("augment.speed_prob=0.3", "speed_prob"), ("augment.shift_ms=50", "shift_ms"),
                       ("augment.noise_prob=0.5", "noise_dir")):
        with pytest.raises(ValueError, match=match):
            load_config(ASRConfig, None, [*base, bad])
    assert load_config(ASRConfig, None, base).augment.noise_prob == 0  # off unless asked for


def test_crop_steps_need_alignments():
    from speechedge.recipes.asr import ASRConfig

    with pytest.raises(ValueError, match="needs alignments"):
        ASRConfig(train_manifest="a", val_manifest="b", crop_steps=10)
    with pytest.raises(ValueError, match="num_workers must be >= 0"):
        ASRConfig(train_manifest="a", val_manifest="b", num_workers=-1)


# -- recipe end to end --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_asr_recipe_teacher_student_eval_align(librispeech_dir, tmp_path, capsys):
    from speechedge.apps.cli import main
    from speechedge.data_prep.alignments import read_alignment_file

    corpus, _ = librispeech_dir
    man = tmp_path / "manifests"
    assert main(["prepare", "librispeech", "--corpus", str(corpus), "--out", str(man)]) == 0
    common = [f"train_manifest={man / 'librispeech_train-clean-100.jsonl.gz'}",
              f"val_manifest={man / 'librispeech_dev-clean.jsonl.gz'}", "d_model=32", "num_layers=2", "num_heads=2",
              "sub_channels=8", "batch_frames=4000", "steps=4", "eval_every=2", "warmup_steps=2", "threads=2"]
    sets = lambda extra: [a for kv in common + extra for a in ("--set", kv)]  # noqa: E731
    teacher = tmp_path / "teacher"
    assert main(["train", "asr", "--exp-dir", str(teacher), *sets(["causal=false", "chunk_frames=0", "crop_steps=2",
                                                                  f"alignments={corpus / 'alignments' / 'train-clean-100'}"])]) == 0
    assert "word-span curriculum: first 2 steps" in (teacher / "train.log").read_text()
    assert (teacher / "checkpoint-best.pt").exists() and (teacher / "tokens.txt").exists()
    student = tmp_path / "student"
    st = sets(["chunk_frames=2", "left_chunks=2", "distill=layer", f"teacher_exp_dir={teacher}", "steps=2",
               "dynamic_chunk=true"])
    assert main(["train", "asr", "--exp-dir", str(student), *st]) == 0
    first = [json.loads(x)["step"] for x in (student / "metrics.jsonl").read_text().splitlines()]
    st = sets(["chunk_frames=2", "left_chunks=2", "distill=layer", f"teacher_exp_dir={teacher}", "steps=4",
               "dynamic_chunk=true"])
    assert main(["train", "asr", "--exp-dir", str(student), *st]) == 0  # resumes at step 2
    steps = [json.loads(x)["step"] for x in (student / "metrics.jsonl").read_text().splitlines()]
    assert first == [2] and steps == [2, 4]
    assert "train_layer" in json.loads((student / "metrics.jsonl").read_text().splitlines()[-1])
    t_step = torch.load(teacher / "checkpoint-best.pt", weights_only=True)["step"]
    s_meta = torch.load(student / "checkpoint-latest.pt", weights_only=True)["meta"]
    assert s_meta["teacher"]["step"] == t_step and s_meta["teacher"]["exp_dir"] == str(teacher.resolve())
    capsys.readouterr()
    assert main(["eval", "asr", "--exp-dir", str(student), "--data", str(man / "librispeech_test-clean.jsonl.gz"),
                 "--chunk-ms", "80", "160", "full", "--alignments", str(corpus / "alignments")]) == 0
    out = capsys.readouterr().out
    assert "| 80 ms |" in out and "| full |" in out and "emission latency" in out
    # --json keeps every utterance's errors, which add up to the reported rates (paired comparisons use them)
    res = tmp_path / "eval.json"
    assert main(["eval", "asr", "--exp-dir", str(student), "--data", str(man / "librispeech_test-clean.jsonl.gz"),
                 "--chunk-ms", "160", "--json", str(res)]) == 0
    (row,) = json.loads(res.read_text())
    utts = row["utterances"]
    assert len({u["id"] for u in utts}) == len(utts) > 0 and all(u["ref"] for u in utts)
    assert 100 * sum(u["char_errors"] for u in utts) / sum(u["chars"] for u in utts) == pytest.approx(row["cer"])
    assert 100 * sum(u["word_errors"] for u in utts) / sum(u["words"] for u in utts) == pytest.approx(row["wer"])
    # the left context is the model's own unless --left-chunks says otherwise (-1: all); the rows record it
    assert row["left_chunks"] == 2
    assert main(["eval", "asr", "--exp-dir", str(student), "--data", str(man / "librispeech_test-clean.jsonl.gz"),
                 "--chunk-ms", "160", "full", "--left-chunks", "0", "--json", str(res)]) == 0
    assert [r["left_chunks"] for r in json.loads(res.read_text())] == [0, -1]
    capsys.readouterr()
    assert main(["eval", "asr", "--exp-dir", str(student), "--data", str(man / "librispeech_test-clean.jsonl.gz"),
                 "--left-chunks", "-2"]) == 1
    assert "--left-chunks must be -1 (all) or >= 0, got -2" in capsys.readouterr().err
    assert main(["eval", "asr", "--exp-dir", str(student), "--data", str(man / "x.jsonl"),
                 "--chunk-ms", "100"]) == 1  # not a multiple of 40 ms
    aligned = tmp_path / "alignments"
    assert main(["align", "--exp-dir", str(teacher), "--librispeech", str(corpus), "--out", str(aligned),
                 "--splits", "dev-clean", "--reference", str(corpus / "alignments"), "--quiet"]) == 0
    files = sorted(aligned.glob("dev-clean/*/*/*.alignment.txt"))
    assert files
    utts = {k: v for f in files for k, v in read_alignment_file(f).items()}
    assert utts and all(w.end_s > w.start_s for ws in utts.values() for w in ws)
    # subword units: a BPE student trains, resumes with the same tokenizer, decodes words, exports its table
    from speechedge.ctc import SubwordTokenizer
    from speechedge.recipes.asr import load_model, stream_decode

    bpe = tmp_path / "bpe"
    st = ["chunk_frames=2", "left_chunks=2", "tokenizer=bpe", "vocab_size=48"]
    assert main(["train", "asr", "--exp-dir", str(bpe), *sets(st + ["steps=2"])]) == 0
    model_bytes = (bpe / "tokenizer.model").read_bytes()
    assert main(["train", "asr", "--exp-dir", str(bpe), *sets(st)]) == 0
    assert (bpe / "tokenizer.model").read_bytes() == model_bytes
    model, _, tok = load_model(bpe)
    assert isinstance(tok, SubwordTokenizer) and len(tok) == 48 == model.ctc.out_features
    assert len((bpe / "tokens.txt").read_text().splitlines()) == 48
    assert main(["eval", "asr", "--exp-dir", str(bpe), "--data", str(man / "librispeech_test-clean.jsonl.gz"),
                 "--chunk-ms", "80"]) == 0
    piece = next(i for i, t in enumerate(tok.tokens) if t.startswith("\u2581") and len(t) > 2)
    lp = np.full((4, 48), -30.0, np.float32)
    lp[[0, 2], piece] = 0.0  # a word-initial piece twice, blanks between: two words
    lp[[1, 3], 0] = 0.0
    assert tok.decode(greedy_decode(lp)).split() == [tok.tokens[piece][1:]] * 2
    text, words = stream_decode(model, np.zeros(16000, np.int16), 2, 2, tok.tokens)
    assert text == " ".join(w for w, _ in words)


@pytest.mark.slow
def test_paper_scale_configs_train_under_torchrun(librispeech_dir, tmp_path):
    """The LibriSpeech configs (12-layer d=256 teacher, its layer-distilled streaming student) run their first
    steps with 2 CPU processes under torchrun: their own model and distillation settings; data paths, steps,
    evaluation cadence, batch size and loader workers set for a CPU. Both ranks ask for the utterance store at
    once: one builds it, the other waits and reads it."""
    import subprocess
    import sys

    from speechedge.data_prep.librispeech import prepare_librispeech

    corpus, _ = librispeech_dir
    man = tmp_path / "m"
    prepare_librispeech(corpus, man)
    configs = Path(__file__).parent.parent / "speechedge" / "recipes" / "configs"
    data = [f"train_manifest={man / 'librispeech_train-clean-100.jsonl.gz'}",
            f"val_manifest={man / 'librispeech_dev-clean.jsonl.gz'}", "steps=2", "eval_every=2", "batch_frames=3000",
            "num_workers=1"]
    for name, extra in (("teacher", []), ("student", [f"teacher_exp_dir={tmp_path / 'teacher'}"])):
        args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                "speechedge", "train", "asr", "--config", str(configs / f"asr_{name}_librispeech.toml"),
                "--exp-dir", str(tmp_path / name)]
        for o in data + extra:
            args += ["--set", o]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=900,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        exp = tmp_path / name
        assert json.loads((exp / "env.json").read_text())["world_size"] == 2
        state = torch.load(exp / "checkpoint-latest.pt", weights_only=True)
        assert state["step"] == 2 and state["config"]["num_layers"] == 12 and state["config"]["d_model"] == 256
        rows = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
        assert rows[-1]["step"] == 2 and math.isfinite(rows[-1]["train_ctc"])
    assert "train_layer" in rows[-1] and "train_apc" in rows[-1]
    assert "utterance store does not match" not in proc.stderr


def test_asr_resume_after_a_crash_is_exact(librispeech_dir, tmp_path, killed_once_then_resumed):
    """A teacher run that dies right after its step-2 checkpoint and is started again ends with the weights and
    metric rows of one that never stopped (word spans, then whole utterances, batches from a worker process,
    waveform augmentation with its generator in the checkpoint)."""
    from speechedge.data_prep.librispeech import prepare_librispeech
    from speechedge.recipes.asr import ASRConfig, train
    from speechedge.training.config import load_config

    corpus, _ = librispeech_dir
    man = tmp_path / "m"
    prepare_librispeech(corpus, man)
    cfg = load_config(ASRConfig, None, [
        f"train_manifest={man / 'librispeech_train-clean-100.jsonl.gz'}",
        f"val_manifest={man / 'librispeech_dev-clean.jsonl.gz'}", "d_model=32", "num_layers=2", "num_heads=2",
        "sub_channels=8", "batch_frames=3000", "steps=4", "eval_every=2", "warmup_steps=2", "threads=1",
        "causal=false", "chunk_frames=0", "crop_steps=3", f"alignments={corpus / 'alignments' / 'train-clean-100'}",
        "num_workers=1", "augment.reverb_prob=0.5", "augment.num_rooms=3", "augment.noise_prob=0.5",
        "augment.synthetic_noise=true", "augment.babble_prob=0.3", "augment.colour_prob=0.3", "augment.gain_prob=0.3",
        "augment_after=1"])
    train(cfg, tmp_path / "straight")
    killed_once_then_resumed(train, cfg, tmp_path / "resumed")
    assert_same_run(tmp_path / "straight", tmp_path / "resumed", 4, [2, 4])
    # the augmentation did change the training (after its first clean step), and only after it
    import dataclasses

    import torch

    off = dataclasses.replace(cfg.augment, noise_prob=0.0, reverb_prob=0.0, babble_prob=0.0, colour_prob=0.0,
                              gain_prob=0.0)
    train(dataclasses.replace(cfg, augment=off), tmp_path / "clean")
    train(dataclasses.replace(cfg, augment_after=4), tmp_path / "late")  # augmentation due after the last step
    weights = {name: torch.load(tmp_path / name / "checkpoint-latest.pt", weights_only=True)["model"]
               for name in ("clean", "late", "straight")}
    assert all(torch.equal(weights["clean"][k], weights["late"][k]) for k in weights["clean"])
    assert any(not torch.equal(weights["clean"][k], weights["straight"][k]) for k in weights["clean"])
