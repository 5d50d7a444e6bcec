"""Fault injection: commands killed with SIGKILL at random points, then run again.

Each test runs a command once without interruption (the reference), then, per seed, starts it again in a
fresh folder, kills the main process with SIGKILL at a random moment after it has started writing (no
handler runs; pool workers must go by themselves), checks what the kill left behind, and runs the command
again to completion. The guarantees (README, "Guarantees"):

- ``synth`` and ``prepare libriword``: the re-run gives byte-identical files (no stray temporary files);
- ``train``: the re-run resumes from the last checkpoint and ends with the same weights and metric rows;
- ``export``: at every instant ``--out`` is the previous complete export or the new complete one.

Long input: the demos' file source and the Conformer's attention keep memory bounded over 10 minutes
(``benchmarks/long_input_memory.py`` measures the commands' peak RSS at 1 and 10 minutes).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).with_name("speechedge"))
SEEDS = [0, 1, 2]


def _tree(root: Path, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root`` (hidden files included), except files whose
    name starts with one of ``ignore`` (run reports: wall times, counts of reused files)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(ignore or ("\0",))}


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return time.perf_counter() - t0


def _kill_midway(args: list[str], watch: Path, span_s: float, seed: int, upto: float = 0.7) -> None:
    """Start ``speechedge ARGS``; once anything exists under ``watch``, wait a random part of ``span_s`` and
    SIGKILL the main process (after 5% to ``upto`` of ``span_s``); fails if it finished before the kill.
    Output goes to a file, not a pipe: surviving workers holding a pipe open would block the test."""
    log = (watch.parent / f"{watch.name}.kill.log").open("w")
    proc = subprocess.Popen([EXE, *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (watch.exists() and any(watch.rglob("*"))):
        assert proc.poll() is None, "finished before writing anything"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(np.random.default_rng(seed).uniform(0.05, upto) * span_s)
    assert proc.poll() is None, "the command finished before the kill: lengthen its work"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    log.close()
    deadline = time.monotonic() + 10  # pool workers die with their parent (PR_SET_PDEATHSIG)
    while (alive := _group_alive(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not alive, f"processes of the killed command are still running: {alive}"


def _group_alive(pgid: int) -> list[str]:
    """Command lines of the live (not zombie) processes of process group ``pgid``."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append((stat.parent / "cmdline").read_text().replace("\0", " ")[:120])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return alive


def _write_span(args: list[str], out: Path) -> float:
    """Seconds from the first file appearing under ``out`` to the end of an uninterrupted run."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([EXE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = None
    while proc.poll() is None:
        if first is None and out.exists() and any(out.rglob("*")):
            first = time.perf_counter()
        time.sleep(0.02)
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    return time.perf_counter() - (first or t0)


def _killed_and_rerun_equals_uninterrupted(args, tmp_path: Path, ignore: tuple[str, ...]) -> None:
    """``args(out)``: the command writing ``out``. Per seed: kill it at a random point, run it again, and
    compare every file with an uninterrupted run (except run reports, ``ignore``)."""
    ref = tmp_path / "ref"
    span = _write_span(args(ref), ref)
    want = _tree(ref, ignore)
    for seed in SEEDS:
        out = tmp_path / f"killed{seed}"
        _kill_midway(args(out), out, span, seed)
        _run(args(out))
        assert _tree(out, ignore) == want, f"seed {seed}"


def test_synth_killed_then_rerun_is_byte_identical(tmp_path):
    _killed_and_rerun_equals_uninterrupted(
        lambda out: ["synth", "librispeech", "--out", str(out), "--hours", "0.01", "--speakers", "3", "--seed", "3",
                     "--quiet"],
        tmp_path, ignore=("synth_report.json",))  # the report records the wall time


def test_prepare_libriword_killed_then_rerun_is_byte_identical(librispeech_dir, tmp_path):
    root, _ = librispeech_dir
    _killed_and_rerun_equals_uninterrupted(
        lambda out: ["prepare", "libriword", "--librispeech", str(root), "--alignments", str(root / "alignments"),
                     "--out", str(out), "--num-words", "6", "--clips-per-word", "6", "--min-word-seconds", "0.1",
                     "--workers", "2", "--quiet"],
        tmp_path, ignore=("stats",))  # counts of written vs reused clips


def _weights(exp: Path) -> dict:
    import torch

    return torch.load(exp / "checkpoint-latest.pt", weights_only=True, map_location="cpu")


def test_train_killed_then_resumed_ends_with_the_same_weights(gsc35, tmp_path):
    import torch

    gsc_dir, manifests = gsc35

    sets = [f"train_manifest={manifests / 'splitgsc_train.jsonl'}", f"val_manifest={manifests / 'splitgsc_val.jsonl'}",
            f"noise_dir={gsc_dir / '_background_noise_'}", "shots=2", "queries=2", "open_queries=4", "eval_shots=2",
            "eval_queries=2", "eval_episodes=4", "threads=1", "steps=8", "eval_every=2"]

    def args(exp):
        return ["train", "kws-fewshot", "--exp-dir", str(exp), *(x for kv in sets for x in ("--set", kv))]

    ref = tmp_path / "ref"
    span = _write_span(args(ref), ref)
    want = _weights(ref)
    want_rows = [json.loads(x)["train_loss"] for x in (ref / "metrics.jsonl").read_text().splitlines()]
    for seed in SEEDS[:2]:
        exp = tmp_path / f"killed{seed}"
        _kill_midway(args(exp), exp, span, seed)
        _run(args(exp))
        got = _weights(exp)
        assert got["step"] == want["step"] == 8
        for k, v in want["model"].items():
            assert torch.equal(v, got["model"][k]), (seed, k)
        rows = [json.loads(x)["train_loss"] for x in (exp / "metrics.jsonl").read_text().splitlines()]
        assert rows == want_rows, f"seed {seed}: metric rows differ (duplicated or lost)"


def test_export_killed_leaves_the_old_or_the_new_complete_folder(kws_export, tmp_path):
    import shutil

    exp, old_export = kws_export

    def args(out):
        return ["export", "--exp-dir", str(exp), "--out", str(out), "--invokes", "20", "--stream-chunk-ms", "0"]

    ref = tmp_path / "ref"
    span = _run(args(ref))
    new_names = set(_tree(ref))
    new_model = _tree(ref)["model_fp32.tflite"]
    for seed in SEEDS[:2]:
        out = tmp_path / f"out{seed}"
        shutil.copytree(old_export, out)  # a previous export (of a different configuration)
        old = _tree(out)
        _kill_midway(args(out), out, span, seed, upto=0.5)  # a second export is faster (warm caches)
        now = _tree(out)
        if now != old:  # not the old folder: then the whole new one
            assert set(now) == new_names and now["model_fp32.tflite"] == new_model, f"seed {seed}: partial export"
        _run(args(out))
        assert set(_tree(out)) == new_names
        left = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.") and p.is_dir()]
        assert not left, f"seed {seed}: the killed export's temporary folders are still there: {left}"


def test_partial_files_are_reused_after_a_kill_and_private_to_a_live_writer(tmp_path):
    """The fixed temporary name: a killed writer's leftover is truncated and reused (nothing left behind);
    two live writers of the same file never share a temporary file (the second takes a name of its own),
    and the file in place is always one writer's complete content."""
    from speechedge.io import PartialFile, atomic_write_bytes, partial_path

    target = tmp_path / "a.json"
    partial_path(target).write_bytes(b"left by a killed writer" * 100)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    first, second = PartialFile(target), PartialFile(target)  # two open descriptions: two writers
    assert first.tmp != second.tmp and first.tmp == partial_path(target)
    first.tmp.write_bytes(b"one")
    second.tmp.write_bytes(b"two")
    second.commit()
    assert target.read_bytes() == b"two"
    third = PartialFile(target)  # first still holds the fixed name
    assert third.tmp != first.tmp
    third.discard()
    first.commit()
    assert target.read_bytes() == b"one" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


# -- long input: memory does not grow with the length ----------------------------------------------------------
@pytest.mark.parametrize("rate,channels", [(16000, 1), (44100, 2)])
def test_file_source_memory_is_flat_over_ten_minutes(tmp_path, rate, channels):
    """A 10-minute file through the demos' file source: the same samples as decoding it whole (resampled,
    mixed to mono), while the most memory held at once (tracemalloc sees numpy's buffers) stays near one block
    instead of the 38 MB of the decoded file."""
    import tracemalloc

    import soundfile as sf

    from speechedge.audio import read_audio
    from speechedge.demos.audio_input import FileSource

    n = 600 * rate
    t = np.arange(n, dtype=np.float32) / rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t))[:, None].repeat(channels, 1) if channels > 1 else 0.3 * np.sin(2 * np.pi * 220 * t)
    path = tmp_path / "long.flac"
    sf.write(path, x, rate)
    del x, t
    tracemalloc.start()
    total, head, tail = 0, None, None
    for block in FileSource(path):
        if head is None:
            head = block.copy()
        total += len(block)
        tail = block
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    whole, _ = read_audio(path, sample_rate=16000)
    assert total == len(whole) and np.array_equal(head, whole[:len(head)]) and np.array_equal(tail, whole[-len(tail):])
    assert peak < 2_000_000, f"peak {peak / 1e6:.1f} MB while streaming a 10-minute file"


def test_attention_blocks_bound_memory_for_a_ten_minute_utterance():
    """15,000 output frames (10 minutes): no attention block holds more than ``BLOCK_ELEMENTS`` scores per
    head (one (T, T) block would hold 225 million), and with a limited left context every block attends only
    the band of keys its chunks may see, so the work is linear in T."""
    import math

    import torch

    from speechedge.models.conformer import AttentionMask

    t = 15000
    for chunk, left in [(0, -1), (8, 4), (4, 0), (8, -1)]:
        blocks = AttentionMask(torch.ones(1, t), chunk, left).blocks()
        assert blocks[0][0] == 0 and blocks[-1][1] == t and all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        assert max((e - s) * (ke - ks) for s, e, ks, ke in blocks) <= AttentionMask.BLOCK_ELEMENTS
        if left >= 0:  # rows of about sqrt(BLOCK_ELEMENTS) frames, each seeing its band: linear in T
            total = sum((e - s) * (ke - ks) for s, e, ks, ke in blocks)
            assert total <= t * (math.isqrt(AttentionMask.BLOCK_ELEMENTS) + (left + 1) * chunk), (chunk, left, total)


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_experiment_behind(tmp_path):
    """A typo (here a missing manifest) must not leave a half-made experiment (env.json, .lock, train.log)
    that looks like a started run: the folders the run created are removed, a user's existing folder keeps
    exactly what it held."""
    missing = ["--set", f"train_manifest={tmp_path / 'nope.jsonl'}", "--set", f"val_manifest={tmp_path / 'nope2.jsonl'}",
               "--set", "threads=1"]
    def _cli(*args):
        return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300)

    new = tmp_path / "new" / "exp"
    proc = _cli("train", "kws-fewshot", "--exp-dir", str(new), *missing)
    assert proc.returncode == 1 and "nope.jsonl" in proc.stderr
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    proc = _cli("train", "asr", "--exp-dir", str(existing), *missing)
    assert proc.returncode == 1 and "nope.jsonl" in proc.stderr
    assert sorted(p.name for p in existing.iterdir()) == ["notes.txt"]


def test_long_input_features_and_subsampling_run_in_blocks_with_the_same_numbers(monkeypatch):
    """Without gradients, the torch frontend and the Conformer's subsampling compute long input a block of
    frames at a time (their intermediates - the complex spectrogram, the (B, C, T/2, F) activations - are
    what made `eval asr` memory grow with the utterance): the same numbers as one block, for centred and
    uncentred frames and block edges that fall anywhere, within float rounding: the BLAS and FFT kernels may
    pick another summation order for another number of frames (the features: bit-identical on one machine, 1
    ulp apart on another, 2.4e-7 of values up to 4; the subsampling convolutions: 1.8e-7 of a 0.4 range)."""
    import torch

    import speechedge.models.conformer as conformer
    import speechedge.models.frontend as frontend
    from speechedge.features import FrontendConfig

    torch.manual_seed(0)
    x = torch.randn(2, 16000 * 3 + 123) * 0.1
    for center in (True, False):
        fe = frontend.TorchFrontend(FrontendConfig.asr(center=center))
        with torch.no_grad():
            whole = fe(x)
        monkeypatch.setattr(frontend, "BLOCK_FRAMES", 37)
        with torch.no_grad():
            blocked = fe(x)
        monkeypatch.setattr(frontend, "BLOCK_FRAMES", 4096)
        assert blocked.shape == whole.shape, center
        torch.testing.assert_close(blocked, whole, rtol=1e-6, atol=1e-6, msg=f"center={center}")
    sub = conformer.Subsampling(80, 32, 96)
    feats = torch.randn(2, 1203, 80)
    with torch.no_grad():
        whole = sub(feats)
        monkeypatch.setattr(conformer, "_SUB_BLOCK", 7)
        blocked = sub(feats)
    assert blocked.shape == whole.shape == (2, 300, 96)
    torch.testing.assert_close(blocked, whole, rtol=1e-5, atol=1e-6)  # measured: 0 to 1.8e-7 of a 0.4 range
