"""int8 post-training quantization (export/quantize.py): least-error activation ranges against the quantizer's
average of per-input extremes."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.mark.slow
def test_mse_ranges_beat_the_average_of_per_input_extremes():
    """Calibration inputs at two levels (quiet and 4x louder, as clips at different gains): the quantizer's
    moving average of each input's min/max gives a range between the two, which clips every loud input; the
    least-error ranges over the pooled values cover both. The quantized model's error on inputs like the
    calibration set must drop, and both models must stay full-integer."""
    pytest.importorskip("litert_torch")
    from speechedge.export.kws import _convert_fp32
    from speechedge.export.quantize import quantize_int8
    from speechedge.runtime.tflite import TFLiteModel

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 4, 3, padding=1)).eval()
    rng = np.random.default_rng(0)
    levels = np.where(np.arange(64) % 2, 4.0, 1.0).astype(np.float32)[:, None, None, None, None]
    calib = (rng.normal(0, 1, (64, 1, 1, 16, 16)) * levels).astype(np.float32)
    fp32 = _convert_fp32(net, torch.from_numpy(calib[0]))
    name = next(iter(TFLiteModel(fp32).it.get_signature_list().values()))["inputs"][0]
    calls = [{name: c} for c in calib]
    test = (rng.normal(0, 1, (32, 1, 16, 16)) * levels[:32, 0]).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(test)).numpy()
    errs = {}
    for ranges in ("average", "mse"):
        model = TFLiteModel(quantize_int8(fp32, calls, ranges))
        assert model.inputs[0]["dtype"] == np.int8 and model.outputs[0]["dtype"] == np.int8
        out = np.concatenate([model(x[None])[0] for x in test])
        errs[ranges] = float(((out - ref) ** 2).mean() / (ref ** 2).mean())
    assert errs["mse"] < 0.5 * errs["average"], errs
    with pytest.raises(ValueError, match="average"):
        quantize_int8(fp32, calls, "percentile")
    # one weight scale per tensor instead of per output channel: a smaller file, every weight with one scale
    per_channel, per_tensor = (quantize_int8(fp32, calls, "mse", w) for w in ("channel", "tensor"))
    assert len(per_tensor) < len(per_channel)

    def weight_scales(blob):
        from speechedge.runtime.tflite import make_interpreter

        it = make_interpreter(blob, delegate=False)
        details = {d["index"]: d for d in it.get_tensor_details()}
        return [len(details[op["inputs"][1]]["quantization_parameters"]["scales"])
                for op in it._get_ops_details() if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]

    assert weight_scales(per_channel) == [8, 4] and weight_scales(per_tensor) == [1, 1]
    with pytest.raises(ValueError, match="tensor"):
        quantize_int8(fp32, calls, "mse", "row")
