"""The main job end to end: `speechedge quickstart` on synthesized data, and its resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_quickstart_runs_resumes_and_survives_a_kill_at_a_random_moment(tmp_path):
    """The KWS pipeline at the CI's scale; a second run reuses every stage; the same command killed (SIGKILL,
    pool workers included) at a random moment and run again ends with a folder equal to the uninterrupted run's
    (tests/test_faults.py has the killing helpers)."""
    from test_faults import _kill_midway, _run, _write_span

    # the pipeline at the small scale of the CI budget (the default run trains 2,400 episodes on 5x the data)
    args = lambda work: ["quickstart", "--work", str(work), "--quiet", "--kws-steps", "300",  # noqa: E731
                         "--kws-clips", "12", "--kws-hours", "0.3"]
    work = tmp_path / "qs"
    cmd = [sys.executable, "-m", "speechedge", *args(work)]
    span = _write_span(args(work), work)
    report = (work / "report.md").read_text()
    for stage in ("synth LibriSpeech", "synth Speech Commands", "LibriWord", "splitGSC", "log-mel",
                  "train BC-ResNet-1", "eval test keywords", "export TFLite", "streaming detector"):
        assert stage in report, stage
    ev = json.loads((work / "eval_kws_fewshot.done.json").read_text())
    for shot in ("1shot", "5shot"):
        assert 0.2 <= ev[shot]["acc"] <= 1 and 0 <= ev[shot]["auroc"] <= 1
    assert (work / "exp" / "kws_fewshot" / "roc.png").exists()
    assert (work / "libriword" / "stats.png").exists()
    assert (work / "export" / "kws_fewshot" / "model_fp32.tflite").exists()
    assert (work / "det.png").exists() and (work / "export" / "kws_fewshot" / "keywords.json").exists()
    dt = json.loads((work / "enroll_and_detect.done.json").read_text())
    assert dt["events"] == 24 and set(dt["operating_points"]) == {"0.5", "1", "2"}
    # a second run reuses every finished stage
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "| ran |" not in (work / "report.md").read_text()
    assert (work / "report.md").read_text().count("| reused |") == 9

    killed = tmp_path / "killed"
    _kill_midway(args(killed), killed, span, seed=1, upto=0.9)
    _run(args(killed))
    _same_output(work, killed)


TIMING_KEYS = {"_wall_s", "wall_s", "s_per_step", "decode_s", "median_ms_per_chunk", "real_time_factor",
               "speed_vs_torch", "torch_ms_per_chunk", "audio_per_wall_s", "torch_eager_ms_per_chunk",
               "invoke_ms", "model_invoke_ms", "feature_ms_per_audio_s", "cut_wall_s", "clips_per_s"}
# files whose content is a measurement of time or of this process (compared below where they hold more)
VOLATILE = {"train.log", "env.json", ".lock", "curves.png", "report.md", "report.json", "synth_report.json"}


def _same_output(ref: Path, out: Path) -> None:
    """Every file of two quickstart work folders holds the same content, up to the folder's own path and
    measured times: same file names (no temporary file left), byte-identical audio and exported models,
    equal manifests, stage results and metric rows, equal trained weights."""
    import gzip

    import torch

    def files(root: Path) -> set[str]:
        return {str(f.relative_to(root)) for f in root.rglob("*") if f.is_file() and f.name not in VOLATILE}

    def norm(x, root: Path):
        if isinstance(x, dict):
            return {k: norm(v, root) for k, v in x.items() if k not in TIMING_KEYS}
        if isinstance(x, list):
            return [norm(v, root) for v in x]
        return x.replace(str(root), "ROOT") if isinstance(x, str) else x

    names = files(ref)
    assert files(out) == names
    for name in sorted(names):
        a, b = ref / name, out / name
        if name.endswith(".pt"):
            sa, sb = (torch.load(f, weights_only=True) for f in (a, b))
            assert sa["step"] == sb["step"] and sa["model"].keys() == sb["model"].keys(), name
            assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"]), name
        elif name.endswith((".json", ".jsonl", ".jsonl.gz")):
            read = (lambda f: gzip.decompress(f.read_bytes()).decode()) if name.endswith(".gz") else \
                (lambda f: f.read_text())
            rows = lambda f, root: [norm(json.loads(line), root) for line in read(f).splitlines()] \
                if ".jsonl" in name else norm(json.loads(read(f)), root)  # noqa: E731
            assert rows(a, ref) == rows(b, out), name
        else:
            assert a.read_bytes() == b.read_bytes(), name


@pytest.mark.slow
def test_quickstart_asr_pipeline_and_a_kill_at_a_random_moment(tmp_path):
    """The ASR pipeline's plumbing with 4 training steps per model (the real run takes 600) on 0.2 h of speech;
    then the same command killed (SIGKILL, pool workers included) at a random moment and run again: it
    finishes, and its folder equals the uninterrupted run's (tests/test_faults.py has the killing helpers)."""
    from test_faults import _kill_midway, _run, _write_span

    args = lambda work: ["quickstart", "asr", "--work", str(work), "--quiet", "--asr-steps", "4",  # noqa: E731
                         "--asr-hours", "0.2"]
    work = tmp_path / "qsa"
    span = _write_span(args(work), work)
    report = (work / "report.md").read_text()
    for stage in ("train teacher", "train streaming student", "export streaming TFLite", "streaming transcription"):
        assert stage in report, stage
    ex = json.loads((work / "export_asr.done.json").read_text())
    assert ex["models"]["fp32"]["max_err_rel_to_range"] <= 1e-4
    tr = json.loads((work / "transcribe.done.json").read_text())
    assert tr["utterances"] == 20 and tr["fp32"]["real_time_factor"] < 1
    assert (work / "export" / "student" / "model_fp32.tflite").exists()
    for q in ("int8", "int16x8"):  # a quantized model is written and transcribed unless it was refused
        assert q in ex["models"] and isinstance(ex[f"{q}_refused"], bool)
        written = (work / "export" / "student" / f"model_{q}.tflite").exists()
        assert written == (not ex[f"{q}_refused"]) == (q in tr), q

    killed = tmp_path / "killed"
    _kill_midway(args(killed), killed, span, seed=0, upto=0.9)
    _run(args(killed))
    _same_output(work, killed)


def test_quickstart_refuses_a_work_folder_made_with_other_options(tmp_path):
    """Finished stages are reused on a re-run; with other options they would silently mix two settings (a
    300-episode model reported as the 2,400-episode one), so the run is refused before any work."""
    work = tmp_path / "qs"
    work.mkdir()
    (work / "options.json").write_text(json.dumps({"pipeline": "kws", "seed": 0, "steps": 300, "clips": 12,
                                                   "hours": 0.3}))
    (work / "synth_librispeech.done.json").write_text("{}")
    cmd = [sys.executable, "-m", "speechedge", "quickstart", "--work", str(work), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "steps: 300 -> 2400" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in work.iterdir()) == ["options.json", "synth_librispeech.done.json"]
    (work / "options.json").unlink()  # stages without recorded options (an older version): refused too
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "no options.json" in proc.stderr
    # ASR: other engines are an option recorded in options.json; a bad engine list is refused before any write
    asr = tmp_path / "qsa"
    for engines, message in (("pico,hibari", "needs espeak among them"), ("espeak,festival", "not installed")):
        proc = subprocess.run([sys.executable, "-m", "speechedge", "quickstart", "asr", "--work", str(asr), "--quiet",
                               "--asr-engines", engines], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not asr.exists()
    asr.mkdir()
    (asr / "options.json").write_text(json.dumps({"pipeline": "asr", "seed": 0, "steps": 600, "hours": 4.0}))
    (asr / "synth_librispeech.done.json").write_text("{}")
    proc = subprocess.run([sys.executable, "-m", "speechedge", "quickstart", "asr", "--work", str(asr), "--quiet",
                           "--asr-engines", "espeak,pico"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "engines: None -> ['espeak', 'pico']" in proc.stderr, proc.stderr
