"""The main job end to end: `speechedge quickstart` on synthesized data, and its resume."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quickstart_runs_and_resumes(tmp_path):
    work = tmp_path / "qs"
    cmd = [sys.executable, "-m", "speechedge", "quickstart", "--work", str(work), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
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


@pytest.mark.slow
def test_quickstart_asr_pipeline(tmp_path):
    """The ASR pipeline's plumbing with 4 training steps per model (the real run takes 600)."""
    work = tmp_path / "qsa"
    cmd = [sys.executable, "-m", "speechedge", "quickstart", "asr", "--work", str(work), "--quiet", "--asr-steps", "4",
           "--asr-hours", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
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
