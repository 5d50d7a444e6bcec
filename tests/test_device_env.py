"""The exported models run in the separate "device" environment (numpy<2, tflite-runtime, numba, soundfile,
flashlight-text;
built by ``bash setup.sh test`` / ``bash setup.sh device``) and give the same outputs as under ai-edge-litert."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DEVICE_PY = ROOT / ".venv-device" / "bin" / "python"

SCRIPT = """
import json, sys
import numpy as np
import tflite_runtime, numba
from speechedge.runtime import KWSModel, StreamingASR
kws_dir, asr_dir, out, frames_npz, words_txt = sys.argv[1:6]
rng = np.random.default_rng(0)
audio = rng.normal(0, 0.1, 40000).astype(np.float32)
m = KWSModel(kws_dir, precision="fp32")
emb = m.embed(audio[:16000])
asr = StreamingASR(asr_dir, keep_log_probs=True)
asr.push(audio)
dyn = StreamingASR(asr_dir, precision="dynamic_int8", keep_log_probs=True)
dyn.push(audio)
np.savez(out, emb=emb, lp=np.concatenate(asr.log_probs), dyn=np.concatenate(dyn.log_probs))
from speechedge.runtime.lexicon import LexiconCTC, read_word_list
lex = LexiconCTC(asr.tokens, read_word_list(words_txt, asr.tokens)).decode(np.load(frames_npz)["lp"])
print(json.dumps({"lexicon": lex, "numpy": np.__version__, "interpreter": type(m.net.it).__module__, "torch": "torch" in sys.modules}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not DEVICE_PY.exists(),
                    reason="no .venv-device: build it with `bash setup.sh device` (CI builds it via `bash setup.sh test`)")
def test_device_env_gives_the_same_outputs(kws_export, asr_export, tmp_path):
    from speechedge.runtime import KWSModel, StreamingASR

    _, kws_dir = kws_export
    _, asr_dir = asr_export
    from test_lexicon import HELLO_WURLD

    out = tmp_path / "device.npz"
    np.savez(tmp_path / "frames.npz", lp=HELLO_WURLD)
    (tmp_path / "words.txt").write_text("hello\nworld\nword\n")
    proc = subprocess.run([str(DEVICE_PY), "-c", SCRIPT, str(kws_dir), str(asr_dir), str(out),
                           str(tmp_path / "frames.npz"), str(tmp_path / "words.txt")], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["numpy"].startswith("1.") and info["interpreter"].startswith("tflite_runtime") and not info["torch"]
    assert info["lexicon"] == "hello world"  # the lexicon decoder (flashlight-text) under numpy 1.x
    dev = np.load(out)
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, 40000).astype(np.float32)
    emb = KWSModel(kws_dir, precision="fp32").embed(audio[:16000])
    asr = StreamingASR(asr_dir, keep_log_probs=True)
    asr.push(audio)
    np.testing.assert_allclose(dev["emb"], emb, atol=1e-5 * max(1.0, np.ptp(emb)))
    lp = np.concatenate(asr.log_probs)
    np.testing.assert_allclose(dev["lp"], lp, atol=1e-4 * np.ptp(lp))
    # the dynamic-range model (the shipped ASR model's format) near fp32 in both interpreters (their hybrid kernels
    # quantize each input differently, so they differ by rounding; TFLite 2.14 misread per-channel
    # FULLY_CONNECTED weights: 1.8 of a 3.3 range off)
    dyn = StreamingASR(asr_dir, precision="dynamic_int8", keep_log_probs=True)
    dyn.push(audio)
    dl = np.concatenate(dyn.log_probs)
    for got in (dev["dyn"], dl):
        assert np.abs(got - lp).max() < 0.03 * np.ptp(lp)
