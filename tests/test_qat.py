"""Quantization-aware training: fake int8 activations through hooks (models/qat.py) and the recipe option."""

from __future__ import annotations

import json

import pytest
import torch

from speechedge.models.bcresnet import BCResNet
from speechedge.models.qat import ActivationFakeQuant, _quantized_outputs
from speechedge.training.config import load_config


def _net(tau=1.0, classes=0, seed=0):
    torch.manual_seed(seed)
    net = BCResNet(tau, classes)
    with torch.no_grad():  # non-trivial running statistics, as a trained model has
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net


def test_quantized_points_follow_the_converted_graph():
    names = _quantized_outputs(_net())
    # conv -> BN -> ReLU is one fused op: only the ReLU's output is a tensor of the int8 graph
    assert "stem.2" in names and "stem.0" not in names and "stem.1" not in names
    # conv -> SubSpectralNorm does not fold: the conv's output, the affine's MUL and ADD, not the inner batch norm
    assert {"stages.0.1.f2.0.0", "stages.0.1.f2.0.1.scaled", "stages.0.1.f2.0.1"} <= set(names)
    assert "stages.0.1.f2.0.1.bn" not in names
    # a block without shortcut (a width change) ends in one ADD with the ReLU fused: one point, not two
    assert "stages.0.0.summed" not in names and "stages.0.0" in names and "stages.0.1.summed" in names
    # conv -> BN -> SiLU: both the BN output (SiLU's input) and the SiLU output; the 1x1 conv after it
    assert {"stages.0.1.f1.0.1", "stages.0.1.f1.0.2", "stages.0.1.f1.1"} <= set(names)
    # the frequency mean, the broadcast sum, each block's output and the embedding
    assert {"stages.0.1.pooled", "stages.0.1.summed", "stages.0.1", "pooled"} <= set(names)
    # the neck: depthwise conv alone, then the fused 1x1 conv -> BN -> ReLU
    assert "neck.0" in names and "neck.3" in names and "neck.1" not in names and "neck.2" not in names


def test_fake_quant_rounds_to_int8_and_leaves_the_model_unchanged():
    net = _net()
    keys = set(net.state_dict())
    x = torch.randn(6, 1, 40, 101, generator=torch.Generator().manual_seed(1))
    net.eval()
    with torch.no_grad():
        plain = net.embed(x)
    fq = ActivationFakeQuant(net).attach()
    fq.freeze_norms()
    net.train()  # norms stay on running statistics: train-mode QAT sees the exported (folded) graph
    emb = net.embed(x)
    assert set(net.state_dict()) == keys  # the quantizers are not the model's state
    # every output lies on the int8 grid of its moving range, and differs from the float model only by rounding
    scale = float(fq.quant["pooled"].scale)
    steps = (emb.detach() / scale).round() - emb.detach() / scale
    assert steps.abs().max() < 1e-3
    assert len(torch.unique(emb.detach())) <= 256
    assert 0 < (emb - plain).abs().max() < 0.2 * plain.abs().max()
    with fq.disabled():
        net.eval()
        assert torch.allclose(net.embed(x), plain, atol=1e-6)
    # straight-through gradients reach the weights
    emb.pow(2).sum().backward()
    assert net.stem[0].weight.grad is not None and net.stem[0].weight.grad.abs().sum() > 0
    # observers hold their ranges inside observing(False) and move again after it
    before = fq.ranges()["input"]
    with fq.observing(False):
        net.embed(10 * x)
    assert fq.ranges()["input"] == before
    net.embed(10 * x)
    assert fq.ranges()["input"] != before
    fq.detach()
    net.eval()
    with torch.no_grad():
        assert torch.equal(net.embed(x), plain)


@pytest.mark.slow
def test_qat_fine_tune_from_an_experiment_resumes_exactly(gsc35, tmp_path, killed_once_then_resumed):
    """``qat = true`` with ``init_from``: the quantizers' ranges are in the latest checkpoint, a run killed after
    its first checkpoint and started again ends equal to one that never stopped, and the best checkpoint is a
    plain model that loads and exports like any other."""
    from speechedge.models import load_checkpoint
    from speechedge.recipes.kws_fewshot import FewShotConfig, train

    gsc_dir, manifests = gsc35
    base = [f"train_manifest={manifests / 'splitgsc_train.jsonl'}", f"val_manifest={manifests / 'splitgsc_val.jsonl'}",
            "shots=2", "queries=2", "open_queries=4", "eval_shots=2", "eval_queries=2", "eval_episodes=10",
            "threads=1"]
    train(load_config(FewShotConfig, None, base + ["steps=2", "eval_every=2"]), tmp_path / "float")
    cfg = load_config(FewShotConfig, None, base + ["steps=4", "eval_every=2", "qat=true", "qat_consistency=1.0",
                                                   "lr=1e-4", f"init_from={tmp_path / 'float'}"])
    train(cfg, tmp_path / "straight")
    killed_once_then_resumed(train, cfg, tmp_path / "resumed")
    a = torch.load(tmp_path / "straight" / "checkpoint-latest.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint-latest.pt", weights_only=True)
    assert "input.scale" in "".join(a["modules"]["qat"])
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for k, v in a["modules"]["qat"].items():
        assert torch.equal(v, b["modules"]["qat"][k]), k
    rows = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["train_qat"] >= 0 for r in rows)
    model, _ = load_checkpoint(tmp_path / "straight", "best")  # a plain model: no quantizers in its weights
    assert not any("quant" in k for k in model.state_dict())


def test_qat_consistency_needs_qat():
    from speechedge.recipes.kws_fewshot import FewShotConfig

    with pytest.raises(ValueError, match="qat_consistency"):
        load_config(FewShotConfig, None, ["qat_consistency=1.0"])
