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
                  "train BC-ResNet-1", "eval test keywords", "export TFLite fp32"):
        assert stage in report, stage
    ev = json.loads((work / "eval_kws_fewshot.done.json").read_text())
    for shot in ("1shot", "5shot"):
        assert 0.2 <= ev[shot]["acc"] <= 1 and 0 <= ev[shot]["auroc"] <= 1
    assert (work / "exp" / "kws_fewshot" / "roc.png").exists()
    assert (work / "libriword" / "stats.png").exists()
    assert (work / "export" / "kws_fewshot" / "model_fp32.tflite").exists()
    # a second run reuses every finished stage
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "| ran |" not in (work / "report.md").read_text()
    assert (work / "report.md").read_text().count("| reused |") == 8
