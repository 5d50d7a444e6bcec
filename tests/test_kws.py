"""KWS: BC-ResNet sizes, few-shot math, episodes, metrics, training/resume/eval of the few-shot recipe."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import torch

from speechedge.models.fewshot import (
    DummyPrototypes,
    EpisodeSampler,
    auroc,
    episode_loss,
    mean_ci95,
    open_set_scores,
    protonet_logits,
)
from speechedge.models.bcresnet import BCResNet
from speechedge.training.config import apply_overrides, load_config
from conftest import assert_same_run

REFERENCE_PARAMS = {1: 9232, 1.5: 17154, 2: 27284, 3: 54168, 6: 187812, 8: 321068}


@pytest.mark.parametrize("tau", sorted(REFERENCE_PARAMS))
def test_bcresnet_parameter_counts_match_the_reference(tau):
    model = BCResNet(tau, num_classes=12)
    assert sum(p.numel() for p in model.parameters()) == REFERENCE_PARAMS[tau]


def test_bcresnet_shapes_and_embedding():
    model = BCResNet(1, num_classes=12).eval()
    x = torch.randn(3, 1, 40, 101)
    assert model(x).shape == (3, 12)
    e = model.embed(x)
    assert e.shape == (3, 32) and model.embedding_dim == 32
    torch.testing.assert_close(model.head(e[:, :, None, None]).flatten(1), model(x))
    torch.testing.assert_close(model.embed(x[:1]), e[:1], atol=1e-5, rtol=0)  # batch-independent in eval
    with pytest.raises(ValueError, match="n_mels"):
        BCResNet(1, n_mels=64)


def test_episode_sampler_is_seeded_and_well_formed():
    labels = np.repeat(np.arange(8), 10)
    a = EpisodeSampler(labels, ways=5, shots=2, queries=3, open_queries=7, seed=4)
    b = EpisodeSampler(labels, ways=5, shots=2, queries=3, open_queries=7, seed=4)
    for _ in range(5):
        ea, eb = a.sample(), b.sample()
        np.testing.assert_array_equal(ea.query, eb.query)
        assert ea.support.shape == (5, 2) and len(ea.query) == 5 * 3 + 7
        for k, c in enumerate(ea.classes):
            assert (labels[ea.support[k]] == c).all()
        known = ea.query_labels >= 0
        assert (labels[ea.query[known]] == np.array(ea.classes)[ea.query_labels[known]]).all()
        assert not set(labels[ea.query[~known]]) & set(ea.classes), "unknowns come from other classes"
        assert not set(ea.support.ravel()) & set(ea.query), "support and queries are disjoint"
    with pytest.raises(ValueError, match="classes"):
        EpisodeSampler(labels, ways=9, shots=2, queries=3)
    with pytest.raises(ValueError, match="outside the episode"):
        EpisodeSampler(np.repeat(np.arange(5), 10), ways=5, shots=2, queries=3, open_queries=4)


def test_protonet_logits_are_negative_squared_distances():
    q = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    p = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    torch.testing.assert_close(protonet_logits(q, p, temperature=2.0), torch.tensor([[0.0, -4.5], [-12.5, -8.0]]))


def test_dummy_generator_is_permutation_invariant():
    torch.manual_seed(0)
    gen = DummyPrototypes(8, num_dummies=3)
    protos = torch.randn(5, 8)
    out = gen(protos)
    assert out.shape == (3, 8)
    torch.testing.assert_close(gen(protos[torch.randperm(5)]), out)


def test_dprotonet_loss_learns_to_reject_unknowns():
    """On separable toy embeddings, D-ProtoNet training drives unknown scores above known ones."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 16, generator=gen) * 3
    enc = torch.nn.Linear(16, 16)
    dummy = DummyPrototypes(16, 3)
    opt = torch.optim.Adam([*enc.parameters(), *dummy.parameters()], lr=1e-2)
    labels = np.repeat(np.arange(10), 20)
    data = centres[labels] + 0.5 * torch.randn(len(labels), 16, generator=gen)
    sampler = EpisodeSampler(labels, ways=5, shots=3, queries=4, open_queries=10, seed=1)
    for _ in range(150):
        ep = sampler.sample()
        emb = enc(data[np.concatenate([ep.support.ravel(), ep.query])])
        loss, _ = episode_loss(emb[:15].view(5, 3, 16), emb[15:], torch.from_numpy(ep.query_labels),
                               method="dprotonet", dummy=dummy, lambda_u=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    aucs, accs = [], []
    for _ in range(30):
        ep = sampler.sample()
        with torch.no_grad():
            emb = enc(data[np.concatenate([ep.support.ravel(), ep.query])])
        pred, unk = open_set_scores(emb[:15].view(5, 3, 16), emb[15:], method="dprotonet", dummy=dummy)
        known = ep.query_labels >= 0
        accs.append(float((pred.numpy()[known] == ep.query_labels[known]).mean()))
        aucs.append(auroc(unk.numpy()[~known], unk.numpy()[known]))
    assert np.mean(accs) > 0.9 and np.mean(aucs) > 0.8, (np.mean(accs), np.mean(aucs))


def test_auroc_against_brute_force(rng):
    u, k = rng.normal(1, 1, 40), rng.normal(0, 1, 60)
    u[:5] = k[:5]  # ties count one half
    brute = np.mean([(a > b) + 0.5 * (a == b) for a in u for b in k])
    assert abs(auroc(u, k) - brute) < 1e-12
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    m, ci = mean_ci95([0.5, 0.7, 0.6, 0.8])
    assert abs(m - 0.65) < 1e-12 and abs(ci - 1.96 * np.std([0.5, 0.7, 0.6, 0.8], ddof=1) / 2) < 1e-12
    # a few values (training seeds): Student's t with 3 degrees of freedom, t_0.975 = 3.1824
    _, ci_t = mean_ci95([0.5, 0.7, 0.6, 0.8], student_t=True)
    assert abs(ci_t - 3.182446 * np.std([0.5, 0.7, 0.6, 0.8], ddof=1) / 2) < 1e-6
    assert np.isnan(mean_ci95([0.5], student_t=True)[1])


def test_config_toml_and_overrides(tmp_path):
    from speechedge.recipes.kws_fewshot import FewShotConfig

    p = tmp_path / "c.toml"
    p.write_text('tau = 2.0\nmethod = "protonet"\nsteps = 7\n')
    cfg = load_config(FewShotConfig, p, ["lr=0.5", "spec_augment=false"])
    assert (cfg.tau, cfg.method, cfg.steps, cfg.lr, cfg.spec_augment) == (2.0, "protonet", 7, 0.5, False)
    with pytest.raises(ValueError, match="unknown key 'nope'"):
        apply_overrides(cfg, ["nope=1"])
    with pytest.raises(ValueError, match="did you mean 'steps'"):
        apply_overrides(cfg, ["stesp=3"])
    with pytest.raises(ValueError, match="not a valid int"):
        apply_overrides(cfg, ["steps=many"])
    for ranges in ("5,25", "[5, 25]", "(5.0,25.0)"):  # a pair as the shell, TOML or Python would write it
        assert apply_overrides(cfg, [f"augment.snr_db={ranges}"]).augment.snr_db == (5.0, 25.0)
    p.write_text("bogus = 1\n")
    with pytest.raises(ValueError, match="bogus"):
        load_config(FewShotConfig, p)
    p.write_text('steps = "sixty"\n')
    with pytest.raises(ValueError, match=r"c.toml: steps='sixty' is not a valid int"):
        load_config(FewShotConfig, p)
    with pytest.raises(ValueError, match="method"):
        FewShotConfig(method="magic")
    with pytest.raises(ValueError, match="eval_every must be positive"):
        apply_overrides(cfg, ["eval_every=0"])
    for bad, match in (("threads=-3", "threads must be >= 0, got -3"), ("lr=-1", "lr must be positive, got -1"),
                       ("lr=nan", "lr must be positive, got nan"), ("temperature=0", "temperature must be positive"),
                       ("open_queries=-4", "open_queries must be >= 0, got -4")):
        with pytest.raises(ValueError, match=match):
            apply_overrides(cfg, [bad])
    from speechedge.recipes.asr import ASRConfig
    from speechedge.recipes.kws import KWSConfig

    with pytest.raises(ValueError, match="kd_temperature must be positive"):
        ASRConfig(kd_temperature=0.0)
    with pytest.raises(ValueError, match="threads must be >= 0"):
        KWSConfig(threads=-1)


def test_config_frontend_table_dotted_overrides_and_absolute_paths(tmp_path, monkeypatch):
    from speechedge.features import FrontendConfig
    from speechedge.recipes.kws_fewshot import FewShotConfig
    from speechedge.training.config import config_from_dict, config_to_dict

    p = tmp_path / "c.toml"
    p.write_text('train_manifest = "m/train.jsonl"\n[frontend]\nn_mels = 80\nhop_length = 320\n')
    monkeypatch.chdir(tmp_path)
    cfg = load_config(FewShotConfig, p, ["frontend.win_length=640", "frontend.n_fft=1024"])
    assert cfg.frontend == FrontendConfig.kws(n_mels=80, hop_length=320, win_length=640, n_fft=1024)
    assert cfg.train_manifest == str(tmp_path / "m" / "train.jsonl")  # resolved where the command ran
    assert config_from_dict(FewShotConfig, config_to_dict(cfg)) == cfg  # config.json / checkpoint round trip
    with pytest.raises(ValueError, match="did you mean 'n_mels'"):
        apply_overrides(cfg, ["frontend.n_mel=64"])
    with pytest.raises(ValueError, match="win_length"):
        apply_overrides(cfg, ["frontend.win_length=4096"])  # FrontendConfig's own range check


def _tiny_overrides(gsc_dir, manifests, extra=()):
    return [f"train_manifest={manifests / 'splitgsc_train.jsonl'}", f"val_manifest={manifests / 'splitgsc_val.jsonl'}",
            f"noise_dir={gsc_dir / '_background_noise_'}", "shots=2", "queries=2", "open_queries=4", "eval_shots=2",
            "eval_queries=2", "eval_episodes=10", "threads=1", *extra]


@pytest.mark.slow
def test_fewshot_training_resumes_and_evaluates(gsc35, tmp_path, capsys):
    from speechedge.apps.cli import main
    from speechedge.recipes.kws_fewshot import FewShotConfig, load_model, train

    gsc_dir, manifests = gsc35
    cfg = load_config(FewShotConfig, None, _tiny_overrides(gsc_dir, manifests, ["steps=4", "eval_every=2"]))
    exp = tmp_path / "exp"
    record = train(cfg, exp)
    rows = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4] and record == rows[-1]
    # run again when it is finished (a caller killed before it saw the result): the same result, nothing trained
    assert train(cfg, exp) == record and len((exp / "metrics.jsonl").read_text().splitlines()) == 2
    assert all(np.isfinite(r["train_loss"]) and 0 <= r["val_acc"] <= 1 for r in rows)
    for name in ("checkpoint-latest.pt", "checkpoint-best.pt", "config.json", "env.json", "curves.png", "train.log"):
        assert (exp / name).exists(), name
    first = torch.load(exp / "checkpoint-latest.pt", weights_only=True)
    # resume: a longer run in the same folder continues from step 4 instead of starting over
    train(load_config(FewShotConfig, None, _tiny_overrides(gsc_dir, manifests, ["steps=6", "eval_every=2"])), exp)
    rows = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert "resumed from" in (exp / "train.log").read_text()
    model, cfg2 = load_model(exp, "latest")
    assert cfg2.steps == 6 and model.dummy is not None and first["step"] == 4
    # evaluation on any Speech Commands-layout folder
    out_json = tmp_path / "eval.json"
    assert main(["eval", "kws-fewshot", "--exp-dir", str(exp), "--data", str(gsc_dir), "--shots", "1,2",
                 "--queries", "2", "--episodes", "20", "--json", str(out_json)]) == 0
    res = json.loads(out_json.read_text())["results"]
    assert set(res) == {"1shot", "2shot"}
    for r in res.values():
        assert 0 <= r["acc"] <= 1 and 0 <= r["auroc"] <= 1 and r["acc_ci95"] >= 0
    assert (tmp_path / "eval.png").exists() and "AUROC" in capsys.readouterr().out  # the plot beside the JSON
    assert not (exp / "roc.png").exists()  # the experiment is not written by an evaluation


def test_fewshot_resume_after_a_crash_is_exact(gsc35, tmp_path, killed_once_then_resumed):
    """A run that dies right after its step-2 checkpoint and is started again ends with the same weights,
    optimizer state and metric rows as one that never stopped (dropout and Gumbel-softmax draw from torch's
    global RNG, which the checkpoint restores), and the folder lock is released by the crash."""
    from speechedge.recipes.kws_fewshot import FewShotConfig, train

    gsc_dir, manifests = gsc35
    cfg = load_config(FewShotConfig, None, _tiny_overrides(gsc_dir, manifests, ["steps=4", "eval_every=2"]))
    train(cfg, tmp_path / "straight")
    killed_once_then_resumed(train, cfg, tmp_path / "resumed")
    assert_same_run(tmp_path / "straight", tmp_path / "resumed", 4, [2, 4])


@pytest.mark.parametrize("at", ["before_checkpoint", "after_checkpoint"])
def test_a_kill_around_the_checkpoint_loses_no_metric_row(gsc35, tmp_path, killed_once_then_resumed, at):
    """Killed just before or just after the step-4 checkpoint is written (the metrics row is written before
    it), the resumed run ends with the rows and weights of one that never stopped: no row lost, none twice."""
    from speechedge.recipes.kws_fewshot import FewShotConfig, train

    gsc_dir, manifests = gsc35
    cfg = load_config(FewShotConfig, None, _tiny_overrides(gsc_dir, manifests, ["steps=4", "eval_every=2"]))
    train(cfg, tmp_path / "straight")
    killed_once_then_resumed(train, cfg, tmp_path / "resumed", at=at, step=4)
    assert_same_run(tmp_path / "straight", tmp_path / "resumed", 4, [2, 4])


def test_a_second_run_on_a_locked_experiment_is_refused(tmp_path):
    from speechedge.recipes.kws_fewshot import FewShotConfig
    from speechedge.training.loop import Experiment, ExperimentLockedError

    first = Experiment(tmp_path / "exp", FewShotConfig())
    try:
        with pytest.raises(ExperimentLockedError, match="another training process"):
            Experiment(tmp_path / "exp", FewShotConfig())
    finally:
        first.close()
    Experiment(tmp_path / "exp", FewShotConfig()).close()  # free again once the first closed


@pytest.mark.slow
def test_fewshot_with_libriword_aux_head(gsc35, libriword_quick, tmp_path):
    from speechedge.recipes.kws_fewshot import FewShotConfig, load_model, train

    gsc_dir, manifests = gsc35
    cfg = load_config(FewShotConfig, None, _tiny_overrides(gsc_dir, manifests, [
        "steps=2", "eval_every=2", "method=protonet", "aux_weight=0.5", "aux_batch=8",
        f"libriword_manifest={libriword_quick / 'manifest.jsonl'}"]))
    train(cfg, tmp_path / "exp")
    model, _ = load_model(tmp_path / "exp", "latest")
    assert model.aux_head is not None and model.dummy is None
    n_words = len({json.loads(line)["word"] for line in (libriword_quick / "manifest.jsonl").read_text().splitlines()})
    assert model.aux_head.out_features == n_words


@pytest.mark.slow
def test_torchrun_two_process_cpu_training(gsc35, tmp_path):
    """A 2-process gloo run through torchrun: both ranks train, rank 0 writes the experiment."""
    gsc_dir, manifests = gsc35
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "speechedge", "train", "kws-fewshot", "--exp-dir", str(tmp_path / "exp")]
    for o in _tiny_overrides(gsc_dir, manifests, ["steps=2", "eval_every=2"]):
        args += ["--set", o]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = json.loads((tmp_path / "exp" / "env.json").read_text())
    assert env["world_size"] == 2
    assert torch.load(tmp_path / "exp" / "checkpoint-latest.pt", weights_only=True)["step"] == 2


@pytest.mark.slow
def test_supervised_kws_recipe(gsc35, tmp_path):
    from speechedge.recipes.kws import KWSConfig, train

    gsc_dir, manifests = gsc35
    cfg = load_config(KWSConfig, None, [
        f"train_manifest={manifests / 'gsc12_train.jsonl'}", f"val_manifest={manifests / 'gsc12_val.jsonl'}",
        f"test_manifest={manifests / 'gsc12_test.jsonl'}", f"noise_dir={gsc_dir / '_background_noise_'}",
        "epochs=2", "batch_size=16", "warmup_epochs=1", "tau=1.5", "threads=1"])
    record = train(cfg, tmp_path / "exp")
    rows = [json.loads(line) for line in (tmp_path / "exp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows[:2]] == [1, 2] and 0 <= record["test_acc"] <= 1
    state = torch.load(tmp_path / "exp" / "checkpoint-best.pt", weights_only=True)
    assert state["meta"]["vocab"] == sorted(["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
                                     "_unknown_", "_silence_"])
    # resuming a finished run trains nothing more and keeps the metrics
    train(cfg, tmp_path / "exp")
    assert len((tmp_path / "exp" / "metrics.jsonl").read_text().splitlines()) == len(rows) + 1


def test_lr_schedule_warmup_then_cosine():
    from speechedge.recipes.kws import KWSConfig, _lr_at

    cfg = KWSConfig(epochs=10, warmup_epochs=2, lr=0.1)
    lrs = [_lr_at(s, 10, cfg) for s in range(100)]
    assert abs(lrs[19] - 0.1) < 1e-12 and lrs[0] == 0.1 / 20
    assert all(a <= b for a, b in zip(lrs[:20], lrs[1:20])) and all(a >= b for a, b in zip(lrs[20:], lrs[21:]))
    assert lrs[-1] < 0.001


@pytest.mark.slow
def test_bcresnet_converts_to_tflite_and_matches(tmp_path):
    """Conversion smoke test: every BC-ResNet op is expressible in TFLite, and fp32 output matches torch."""
    litert_torch = pytest.importorskip("litert_torch")
    from ai_edge_litert.interpreter import Interpreter

    torch.manual_seed(0)
    model = BCResNet(1, 12).eval()
    x = torch.randn(1, 1, 40, 101)
    litert_torch.convert(model, (x,)).export(str(tmp_path / "m.tflite"))
    it = Interpreter(model_path=str(tmp_path / "m.tflite"))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x.numpy())
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
    ref = model(x).detach().numpy()
    assert np.abs(y - ref).max() <= 1e-4 * np.ptp(ref)
    # short tensor names: a much smaller file computing exactly the same
    from speechedge.export.tflite_tools import strip_tensor_names
    from speechedge.runtime.tflite import TFLiteModel

    blob = (tmp_path / "m.tflite").read_bytes()
    small = strip_tensor_names(blob)
    assert len(small) < 0.6 * len(blob)
    np.testing.assert_array_equal(TFLiteModel(small)(x.numpy())[0], y)


def test_subspectral_norm_inference_form_equals_batch_norm_form():
    from speechedge.models.bcresnet import SubSpectralNorm

    torch.manual_seed(0)
    ssn = SubSpectralNorm(4, 5)
    for _ in range(3):  # gather running statistics
        ssn(torch.randn(8, 4, 20, 11) * 3 + 1)
    ssn.bn.weight.data.uniform_(0.5, 2)
    ssn.bn.bias.data.uniform_(-1, 1)
    ssn.eval()
    x = torch.randn(2, 4, 20, 11)
    ref = ssn.bn(x.reshape(2, 20, 4, 11)).reshape(2, 4, 20, 11)  # the training-form computation
    torch.testing.assert_close(ssn(x), ref, atol=1e-5, rtol=1e-5)


def _random_stats_encoder(tau: float, n_mels: int = 40, blocks=(2, 2, 4, 4), act: str = "silu") -> BCResNet:
    """An embedding BC-ResNet with random batch-norm statistics (so that no layer is an identity), frozen."""
    from speechedge.models.bcresnet import freeze_for_export
    from speechedge.models.kws import _Embedder

    torch.manual_seed(0)
    net = BCResNet(tau, 0, n_mels=n_mels, blocks=blocks, act=act)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    return freeze_for_export(_Embedder(net), torch.zeros(1, 1, n_mels, 101)).encoder


@pytest.mark.parametrize("tau,chunk,n_mels,blocks,act", [(1, 10, 40, (2, 2, 4, 4), "silu"),
                                                          (1.5, 7, 40, (2, 2, 4, 4), "silu"),
                                                          (1, 1, 40, (2, 2, 4, 4), "silu"),
                                                          (1, 10, 80, (2, 2, 4, 4), "silu"),
                                                          (1, 10, 40, (1, 1, 1, 1), "relu"),
                                                          (1, 3, 40, (1, 2, 1, 3), "relu")])
def test_streaming_bcresnet_equals_the_network_over_the_same_frames(tau, chunk, n_mels, blocks, act):
    """Chunk by chunk with explicit state, the embedding equals the non-streaming network's neck output averaged
    over the same window of a longer input (once past the warm-up), whatever the chunk size and the number of
    blocks; the output lags by half the temporal receptive field."""
    from speechedge.models.bcresnet_stream import StreamingBCResNet, context_embeddings, lag_frames

    enc = _random_stats_encoder(tau, n_mels, blocks, act)  # 80 mels: the neck leaves 6 bands, pooled too
    window, total = 101, 300
    x = torch.randn(1, 1, n_mels, total)
    s = StreamingBCResNet(enc, n_mels, window, chunk)
    assert s.lag_frames == lag_frames(enc) == 2 + sum(n * 2**stage for stage, n in enumerate(blocks)) + 2
    state, checked = s.init_state(), 0
    assert {k: tuple(v.shape) for k, v in state.items()} == s.state_shapes()
    with torch.no_grad():
        for i in range(0, total - chunk + 1, chunk):
            out = s(x[..., i: i + chunk], **state)
            assert set(out) == {"embedding", *state}
            state = {k: out[k] for k in state}
            n = i + chunk
            start = n - s.lag_frames - window
            if start >= s.lag_frames:
                ref = context_embeddings(enc, x[..., :n], start, window)
                torch.testing.assert_close(out["embedding"], ref, atol=1e-5, rtol=1e-5)
                checked += 1
    assert checked >= (total - 3 * 58 - window) // chunk
    # and it is not the zero-padded window: the context changes the embedding
    with torch.no_grad():
        isolated = enc.embed(x[..., start: start + window])
    assert (isolated - ref).abs().max() > 1e-3


def test_streaming_bcresnet_step_converts_to_tflite_with_named_state(tmp_path):
    pytest.importorskip("litert_torch")
    import collections

    import litert_torch

    from speechedge.models.bcresnet_stream import StreamingBCResNet
    from speechedge.runtime.tflite import TFLiteModel

    enc = _random_stats_encoder(1)
    s = StreamingBCResNet(enc, 40, 101, 10)
    example = {"feats": torch.zeros(1, 1, 40, 10), **s.init_state()}
    litert_torch.convert(s, sample_kwargs=example).export(str(tmp_path / "s.tflite"))
    m = TFLiteModel(tmp_path / "s.tflite")
    assert set(m.input_names) == {"feats", *s.state_shapes()} and set(m.output_names) == {"embedding", *s.state_shapes()}
    ops = collections.Counter(o["op_name"] for o in m.it._get_ops_details())
    # state kept channels-last and the frequency means taken channels-last: the converter's transposes cancel
    assert "TRANSPOSE" not in ops, ops
    x = torch.randn(1, 1, 40, 250)
    ts, tf = s.init_state(), {k: v.numpy() for k, v in s.init_state().items()}
    with torch.no_grad():
        for i in range(0, 250, 10):
            a = s(x[..., i: i + 10], **ts)
            b = m.run({"feats": x[..., i: i + 10].numpy(), **tf})
            ts, tf = {k: a[k] for k in ts}, {k: b[k] for k in tf}
            np.testing.assert_allclose(b["embedding"], a["embedding"].numpy(), atol=1e-5)


@pytest.mark.slow
def test_export_fp32_verified_and_failed_checks_write_nothing(gsc35, tmp_path):
    pytest.importorskip("litert_torch")
    from speechedge.export.kws import ExportError, export_kws
    from speechedge.recipes.kws_fewshot import FewShotConfig, train
    from speechedge.runtime.tflite import TFLiteModel

    gsc_dir, manifests = gsc35
    exp = tmp_path / "exp"
    train(load_config(FewShotConfig, None, _tiny_overrides(gsc_dir, manifests, ["steps=2", "eval_every=2"])), exp)
    out = tmp_path / "export"
    report = export_kws(exp, out, invokes=50, num_held_out=40)
    assert report["passed"] and report["kind"] == "embedding"
    fp = report["models"]["fp32"]
    # the precision check is the 1e-4 error bound; this 2-step model's embeddings are nearly constant (1e-5),
    # so float rounding can flip an exact tie in one of the 1,000 episode decisions
    assert fp["max_err_rel_to_range"] <= 1e-4 and fp["decision_agreement"] >= 0.99 and fp["median_invoke_ms"] > 0
    for name in ("model_fp32.tflite", "frontend.json", "report.json", "background.npy", "level.json"):
        assert (out / name).exists(), name
    # the input level: the 10th percentile of the held-out clips' peak frame energy (a speech level, not silence)
    from speechedge.features import InputLevel

    level = InputLevel.load(out / "level.json")
    assert report["input_level"] == level.to_dict() and 15 < level.target_db < 45 and level.max_gain_db == 40
    assert level.window_s == 2.0
    # a lean graph: SubSpectralNorm frozen to constants, so no layout or broadcast traffic (before: 17
    # TRANSPOSE, 8 BROADCAST_TO, 9 RESHAPE in BC-ResNet-1); one TRANSPOSE is the NCHW input itself
    from collections import Counter

    ops = Counter(o["op_name"] for o in TFLiteModel(out / "model_fp32.tflite").it._get_ops_details()
                  if o["op_name"] != "DELEGATE")  # the XNNPACK delegate node the interpreter adds
    assert "BROADCAST_TO" not in ops and ops["TRANSPOSE"] <= 1 and ops["RESHAPE"] <= 1, ops
    assert set(ops) <= {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "MEAN", "LOGISTIC", "PAD", "RESHAPE",
                        "TRANSPOSE"}, ops
    # the files beside the model reproduce the features: Numba frontend + TFLite = PyTorch embedding
    from speechedge.features import FrontendConfig
    from speechedge.kernels import log_mel
    from speechedge.training.kws_data import load_manifest_clips
    from speechedge.recipes.kws_fewshot import load_model

    cfg = FrontendConfig.load(out / "frontend.json")
    clips = load_manifest_clips(manifests / "splitgsc_val.jsonl")
    audio = clips.batch([0]).numpy()
    emb = TFLiteModel(out / "model_fp32.tflite")(log_mel(audio, cfg)[:, None])[0]
    model, _ = load_model(exp)
    with torch.no_grad():
        ref = model(model.features(torch.from_numpy(audio))).numpy()
    np.testing.assert_allclose(emb, ref, atol=1e-4 * np.ptp(ref) + 1e-5)
    # a failed check (an impossible flash budget) raises and leaves the previous export untouched
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ExportError, match="flash budget") as refused:
        export_kws(exp, out, target="mcu", flash_kb=1, invokes=20, num_held_out=20, num_calibration=20)
    assert sorted(p.name for p in out.iterdir()) == before
    # refused or not, the MCU figures are measured and reported: TFLM (the real microcontroller interpreter)
    # ran the int8 model; the static activation estimate is TFLM's arena head, and the persistent tail is
    # what it leaves out
    mcu = refused.value.report["mcu"]
    assert '"tflm_arena_bytes"' in str(refused.value) and "tflm_ops" in refused.value.report["checks"]
    assert mcu["tflm_arena_bytes"] == mcu["tflm_arena_head_bytes"] + mcu["tflm_arena_tail_bytes"]
    assert abs(mcu["tflm_arena_head_bytes"] - mcu["peak_activation_bytes"]) <= 64
    assert mcu["tflm_arena_tail_bytes"] > 0 and mcu["tflm_vs_litert_max_lsb"] <= 32
    # the streaming step model in int8 too: measured against its fp32 step model, checked against the budgets
    # and allocated by TFLM; every state buffer reads back with the quantization it was written with (one range
    # per buffer and whatever the quantizer ties to it)
    s8 = refused.value.report["stream"]["int8"]
    assert s8["ranges"] == "mse" and s8["weights"] == "tensor" and not s8["tflm_ops_missing"]
    checks = refused.value.report["checks"]
    assert checks["stream_int8_decision_agreement>=0.98"] == (s8["decision_agreement"] >= 0.98)
    assert checks["stream_flash_within_budget"] is False and "stream_int8 model is" in str(refused.value)
    assert s8["tflm_arena_bytes"] == s8["tflm_arena_head_bytes"] + s8["tflm_arena_tail_bytes"] > 0
    assert s8["state_tensors_with_equal_in_out_quantization"] == 27  # every buffer reads back as it was written
    # TFLM and LiteRT agree on the step model too (the same raw int8 inputs of held-out streams, every output)
    assert 0 <= s8["tflm_vs_litert_max_lsb"] <= 32
    assert not list(tmp_path.glob(".export.*")), "no temporary export folder left behind"
    # fallback_phone: the same refusal writes the phone export instead (fp32 only, from the same conversion),
    # with the int8 measurements and failed checks under int8_refused; it needs target="mcu"
    phone = tmp_path / "phone"
    r = export_kws(exp, phone, target="mcu", flash_kb=1, invokes=20, num_held_out=20, num_calibration=20,
                   fallback_phone=True)
    names = {p.name for p in phone.iterdir()}
    assert {"model_fp32.tflite", "stream_fp32.tflite", "report.json"} <= names
    assert not names & {"model_int8.tflite", "stream_int8.tflite", "kws_model.h", "kws_stream_model.h"}
    assert r["target"] == "phone" and r["passed"] and set(r["models"]) == {"fp32"} and "int8" not in r["stream"]
    assert all(r["checks"].values()) and "stream_flash_within_budget" in r["int8_refused"]["failed_checks"]
    assert r["int8_refused"]["stream_int8"]["decision_agreement"] == pytest.approx(s8["decision_agreement"])
    assert json.loads((phone / "report.json").read_text())["int8_refused"]["failed_checks"] == \
        r["int8_refused"]["failed_checks"]
    with pytest.raises(ValueError, match="fallback_phone goes with target='mcu'"):
        export_kws(exp, tmp_path / "nothing", fallback_phone=True)


@pytest.mark.slow
def test_the_microcontroller_architecture_streams_in_a_32_kb_tflm_arena(gsc35, tmp_path):
    """BC-ResNet-1 with one block per stage and ReLU (``blocks = 1,1,1,1``, ``block_act = relu``) trains, travels
    through its checkpoint, and exports a streaming int8 step model that TensorFlow Lite Micro itself runs in a
    32 KB arena (BC-ResNet-1 with the reference's 12 blocks needs ~61 KB); with ``mcu_model="stream"`` the window
    model's flash and arena are measured and reported but are not budget checks."""
    pytest.importorskip("litert_torch")
    pytest.importorskip("tflite_micro")
    from speechedge.export import ExportError
    from speechedge.export.kws import export_kws
    from speechedge.recipes.kws_fewshot import FewShotConfig, load_model, train

    gsc_dir, manifests = gsc35
    train(load_config(FewShotConfig, None, _tiny_overrides(gsc_dir, manifests, [
        "steps=2", "eval_every=2", "blocks=1,1,1,1", "block_act=relu"])), tmp_path / "exp")
    model, cfg = load_model(tmp_path / "exp")
    assert model.encoder.blocks == (1, 1, 1, 1) and model.encoder.act == "relu" and cfg.blocks == (1, 1, 1, 1)
    assert not any(isinstance(m, torch.nn.SiLU) for m in model.modules())
    try:
        report = export_kws(tmp_path / "exp", tmp_path / "out", target="mcu", ram_kb=32, mcu_model="stream",
                            invokes=20, num_held_out=40, num_calibration=40)
    except ExportError as e:  # a 2-step model may miss the int8 accuracy budget; never the memory budgets
        report = e.report
        assert "arena" not in str(e).split("\nreport:")[0] and "flash" not in str(e).split("\nreport:")[0], e
    s8, checks = report["stream"]["int8"], report["checks"]
    assert checks["stream_tflm_ops"] and checks["stream_arena_within_budget"] and checks["stream_flash_within_budget"]
    assert s8["tflm_arena_bytes"] <= 32 * 1024 and s8["flash_bytes"] <= 32 * 1024, s8
    assert s8["state_tensors_with_equal_in_out_quantization"] == 11  # stem, 4 x (ring buffer, delay line), neck, pool
    # the window model is measured (over 32 KB of activations alone) but not checked against the budgets
    assert report["mcu"]["budget_checked"] is False and "arena_within_budget" not in checks
    assert report["mcu"]["tflm_arena_bytes"] > 32 * 1024
    with pytest.raises(ValueError, match="mcu-model"):
        export_kws(tmp_path / "exp", tmp_path / "out2", target="mcu", mcu_model="window")
    with pytest.raises(ValueError, match="mcu-model"):  # only with --target mcu
        export_kws(tmp_path / "exp", tmp_path / "out2", mcu_model="stream")



@pytest.mark.slow
def test_non_default_frontend_travels_from_training_to_export_and_runtime(gsc35, tmp_path):
    """80 mels, 20 ms hop, 0.8 s clips: the checkpoint, the export and the runtime all use them, and the
    runtime (Numba frontend + TFLite) reproduces the PyTorch embedding computed from the same audio."""
    pytest.importorskip("litert_torch")
    from speechedge.export.kws import export_kws
    from speechedge.features import FrontendConfig
    from speechedge.recipes.kws_fewshot import FewShotConfig, load_model, train
    from speechedge.runtime import KWSModel

    gsc_dir, manifests = gsc35
    sets = ["steps=2", "eval_every=2", "clip_s=0.8", "frontend.n_mels=80", "frontend.hop_length=320",
            "frontend.win_length=640", "frontend.n_fft=1024"]
    train(load_config(FewShotConfig, None, _tiny_overrides(gsc_dir, manifests, sets)), tmp_path / "exp")
    fe = FrontendConfig.kws(n_mels=80, hop_length=320, win_length=640, n_fft=1024)
    model, cfg = load_model(tmp_path / "exp")
    assert model.frontend.config == cfg.frontend == fe and model.clip_samples == 12800
    report = export_kws(tmp_path / "exp", tmp_path / "out", invokes=20, num_held_out=30)
    assert report["input_shape"] == [1, 80, 41] and report["models"]["fp32"]["max_err_rel_to_range"] <= 1e-4
    rt = KWSModel(tmp_path / "out")
    assert rt.frontend == fe and rt.clip_samples == 12800
    audio = np.random.default_rng(0).standard_normal(15000).astype(np.float32) * 0.1  # cropped to 0.8 s
    with torch.no_grad():
        ref = model(model.features(torch.from_numpy(rt.fit_length(audio))[None]))[0].numpy()
    np.testing.assert_allclose(rt.embed(audio), ref, atol=1e-4 * np.ptp(ref) + 1e-5)


@pytest.mark.slow
def test_export_refuses_an_out_folder_it_did_not_write(kws_export, tmp_path, monkeypatch):
    """--out on user files, on the experiment itself or on an ancestor of the working directory is refused
    before any work, and nothing there is touched."""
    from speechedge.export import ExportError
    from speechedge.export.kws import export_kws

    exp, _ = kws_export
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not a previous export"):
        export_kws(exp, user, invokes=5, num_held_out=10)
    assert (user / "notes.txt").read_text() == "keep me"
    before = sorted(p.name for p in exp.iterdir())
    with pytest.raises(ExportError, match="experiment folder"):
        export_kws(exp, exp, invokes=5, num_held_out=10)
    assert sorted(p.name for p in exp.iterdir()) == before
    monkeypatch.chdir(user)
    with pytest.raises(ExportError, match="working directory"):
        export_kws(exp, tmp_path, invokes=5, num_held_out=10)
    assert (user / "notes.txt").exists()
    # a background-speech manifest that is not there is named before any conversion, and nothing is written
    with pytest.raises(ExportError, match=r"nowhere\.jsonl: no such manifest .*--background-manifest"):
        export_kws(exp, tmp_path / "bg", invokes=5, num_held_out=10, background_manifest=str(tmp_path / "nowhere.jsonl"))
    assert not (tmp_path / "bg").exists()


def test_firmware_header_reproduces_the_frontend_in_cpp(tmp_path):
    """The header/source a firmware engineer gets: compiled with g++, a naive C++ log-mel written only from
    the header's constants and arrays equals the toolkit's Numba frontend, and with the header's input level
    constants the runtime's level normalization; shapes and quantization are stated."""
    import shutil
    import subprocess

    if shutil.which("g++") is None:
        pytest.skip("g++ not installed (setup.sh installs it)")
    from speechedge.export.tflite_tools import firmware_files
    from speechedge.features import FrontendConfig
    from speechedge.kernels import log_mel
    from speechedge.pretrained import pretrained_dir

    fe = FrontendConfig.kws()
    model = (pretrained_dir() / "model_fp32.tflite").read_bytes()
    from speechedge.features import InputLevel

    header, source = firmware_files(model, "kws_model", fe, arena_bytes=12345, arena_source="test",
                                    level=InputLevel(28.5))
    assert "kws_model_arena_bytes = 12345" in header and "kws_model_input_dims[4] = {1, 1, 40, 101}" in header
    assert "KWS_MODEL_LEVEL_TARGET_DB = 28.5f" in header and "KWS_MODEL_LEVEL_MAX_GAIN_DB = 40.0f" in header
    assert "KWS_MODEL_LEVEL_MIN_RANGE_DB = 10.0f" in header
    (tmp_path / "kws_model.h").write_text(header)
    (tmp_path / "kws_model.cc").write_text(source)
    (tmp_path / "main.cc").write_text(r'''
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>
#include "kws_model.h"
int main(int argc, char**) {
  std::vector<float> x;
  float v;
  while (std::scanf("%f", &v) == 1) x.push_back(v);
  const int n = KWS_MODEL_N_FFT, hop = KWS_MODEL_HOP_LENGTH, frames = 1 + (int)x.size() / hop;
  std::vector<double> mels;  // frame by frame
  for (int t = 0; t < frames; ++t) {
    std::vector<double> power(n / 2 + 1);
    for (int k = 0; k <= n / 2; ++k) {
      double re = 0, im = 0;
      for (int i = 0; i < n; ++i) {
        long s = (long)t * hop - n / 2 + i;
        double xi = (s >= 0 && s < (long)x.size()) ? x[s] * kws_model_window[i] : 0.0;
        re += xi * std::cos(2 * M_PI * k * i / n);
        im -= xi * std::sin(2 * M_PI * k * i / n);
      }
      power[k] = re * re + im * im;
    }
    for (int m = 0; m < KWS_MODEL_N_MELS; ++m) {
      double mel = 0;
      for (int j = kws_model_mel_offsets[m]; j < kws_model_mel_offsets[m + 1]; ++j)
        mel += kws_model_mel_weights[j] * power[kws_model_mel_first_bin[m] + j - kws_model_mel_offsets[m]];
      mels.push_back(mel);
    }
  }
  double gain = 1.0;  // with an argument: the input level normalization over the whole input, from the header
  if (argc > 1) {
    std::vector<double> energy(frames, 0.0);
    for (int t = 0; t < frames; ++t)
      for (int m = 0; m < KWS_MODEL_N_MELS; ++m) energy[t] += mels[t * KWS_MODEL_N_MELS + m];
    std::vector<double> sorted = energy;
    std::sort(sorted.begin(), sorted.end());
    const double peak = sorted.back(), floor10 = sorted[(frames - 1) / 10];
    const double target = std::pow(10.0, KWS_MODEL_LEVEL_TARGET_DB / 10.0);
    const bool speech = floor10 <= 0 || peak >= floor10 * std::pow(10.0, KWS_MODEL_LEVEL_MIN_RANGE_DB / 10.0);
    if (speech && peak > 0 && peak < target)
      gain = std::fmin(target / peak, std::pow(10.0, KWS_MODEL_LEVEL_MAX_GAIN_DB / 10.0));
  }
  for (double mel : mels) std::printf("%.6f\n", std::log(gain * mel + (double)KWS_MODEL_LOG_FLOOR));
  return 0;
}
''')
    subprocess.run(["g++", "-O2", "-std=c++17", "-o", str(tmp_path / "fe"), str(tmp_path / "main.cc"),
                    str(tmp_path / "kws_model.cc")], check=True, capture_output=True)
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(4000) / 16000)
             + np.random.default_rng(0).normal(0, 0.05, 4000)).astype(np.float32)
    # and near-silence, where mel energies are near the floor: ln(mel + floor) is not ln(max(mel, floor))
    audio = np.concatenate([audio, np.random.default_rng(1).normal(0, 3e-5, 3200).astype(np.float32)])
    out = subprocess.run([str(tmp_path / "fe")], input="\n".join(f"{a:.9g}" for a in audio), text=True,
                         capture_output=True, check=True).stdout
    cpp = np.array(out.split(), np.float64).reshape(-1, fe.n_mels).T
    ref = log_mel(audio, fe)
    assert cpp.shape == ref.shape
    np.testing.assert_allclose(cpp, ref, atol=2e-3)
    # the header's input level normalization, on the same input 30 dB quieter: the runtime's numbers
    quiet = 0.03 * audio
    out = subprocess.run([str(tmp_path / "fe"), "level"], input="\n".join(f"{a:.9g}" for a in quiet), text=True,
                         capture_output=True, check=True).stdout
    cpp = np.array(out.split(), np.float64).reshape(-1, fe.n_mels).T
    ref = InputLevel(28.5).apply(log_mel(quiet, fe), fe.log_floor)
    assert np.abs(ref - log_mel(quiet, fe)).max() > 1  # the normalization did something
    np.testing.assert_allclose(cpp, ref, atol=2e-2)
    # steady noise alone is not speech: no gain, in C++ as in the runtime
    noise = np.random.default_rng(2).normal(0, 1e-3, 8000).astype(np.float32)
    out = subprocess.run([str(tmp_path / "fe"), "level"], input="\n".join(f"{a:.9g}" for a in noise), text=True,
                         capture_output=True, check=True).stdout
    cpp = np.array(out.split(), np.float64).reshape(-1, fe.n_mels).T
    np.testing.assert_allclose(cpp, log_mel(noise, fe), atol=2e-3)
    np.testing.assert_array_equal(InputLevel(28.5).apply(log_mel(noise, fe), fe.log_floor), log_mel(noise, fe))


def test_firmware_header_of_the_streaming_model_states_its_state_table(tmp_path):
    """The streaming step model's header, compiled with g++: its state table (name, interpreter input and output
    index, bytes, quantization) equals what the model and stream.json say, so firmware can bind the state by
    index and copy it back after every invoke."""
    import json
    import shutil
    import subprocess

    if shutil.which("g++") is None:
        pytest.skip("g++ not installed (setup.sh installs it)")
    from speechedge.export.tflite_tools import firmware_files
    from speechedge.features import FrontendConfig
    from speechedge.pretrained import pretrained_dir
    from speechedge.runtime.tflite import TFLiteModel

    folder = pretrained_dir()
    spec = json.loads((folder / "stream.json").read_text())
    model = (folder / "stream_fp32.tflite").read_bytes()
    header, source = firmware_files(model, "kws_stream_model", FrontendConfig.kws(), arena_bytes=4321,
                                    arena_source="test", stream=spec)
    assert f"KWS_STREAM_MODEL_CHUNK_FRAMES = {spec['chunk_frames']}" in header
    (tmp_path / "kws_stream_model.h").write_text(header)
    (tmp_path / "kws_stream_model.cc").write_text(source)
    (tmp_path / "main.cc").write_text(r'''
#include <cstdio>
#include "kws_stream_model.h"
int main() {
  std::printf("%d %d %zu\n", kws_stream_model_feats_input, kws_stream_model_embedding_output, kws_stream_model_len);
  for (int i = 0; i < kws_stream_model_num_state; ++i) {
    const auto& s = kws_stream_model_state[i];
    std::printf("%s %d %d %d\n", s.name, s.input, s.output, s.bytes);
  }
  return 0;
}
''')
    subprocess.run(["g++", "-O0", "-std=c++17", "-o", str(tmp_path / "st"), str(tmp_path / "main.cc"),
                    str(tmp_path / "kws_stream_model.cc")], check=True, capture_output=True)
    lines = subprocess.run([str(tmp_path / "st")], text=True, capture_output=True, check=True).stdout.splitlines()
    net = TFLiteModel(model)
    in_pos = {d["index"]: i for i, d in enumerate(net.inputs)}
    out_pos = {d["index"]: i for i, d in enumerate(net.outputs)}
    assert lines[0] == f"{in_pos[net._in['feats']['index']]} {out_pos[net._out['embedding']['index']]} {len(model)}"
    table = [line.split() for line in lines[1:]]
    assert [t[0] for t in table] == [s["name"] for s in spec["state"]]
    for (name, i, o, nbytes), s in zip(table, spec["state"]):
        assert int(i) == in_pos[net._in[name]["index"]] and int(o) == out_pos[net._out[name]["index"]]
        assert int(nbytes) == 4 * int(np.prod(s["shape"]))  # float32 here; int8 models state 1 byte per value


def _report(v: int) -> str:
    return json.dumps({"exp_dir": "exp", "kind": "embedding", "models": {}, "v": v})


def test_replace_folder_swaps_atomically(tmp_path, monkeypatch):
    """The new export replaces the old in one renameat2(RENAME_EXCHANGE): the folder is never missing or half
    written (observed from inside the swap); without the exchange, the rename-aside fallback ends the same."""
    import speechedge.export as ex

    out = tmp_path / "export"
    ex.replace_folder(out, lambda d: (d / "report.json").write_text(_report(1)))
    seen = []
    real = ex._exchange

    def watching(a, b):
        ok = real(a, b)
        seen.append((ok, (out / "report.json").read_text()))  # right after the swap: complete, new
        return ok

    monkeypatch.setattr(ex, "_exchange", watching)
    ex.replace_folder(out, lambda d: (d / "report.json").write_text(_report(2)))
    assert seen == [(True, _report(2))]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # the old export is gone, nothing stray
    monkeypatch.setattr(ex, "_exchange", lambda a, b: False)  # a filesystem without the exchange
    ex.replace_folder(out, lambda d: (d / "report.json").write_text(_report(3)))
    assert (out / "report.json").read_text() == _report(3) and sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_only_a_previous_export_is_replaced(tmp_path):
    """A folder is replaced only when it is a previous export: its report.json an export's report and nothing
    in it that an export does not write. A stray report.json beside user files, a folder holding the
    experiment, and a symbolic link are refused, and nothing in them is touched."""
    import speechedge.export as ex
    from speechedge.export import ExportError, check_out_dir, replace_folder

    proj = tmp_path / "proj"
    (proj / "exp").mkdir(parents=True)
    (proj / "report.json").write_text('{"q": 1}')
    (proj / "thesis.tex").write_text("keep me")
    before = sorted(p.name for p in proj.iterdir())
    with pytest.raises(ExportError, match="contains the experiment"):
        check_out_dir(proj, proj / "exp")
    with pytest.raises(ExportError, match=r"not a previous export \(holds exp, thesis\.tex\)"):
        replace_folder(proj, lambda d: (d / "report.json").write_text(_report(1)))
    assert sorted(p.name for p in proj.iterdir()) == before and (proj / "thesis.tex").read_text() == "keep me"
    (proj / "thesis.tex").unlink()
    (proj / "exp").rmdir()
    with pytest.raises(ExportError, match="not a previous export"):  # only a report.json, not an export's
        check_out_dir(proj)
    (proj / "report.json").write_text(_report(1))
    (proj / "model_fp32.tflite").write_bytes(b"m")
    assert check_out_dir(proj) == proj  # a previous export
    (tmp_path / "link").symlink_to(proj)
    with pytest.raises(ExportError, match="symbolic link"):
        check_out_dir(tmp_path / "link")
    assert ex._not_export_files(proj) == []


def test_re_export_keeps_the_enrolled_keywords(tmp_path):
    """Re-exporting never drops keywords.json: kept as is when the model is the same, set aside as
    keywords.previous-model.json (with a warning to re-enrol) when it changed. The new folder is readable by
    others as any new folder (not mkdtemp's 0700)."""
    import os

    from speechedge.export import replace_folder

    out = tmp_path / "export"

    def export(model: bytes):
        def write(d):
            (d / "report.json").write_text(_report(1))
            (d / "model_fp32.tflite").write_bytes(model)
        replace_folder(out, write)

    export(b"A")
    (out / "keywords.json").write_text('{"jupiter": {}}')
    export(b"A")
    assert (out / "keywords.json").read_text() == '{"jupiter": {}}'
    export(b"B")
    assert not (out / "keywords.json").exists()
    assert (out / "keywords.previous-model.json").read_text() == '{"jupiter": {}}'
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask


def test_manifest_clips_are_memory_mapped_from_a_cache_built_once(gsc35, tmp_path, monkeypatch):
    """The first load decodes into the cache file; later loads memory-map it (no decoding: reading a clip
    file is not even attempted) and give the same clips, also through another manifest of the same clips (a
    per-experiment copy); an unreadable clip is skipped in both; other rows, or an audio file rewritten in
    place, get a new cache entry."""
    from speechedge.training import kws_data
    from speechedge.training.kws_data import load_manifest_clips

    monkeypatch.setenv("SPEECHEDGE_CACHE", str(tmp_path / "cache"))
    _, manifests = gsc35
    man = tmp_path / "m.jsonl"
    lines = (manifests / "splitgsc_val.jsonl").read_text().splitlines()
    bad = json.loads(lines[0])
    bad["id"], bad["path"] = "x/broken", str(tmp_path / "broken.wav")
    (tmp_path / "broken.wav").write_text("not audio")
    man.write_text("\n".join(lines + [json.dumps(bad)]) + "\n")
    first = load_manifest_clips(man)
    plain = load_manifest_clips(man, cache=False)
    assert isinstance(first.audio, np.memmap) and len(first) == len(lines) == len(plain)
    np.testing.assert_array_equal(first.audio, plain.audio)
    assert first.labels == plain.labels and first.speakers == plain.speakers
    monkeypatch.setattr(kws_data, "read_audio", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    again = load_manifest_clips(man)
    np.testing.assert_array_equal(again.audio, plain.audio)
    assert isinstance(again.batch([0, 2]), torch.Tensor) and again.batch([0, 2]).shape == (2, 16000)
    copy = tmp_path / "episodes_tag2.jsonl"
    copy.write_text(man.read_text())
    np.testing.assert_array_equal(load_manifest_clips(copy).audio, plain.audio)  # same clips: no decoding
    monkeypatch.undo()
    monkeypatch.setenv("SPEECHEDGE_CACHE", str(tmp_path / "cache"))
    man.write_text("\n".join(lines[:3]) + "\n")
    assert len(load_manifest_clips(man)) == 3
    assert len(list((tmp_path / "cache").glob("m-*.npy"))) == 2 and not list((tmp_path / "cache").glob(".*"))
    first_clip = Path(json.loads(lines[0])["path"])
    first_clip = first_clip if first_clip.is_absolute() else manifests / first_clip
    st = first_clip.stat()
    os.utime(first_clip, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # re-synthesized in place
    assert len(load_manifest_clips(man)) == 3
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3


def test_the_shipped_microcontroller_model_streams_in_tflm_within_32_kb(tmp_path):
    """``kws_mcu``: its int8 step model uses only TensorFlow Lite Micro ops, TFLM itself allocates at most 32 KB
    for it (the arena its header states), the firmware C array compiled with g++ holds exactly the shipped
    model's bytes, and the host runtime finds it by name, enrols and embeds with it in streaming mode."""
    import json
    import shutil
    import subprocess

    pytest.importorskip("tflite_micro")
    from speechedge.export.tflite_tools import check_tflm_ops, tflm_run
    from speechedge.pretrained import KWS_MCU, resolve_model
    from speechedge.runtime import KWSModel

    folder = resolve_model(KWS_MCU)
    blob = (folder / "stream_int8.tflite").read_bytes()
    assert not check_tflm_ops(blob)
    arena = tflm_run(blob, None)["arena_bytes"]
    header = (folder / "kws_stream_model.h").read_text()
    assert arena <= 32 * 1024 and f"kws_stream_model_arena_bytes = {arena};" in header
    assert len(blob) <= 32 * 1024 and json.loads((folder / "report.json").read_text())["passed"]
    if shutil.which("g++"):
        (tmp_path / "main.cc").write_text(r'''
#include <cstdio>
#include "kws_stream_model.h"
int main() { std::fwrite(kws_stream_model, 1, kws_stream_model_len, stdout); return 0; }
''')
        subprocess.run(["g++", "-O0", "-std=c++17", f"-I{folder}", "-o", str(tmp_path / "dump"),
                        str(tmp_path / "main.cc"), str(folder / "kws_stream_model.cc")], check=True, capture_output=True)
        assert subprocess.run([str(tmp_path / "dump")], capture_output=True, check=True).stdout == blob
    m = KWSModel(folder, mode="stream", keywords_file=tmp_path / "keywords.json")
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(16000)).astype(np.float32) for _ in range(3)]
    m.enroll("noise", clips)
    assert m.embed(clips[0]).shape == (32,) and (tmp_path / "keywords.json").exists()
    assert not (folder / "keywords.json").exists()  # a shipped folder is never written


@pytest.mark.parametrize("name,precision", [("kws_mcu", "int8"), ("kws_mcu", "fp32"), ("kws_fewshot", "fp32")])
def test_stepping_with_raw_state_equals_stepping_with_float_state(name, precision):
    """The detector carries a step model's state in the model's own types (int8 for an int8 model) instead of
    dequantizing and requantizing it around every invoke: the embeddings and the state are the same."""
    import json

    from speechedge.pretrained import resolve_model
    from speechedge.runtime.kws import StreamStep
    from speechedge.runtime.tflite import TFLiteModel, dequantize

    folder = resolve_model(name)
    step = StreamStep(TFLiteModel(folder / f"stream_{precision}.tflite"), json.loads((folder / "stream.json").read_text()))
    feats = np.random.default_rng(0).normal(-6, 3, (40, 10 * step.chunk)).astype(np.float32)
    state, raw = step.init_state(), step.init_raw()
    assert all(raw[k].dtype == (np.int8 if precision == "int8" else np.float32) for k in raw)
    for i in range(0, feats.shape[1], step.chunk):
        e, state = step.step(feats[:, i: i + step.chunk], state)
        e_raw, raw = step.step_raw(feats[:, i: i + step.chunk], raw)
        np.testing.assert_array_equal(e, e_raw)
        for k in state:
            np.testing.assert_array_equal(state[k], dequantize(raw[k], step.net._in[k]))


def test_a_stream_json_that_does_not_match_its_step_model_is_one_clear_error():
    import json

    from speechedge.pretrained import resolve_model
    from speechedge.runtime.kws import StreamStep
    from speechedge.runtime.tflite import TFLiteModel

    folder = resolve_model("kws_mcu")
    spec = json.loads((folder / "stream.json").read_text())
    renamed = json.loads(json.dumps(spec))
    renamed["state"][0]["name"] = "not_a_state"
    fewer = {**spec, "state": spec["state"][:-1]}  # a state input the detector would never set
    for bad in (renamed, fewer):
        with pytest.raises(ValueError, match=r"stream\.json: the step model's inputs .* re-run `speechedge export`"):
            StreamStep(TFLiteModel(folder / "stream_fp32.tflite"), bad, str(folder / "stream.json"))


def test_neighbours_fill_the_silence_around_the_word_and_leave_the_word_alone():
    """fill_with_neighbours: the word's samples unchanged, the silence before and after it holds another word's
    edge at a level near the word's, nothing at all with prob 0 (and no random draw changes the clips then)."""
    from speechedge.recipes.kws_fewshot import fill_with_neighbours, voiced_spans

    rng = np.random.default_rng(0)
    x = torch.zeros(4, 16000)
    for i in range(4):  # a 0.3 s "word" at a different place in each clip
        s = 3200 + 1920 * i  # whole 10 ms frames
        x[i, s: s + 4800] = torch.from_numpy(rng.normal(0, 0.1, 4800).astype(np.float32))
    donors = torch.from_numpy(rng.normal(0, 0.5, (3, 16000)).astype(np.float32)) * (torch.arange(16000) < 9000)
    assert voiced_spans(x)[1] == (5120, 9920) and voiced_spans(torch.zeros(1, 16000)) == [(0, 0)]
    # the same rule as trim_silence (one definition, speechedge.audio.voiced_frames), on real speech too
    from speechedge.audio import trim_silence

    speech = np.concatenate([np.zeros(2400), np.sin(np.arange(6000) / 5) * np.hanning(6000), np.zeros(7600)])
    speech = (speech * 0.3 + rng.normal(0, 1e-3, 16000)).astype(np.float32)
    for clip in [*x.numpy(), speech]:
        s, e = voiced_spans(torch.from_numpy(clip)[None])[0]
        np.testing.assert_array_equal(clip[s:e], trim_silence(clip))
    assert torch.equal(fill_with_neighbours(x, donors, np.random.default_rng(1), 0.0), x)
    y = fill_with_neighbours(x, donors, np.random.default_rng(1), 1.0)
    for i, (s, e) in enumerate(voiced_spans(x)):
        assert torch.equal(y[i, s:e], x[i, s:e])
        before, after = y[i, : s - 1280], y[i, e + 1280:]  # beyond the largest gap (80 ms)
        assert before.abs().min() > 0 and after.abs().min() > 0  # filled up to the window's edges
        ratio_db = 20 * torch.log10(before.pow(2).mean().sqrt() / x[i, s:e].pow(2).mean().sqrt())
        assert -7 < float(ratio_db) < 4
    # from the clips themselves: never a clip's own word next to it
    z = fill_with_neighbours(x, x, np.random.default_rng(2), 1.0, same=True)
    assert not torch.equal(z, x) and all(torch.equal(z[i, s:e], x[i, s:e]) for i, (s, e) in enumerate(voiced_spans(x)))


def test_same_voice_neighbours_are_the_speakers_own_other_words():
    """neighbours_voice = "same": each clip's neighbours are other words of its own speaker (a sentence's
    neighbours), placed where pairs say; a speaker with no other word gets none."""
    from speechedge.recipes.kws_fewshot import SameVoiceDonors, fill_with_neighbours
    from speechedge.training.kws_data import ClipSet

    rng = np.random.default_rng(0)
    audio = np.zeros((7, 16000), np.int16)
    for i in range(7):  # each clip's "word": a constant unique to the clip, in its middle
        audio[i, 6000:10000] = 1000 * (i + 1)
    labels = ["a", "b", "c", "a", "b", "a", "a"]
    speakers = ["s1", "s1", "s1", "s2", "s2", "s3", "s3"]
    clips = ClipSet(audio, labels, speakers)
    donors_of = SameVoiceDonors(clips)
    for _ in range(20):
        donors, pairs = donors_of.draw(["s1", "s2", "s3"], ["a", "a", "a"], rng)
        assert pairs.shape == (3, 2) and (pairs[2] == -1).all()  # s3 said only "a"
        rows = [int(round(float(donors[j].abs().max()) * 32768 / 1000)) - 1 for j in pairs[0]]
        assert set(rows) <= {1, 2}  # s1's other words ("b", "c"), never another speaker's, never its own word
        assert [int(round(float(donors[j].abs().max()) * 32768 / 1000)) - 1 for j in pairs[1]] == [4, 4]
    x = clips.batch([0, 3, 5])
    y = fill_with_neighbours(x, donors, np.random.default_rng(1), 1.0, pairs=pairs)
    assert not torch.equal(y[:2], x[:2]) and torch.equal(y[2], x[2])  # s3's clip keeps its silence
    assert torch.equal(y[:, 6000:10000], x[:, 6000:10000])


@pytest.mark.parametrize("voice", ["batch", "same"])
def test_fewshot_training_with_neighbours_runs_and_resumes_exactly(gsc35, tmp_path, killed_once_then_resumed, voice):
    from speechedge.recipes.kws_fewshot import FewShotConfig, train

    gsc_dir, manifests = gsc35
    cfg = load_config(FewShotConfig, None, _tiny_overrides(gsc_dir, manifests, [
        "steps=4", "eval_every=2", "neighbours_prob=0.5", f"neighbours_voice={voice}"]))
    train(cfg, tmp_path / "straight")
    killed_once_then_resumed(train, cfg, tmp_path / "resumed")
    assert_same_run(tmp_path / "straight", tmp_path / "resumed", 4, [2, 4])
    with pytest.raises(ValueError, match="neighbours_prob"):
        load_config(FewShotConfig, None, ["neighbours_prob=1.5"])
    with pytest.raises(ValueError, match="neighbours_voice"):
        load_config(FewShotConfig, None, ["neighbours_voice=other"])


@pytest.mark.slow
def test_fewshot_embedding_distillation_trains_its_map_resumes_exactly_and_keeps_it_out_of_the_model(
        gsc35, tmp_path, killed_once_then_resumed):
    """A small model distilled from a trained few-shot experiment: the linear map to the teacher's embedding is
    optimised and checkpointed (a killed run resumes with the same map), the KD loss is logged, and the map stays
    out of the best checkpoint and the model that evaluation and export load. A missing teacher, a teacher with
    other features, half a setting or a non-finite weight is refused naming the option, before training."""
    from speechedge.recipes.kws_fewshot import FewShotConfig, load_model, train

    gsc_dir, manifests = gsc35
    teacher = tmp_path / "teacher"
    train(load_config(FewShotConfig, None, _tiny_overrides(gsc_dir, manifests, ["steps=2", "eval_every=2",
                                                                                  "tau=1.5"])), teacher)
    small = ["steps=4", "eval_every=2", "blocks=1,1,1,1", "block_act=relu", f"teacher_exp_dir={teacher}",
             "kd_weight=2"]
    cfg = load_config(FewShotConfig, None, _tiny_overrides(gsc_dir, manifests, small))
    train(cfg, tmp_path / "straight")
    killed_once_then_resumed(train, cfg, tmp_path / "resumed")
    assert_same_run(tmp_path / "straight", tmp_path / "resumed", 4, [2, 4])
    latest = [torch.load(tmp_path / d / "checkpoint-latest.pt", weights_only=True) for d in ("straight", "resumed")]
    for k, v in latest[0]["modules"]["kd"].items():
        torch.testing.assert_close(latest[1]["modules"]["kd"][k], v, rtol=0, atol=0)
    rows = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["train_kd"]) and r["train_kd"] > 0 for r in rows)
    model, _ = load_model(tmp_path / "straight")
    teacher_dim = load_model(teacher)[0].encoder.embedding_dim
    assert latest[0]["modules"]["kd"]["weight"].shape == (teacher_dim, model.encoder.embedding_dim) == (48, 32)
    # the optimizer holds the map's weight and bias besides the model's parameters: it is trained
    n_model = sum(1 for p in model.parameters() if p.requires_grad)
    assert len(latest[0]["optimizer"]["state"]) == n_model + 2
    best = torch.load(tmp_path / "straight" / "checkpoint-best.pt", weights_only=True)
    assert "modules" not in best and not any("kd" in k for k in model.state_dict())
    # both checkpoints say which teacher checkpoint was distilled; a teacher retrained in place since (here:
    # its best checkpoint rewritten as of another step) refuses the resume instead of mixing two targets
    t_best = torch.load(teacher / "checkpoint-best.pt", weights_only=True)
    assert best["meta"]["teacher"] == latest[0]["meta"]["teacher"]
    assert best["meta"]["teacher"]["step"] == t_best["step"] == 2
    assert best["meta"]["teacher"]["exp_dir"] == str(teacher.resolve())
    torch.save({**t_best, "step": 7}, teacher / "checkpoint-best.pt")
    longer = load_config(FewShotConfig, None, _tiny_overrides(gsc_dir, manifests, [*small, "steps=6"]))
    with pytest.raises(RuntimeError, match="checkpoint-latest.pt: distilled from the teacher checkpoint of step 2 "
                                           ".*now holds step 7.*restore that teacher or start a new --exp-dir"):
        train(longer, tmp_path / "straight")
    assert [json.loads(line)["step"] for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()] == [2, 4]
    torch.save(t_best, teacher / "checkpoint-best.pt")
    for bad in (["kd_weight=1"], [f"teacher_exp_dir={teacher}"], [f"teacher_exp_dir={teacher}", "kd_weight=nan"]):
        with pytest.raises(ValueError, match="go together|kd_weight must be"):
            load_config(FewShotConfig, None, bad)
    for extra, match in ((["frontend.n_mels=80"], "the teacher's frontend is .* distillation needs the same"),
                         (["clip_s=0.8"], "the teacher's clip_s is 1.0, this config's 0.8"),
                         ([f"teacher_exp_dir={tmp_path / 'nothing'}"], "teacher_exp_dir=.*nothing.*no checkpoint")):
        other = load_config(FewShotConfig, None, _tiny_overrides(gsc_dir, manifests, [*small, *extra]))
        with pytest.raises(ValueError, match=match):
            train(other, tmp_path / "other")
        assert not (tmp_path / "other").exists()
