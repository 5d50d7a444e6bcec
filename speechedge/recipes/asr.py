"""Streaming CTC ASR: a full-context teacher and streaming students distilled from it.

Commands (tiny CPU configs; the LibriSpeech configs are ``asr_*_librispeech.toml``)::

    speechedge prepare librispeech --corpus work/asr/LibriSpeech --out work/asr/manifests
    speechedge train asr --config speechedge/recipes/configs/asr_teacher_tiny.toml --exp-dir work/asr/teacher
    speechedge train asr --config speechedge/recipes/configs/asr_student_tiny.toml --exp-dir work/asr/student_layer \\
        --set distill=layer --set teacher_exp_dir=work/asr/teacher
    speechedge eval asr --exp-dir work/asr/student_layer --data work/asr/manifests/librispeech_test-clean.jsonl.gz \\
        --chunk-ms 160 320 640 full

A teacher is an encoder with ``causal = false`` and ``chunk_frames = 0``; a student is causal and chunk-wise
(``chunk_frames`` output frames of 40 ms, ``left_chunks`` of left context). ``distill`` selects the
student's extra loss (see :mod:`speechedge.models.distill`). Experiments hold ``tokens.txt`` beside the checkpoints.
"""

from __future__ import annotations

import difflib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from speechedge.audio import from_int16
from speechedge.ctc import (CharTokenizer, ErrorCounts, Tokenizer, greedy_decode, greedy_tokens, make_tokenizer,
                            prefix_beam_search, tokenizer_from_meta)
from speechedge.features import FrontendConfig
from speechedge.models import load_checkpoint
from speechedge.models.asr import ASRModel
from speechedge.models.conformer import SUBSAMPLING, ConformerConfig
from speechedge.models.distill import DISTILL_MODES, LayerDistiller, parse_layer_map, token_kd_loss
from speechedge.training.asr_data import BatchStream, TrainBatches, UttSet, load_utterances
from speechedge.training.augment import AugmentConfig, Augmenter, load_noise_bank, spec_augment
from speechedge.training.config import check_ranges, config_from_dict, load_config
from speechedge.training.loop import TrainTask, fit, teacher_record, trained_parameters

log = logging.getLogger(__name__)

__all__ = ["ASRConfig", "train", "load_model", "decode", "evaluate", "stream_decode", "evaluate_experiment", "main"]


@dataclass(frozen=True)
class ASRConfig:
    train_manifest: str = ""  # librispeech_{split}.jsonl.gz from `speechedge prepare librispeech`
    val_manifest: str = ""
    max_duration_s: float = 20.0  # longer training utterances are skipped (counted in the log)
    tokenizer: str = "char"  # char | bpe | unigram (SentencePiece, trained on the training transcripts)
    vocab_size: int = 256  # bpe / unigram: output classes including the CTC blank
    frontend: FrontendConfig = field(default_factory=FrontendConfig.asr)
    # encoder
    d_model: int = 144
    num_layers: int = 4
    num_heads: int = 4
    ff_mult: int = 4
    conv_kernel: int = 15
    sub_channels: int = 64
    dropout: float = 0.1
    causal: bool = True
    chunk_frames: int = 8  # attention chunk in 40 ms output frames (8 = 320 ms); 0 = full context (teacher)
    left_chunks: int = 4  # chunks of left context (-1 = unlimited; streaming needs >= 0)
    dynamic_chunk: bool = False  # sample the chunk in 1..chunk_frames per batch (one model, many latencies)
    # curriculum: the first crop_steps steps train on random spans of 1..crop_max_words aligned words
    alignments: str = ""  # folder of MFA-format word alignments of the training set (*.alignment.txt)
    crop_steps: int = 0
    crop_max_words: int = 4
    # distillation (students only)
    teacher_exp_dir: str = ""
    distill: str = "none"  # none | token | layer
    kd_weight: float = 1.0  # token KD
    kd_temperature: float = 1.0
    layer_map: str = "auto"  # "s:t,..." 1-based student:teacher layers; auto = every 2nd + last student layer
    aux_layers: int = 1  # full-context transformer layers in each auxiliary branch
    layer_weight: float = 1.0
    apc_shift: int = 2  # APC predicts the teacher's frame t + apc_shift (40 ms frames)
    apc_weight: float = 1.0
    # optimisation
    batch_frames: int = 20000  # padded input frames (10 ms) per batch
    steps: int = 3000
    lr: float = 2e-3
    warmup_steps: int = 300
    weight_decay: float = 1e-3
    spec_augment: bool = True
    # waveform augmentation before the features (the [augment] table; all off by default): rooms, other
    # talkers, noise (noise_dir's files and/or synthetic music, hum, pink and brown noise), microphone
    # colouring, gain; teacher and student see the same augmented audio
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(shift_ms=0.0, noise_prob=0.0))
    noise_dir: str = ""  # a folder of background-noise WAV files (e.g. Speech Commands' _background_noise_)
    augment_after: int = 0  # clean steps before augmentation starts (a tiny model augmented from step 0 can
    # stay on the CTC blank plateau: README "Other engines and recording conditions")
    eval_every: int = 500
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    num_workers: int = 0  # processes that build training batches ahead (0 = in the training process)

    def __post_init__(self) -> None:
        check_ranges(self, positive=("steps", "eval_every", "batch_frames", "d_model", "num_layers", "num_heads",
                                     "crop_max_words", "lr", "kd_temperature"),
                     non_negative=("num_workers", "threads", "weight_decay", "warmup_steps", "kd_weight",
                                   "augment_after"))
        if self.distill not in DISTILL_MODES:
            raise ValueError(f"distill must be one of {DISTILL_MODES}, got {self.distill!r}")
        if self.distill != "none" and not self.teacher_exp_dir:
            raise ValueError(f"distill={self.distill!r} needs teacher_exp_dir (a trained teacher experiment)")
        if not self.causal and self.chunk_frames > 0:
            raise ValueError("a non-causal encoder (causal=false) is a teacher: set chunk_frames=0")
        if self.tokenizer not in ("char", "bpe", "unigram"):
            raise ValueError(f"tokenizer must be 'char', 'bpe' or 'unigram', got {self.tokenizer!r}")
        if self.tokenizer != "char" and self.vocab_size < 8:
            raise ValueError(f"vocab_size must be >= 8 for a subword tokenizer, got {self.vocab_size}")
        if self.augment.speed_prob > 0 or self.augment.shift_ms > 0:
            raise ValueError("augment.speed_prob and augment.shift_ms must be 0 for ASR: they keep the clip length "
                             "and would cut the ends of an utterance off its transcript")
        if self.augment.noise_prob > 0 and not (self.noise_dir or self.augment.synthetic_noise):
            raise ValueError("augment.noise_prob > 0 needs noise: set noise_dir (a folder of WAV files) or "
                             "augment.synthetic_noise = true")
        if self.crop_steps > 0 and not self.alignments:
            raise ValueError("crop_steps > 0 needs alignments (the folder of the training set's *.alignment.txt "
                             "word alignments); set it or crop_steps=0")

    def encoder_config(self) -> ConformerConfig:
        return ConformerConfig(n_mels=self.frontend.num_features, d_model=self.d_model, num_layers=self.num_layers, num_heads=self.num_heads,
                               ff_mult=self.ff_mult, conv_kernel=self.conv_kernel, sub_channels=self.sub_channels,
                               dropout=self.dropout, causal=self.causal)


def _cmvn(model: ASRModel, data: UttSet, max_utts: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    feats = []
    with torch.no_grad():
        for i in range(min(len(data), max_utts)):
            x, n = data.batch([i])
            f, _ = model.features(x, n)
            feats.append(f[0])
    f = torch.cat(feats)
    return f.mean(0), f.std(0).clamp(min=1e-3)


# -- model I/O -------------------------------------------------------------------------------------------
def load_model(exp_dir: str | Path, which: str = "best", device="cpu") -> tuple[ASRModel, ASRConfig, Tokenizer]:
    """The trained model of ``exp_dir``, its config and its tokenizer (the one the checkpoint carries)."""
    model, cfg, state = _load_with_state(exp_dir, which, device)
    return model, cfg, tokenizer_from_meta(state["meta"])


def _load_with_state(exp_dir: str | Path, which: str = "best", device="cpu") -> tuple[ASRModel, ASRConfig, dict]:
    """The model, its config and the whole checkpoint dict (its step and score, for :func:`teacher_record`)."""
    model, state = load_checkpoint(exp_dir, which, device)
    if not isinstance(model, ASRModel):
        raise ValueError(f"{exp_dir}: not an ASR experiment ({state['arch'].get('name')})")
    return model, config_from_dict(ASRConfig, state["config"], f"{exp_dir} config"), state


def _load_utts(manifest, tok, cfg: ASRConfig, **kw) -> UttSet:
    return load_utterances(manifest, tok, sample_rate=cfg.frontend.sample_rate, hop_length=cfg.frontend.hop_length, **kw)


# -- decoding --------------------------------------------------------------------------------------------
def _chunk_for(cfg: ASRConfig, chunk_frames: int | None) -> tuple[int, int]:
    if chunk_frames is None:
        return cfg.chunk_frames, cfg.left_chunks
    return chunk_frames, (cfg.left_chunks if chunk_frames > 0 else -1)


@torch.no_grad()
def decode(model: ASRModel, data: UttSet, *, chunk_frames: int, left_chunks: int, beam: int = 0,
           batch_frames: int = 40000, tokenizer: Tokenizer | None = None, device="cpu") -> list[str]:
    """Hypotheses for every utterance (masked full-sequence forward; equal to chunk-by-chunk streaming)."""
    model.eval()
    hyps: list[str | None] = [None] * len(data)
    tok = tokenizer or CharTokenizer()
    for idx in data.batches(batch_frames, None):
        x, n = data.batch(idx)
        feats, flen = model.features(x.to(device), n.to(device))
        logits, olen, _ = model(feats, flen, chunk_frames, left_chunks)
        lp = logits.log_softmax(-1).cpu().numpy()
        for r, i in enumerate(idx):
            frame_lp = lp[r, : int(olen[r])]
            ids = prefix_beam_search(frame_lp, beam) if beam > 1 else greedy_decode(frame_lp)
            hyps[i] = tok.decode(ids)
    return hyps  # type: ignore[return-value]


def evaluate(model: ASRModel, data: UttSet, *, chunk_frames: int, left_chunks: int, beam: int = 0,
             tokenizer: Tokenizer | None = None, device="cpu") -> dict:
    hyps = decode(model, data, chunk_frames=chunk_frames, left_chunks=left_chunks, beam=beam, tokenizer=tokenizer,
                  device=device)
    counts, utts = ErrorCounts(), []
    for uid, ref, hyp in zip(data.ids, data.texts, hyps):
        one = ErrorCounts()
        one.add(ref, hyp)
        counts += one
        utts.append({"id": uid, "ref": ref, "hyp": hyp, "word_errors": one.word_err, "words": one.words,
                     "char_errors": one.char_err, "chars": one.chars})
    # per utterance too (as icefall's errs/recogs files): paired comparisons of two models need them
    return {"wer": counts.wer, "cer": counts.cer, "words": counts.words, "utterances": utts}


@torch.no_grad()
def stream_decode(model: ASRModel, audio: np.ndarray, chunk_frames: int, left_chunks: int,
                  tokens: list[str] | None = None) -> tuple[str, list[tuple[str, float]]]:
    """Decode one utterance chunk by chunk through ``step``; returns the text and, per word, the audio time
    (seconds) at which its last token was emitted, i.e. when the chunk that emitted it was complete.
    ``tokens`` is the token table (default: characters); ``|`` or a leading ``▁`` starts a new word."""
    model.eval()
    table = tokens or CharTokenizer().tokens
    x = torch.from_numpy(from_int16(audio))[None]
    feats, _ = model.features(x, torch.tensor([len(audio)]))
    cfg = model.frontend.config
    step_frames = SUBSAMPLING * chunk_frames
    t = feats.shape[1] // step_frames * step_frames
    state = model.encoder.init_state(1, chunk_frames, left_chunks)
    lps, ready_s = [], []
    for k in range(0, t, step_frames):
        y, state = model.encoder.step(feats[:, k: k + step_frames], state)
        lps.append(model.ctc(y).log_softmax(-1)[0].numpy())
        # the last feature frame of this chunk needs samples up to its centre + n_fft / 2
        ready = ((k + step_frames - 1) * cfg.hop_length + cfg.n_fft // 2) / cfg.sample_rate
        ready_s.extend([min(ready, len(audio) / cfg.sample_rate)] * chunk_frames)
    if not lps:
        return "", []
    emitted = greedy_tokens(np.concatenate(lps))
    words, cur, last_t = [], "", 0.0
    for k, frame in emitted:
        piece = table[k]
        if piece == "|" or piece.startswith("\u2581"):
            if cur:
                words.append((cur, last_t))
            cur = ""
            piece = piece.lstrip("|\u2581")
        if piece:
            cur += piece
            last_t = ready_s[frame]
    if cur:
        words.append((cur, last_t))
    return " ".join(w for w, _ in words), words


def emission_latency(hyp_words: list[tuple[str, float]], ref_words: list) -> list[float]:
    """For hypothesis words that match reference words (``WordAlignment``), emission time - word end."""
    hw = [w for w, _ in hyp_words]
    rw = [a.word.lower() for a in ref_words]
    out = []
    for block in difflib.SequenceMatcher(a=rw, b=hw, autojunk=False).get_matching_blocks():
        for j in range(block.size):
            out.append(hyp_words[block.b + j][1] - ref_words[block.a + j].end_s)
    return out


# -- training --------------------------------------------------------------------------------------------
def _tokenizer(cfg: ASRConfig, exp_dir: Path) -> Tokenizer:
    """Characters, or a SentencePiece model trained on the training transcripts once and kept in the
    experiment (``tokenizer.model``) so that a resumed run encodes exactly as before."""
    from speechedge.ctc import SubwordTokenizer
    from speechedge.io import atomic_write_bytes
    from speechedge.manifest import UtteranceRecord, read_manifest

    if cfg.tokenizer == "char":
        return CharTokenizer()
    saved = exp_dir / "tokenizer.model"
    if saved.exists():
        return SubwordTokenizer(saved.read_bytes())
    texts = [r.transcript for r in read_manifest(cfg.train_manifest, UtteranceRecord)
             if r.duration_s <= cfg.max_duration_s]
    tok = make_tokenizer(cfg.tokenizer, texts, cfg.vocab_size)
    atomic_write_bytes(saved, tok.model_proto)
    log.info("tokenizer: SentencePiece %s, %d tokens (with the blank), trained on %d transcripts", cfg.tokenizer,
             len(tok), len(texts))
    return tok


def _lr_lambda(cfg: ASRConfig):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        p = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
    return f


def train(cfg: ASRConfig, exp_dir: str | Path) -> dict:
    """Train (or resume) a teacher or student in ``exp_dir``; returns the last metrics record."""
    if not cfg.train_manifest or not cfg.val_manifest:
        raise ValueError("set train_manifest and val_manifest (from `speechedge prepare librispeech`)")

    def build(device, dist_env, exp) -> TrainTask:
        tok = _tokenizer(cfg, exp.dir)
        if dist_env.is_main:
            tok.save(exp.dir / "tokens.txt")
        train_set = _load_utts(cfg.train_manifest, tok, cfg, max_duration_s=cfg.max_duration_s)
        val_set = _load_utts(cfg.val_manifest, tok, cfg)
        words: dict[str, list] = {}
        if cfg.crop_steps > 0:
            if not Path(cfg.alignments).is_dir():
                raise FileNotFoundError(f"alignments={cfg.alignments}: not a folder; point it at the training set's "
                                        "word alignments (e.g. LibriSpeech/alignments/train-clean-100)")
            words = read_alignments(cfg.alignments)
            covered = sum(u in words for u in train_set.ids)
            if not covered:
                raise ValueError(f"alignments={cfg.alignments}: no alignment for any of the {len(train_set)} training "
                                 "utterances; is it the training split's folder?")
            log.info("word-span curriculum: first %d steps on spans of 1-%d words (%d of %d utterances aligned)",
                     cfg.crop_steps, cfg.crop_max_words, covered, len(train_set))
        model = ASRModel(cfg.encoder_config(), len(tok), cfg.frontend).to(device)
        teacher, distiller, modules, teacher_meta = None, None, {}, None
        if cfg.distill != "none":
            teacher, tcfg, tstate = _load_with_state(cfg.teacher_exp_dir, device=device)
            teacher_meta = teacher_record(cfg.teacher_exp_dir, tstate)
            if teacher.frontend.config != cfg.frontend:
                raise ValueError(f"{cfg.teacher_exp_dir}: the teacher's frontend differs from this config's "
                                 "[frontend]; distillation needs the same features")
            teacher.requires_grad_(False)
            if cfg.distill == "token" and teacher.ctc.out_features != len(tok):
                raise ValueError(f"distill=token: the teacher ({cfg.teacher_exp_dir}) has {teacher.ctc.out_features} "
                                 f"output tokens, this student {len(tok)}; token KD needs the teacher's tokenizer")
            if cfg.distill == "layer":
                pairs = parse_layer_map(cfg.layer_map, cfg.num_layers, tcfg.num_layers)
                distiller = LayerDistiller(pairs, cfg.d_model, tcfg.encoder_config(), aux_layers=cfg.aux_layers,
                                           apc_shift=cfg.apc_shift).to(device)
                modules["distiller"] = distiller
                log.info("layer KD pairs (student:teacher, 1-based): %s",
                         ", ".join(f"{s + 1}:{t + 1}" for s, t in pairs))
        opt = torch.optim.AdamW(trained_parameters(model, modules), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
        n_params = sum(p.numel() for p in model.parameters())
        log.info("train: %d utterances (%.2f h), val: %d; model %.2fM parameters; chunk %s, left %d, distill=%s",
                 len(train_set), int(train_set.audio.lengths().sum()) / cfg.frontend.sample_rate / 3600, len(val_set),
                 n_params / 1e6, cfg.chunk_frames or "full", cfg.left_chunks, cfg.distill)
        rng = np.random.default_rng(cfg.seed * 1000 + dist_env.rank)
        spec_gen = torch.Generator().manual_seed(cfg.seed + 99 + dist_env.rank)
        generators = {"rng": rng, "specaug": spec_gen}
        aug = None
        if _augments(cfg.augment):
            aug = Augmenter(cfg.augment, cfg.frontend.sample_rate,
                            load_noise_bank(cfg.noise_dir, cfg.frontend.sample_rate) if cfg.noise_dir else None,
                            seed=cfg.seed * 1000 + 5 + dist_env.rank)
            generators["augment"] = aug.gen
            log.info("waveform augmentation: %s", ", ".join(
                f"{k} {getattr(cfg.augment, k + '_prob')}" for k in ("reverb", "babble", "noise", "colour", "gain")
                if getattr(cfg.augment, k + "_prob") > 0))
        if not exp.latest.exists():  # a resume loads the statistics with the weights
            mean, std = _cmvn(model, train_set)
            model.encoder.feat_mean.copy_(mean)
            model.encoder.feat_std.copy_(std)
        # each step's batch is a function of (seed, rank, step): worker processes build them ahead, and a
        # resumed run gets the batches an uninterrupted one would
        stream = BatchStream(TrainBatches(train_set, tok, batch_frames=cfg.batch_frames, seed=cfg.seed,
                                          rank=dist_env.rank, crop_steps=cfg.crop_steps, words=words,
                                          crop_max_words=cfg.crop_max_words), cfg.steps, cfg.num_workers)

        def train_step(step: int, net) -> dict:
            x, n, toks = stream.next_for(step)
            with torch.no_grad():
                x = x.to(device)
                if aug is not None and step > cfg.augment_after:
                    x = aug(x, n)
                feats, flen = model.features(x, n.to(device))
                if cfg.spec_augment:  # masks fill with the global mean (0 after normalisation)
                    mean = model.encoder.feat_mean
                    feats = spec_augment((feats - mean).transpose(1, 2), spec_gen, freq_width=15,
                                         time_width=40).transpose(1, 2) + mean
            chunk = int(rng.integers(1, cfg.chunk_frames + 1)) if cfg.dynamic_chunk and cfg.chunk_frames > 0 \
                else cfg.chunk_frames
            logits, olen, hidden = net(feats, flen, chunk, cfg.left_chunks)
            targets = torch.tensor([t for ts in toks for t in ts], device=device)
            tlen = torch.tensor([len(ts) for ts in toks], device=device)
            parts = {"ctc": F.ctc_loss(logits.log_softmax(-1).transpose(0, 1), targets, olen, tlen, zero_infinity=True)}
            if teacher is not None:
                valid = (torch.arange(logits.shape[1], device=device)[None] < olen[:, None]).float()
                with torch.no_grad():
                    t_logits, _, t_hidden = teacher(feats, flen)
                if cfg.distill == "token":
                    parts["kd"] = cfg.kd_weight * token_kd_loss(logits, t_logits, valid, cfg.kd_temperature)
                else:
                    layer_loss, apc_loss = distiller(hidden, t_hidden, valid)
                    parts["layer"] = cfg.layer_weight * layer_loss
                    parts["apc"] = cfg.apc_weight * apc_loss
            return parts

        def evaluate_val(step: int) -> tuple[dict, float]:
            chunk_e, left_e = _chunk_for(cfg, None)
            res = evaluate(model, val_set, chunk_frames=chunk_e, left_chunks=left_e, tokenizer=tok, device=device)
            return {"val_cer": res["cer"], "val_wer": res["wer"]}, -res["cer"]

        return TrainTask(model=model, optimizer=opt, scheduler=sched, train_step=train_step, evaluate=evaluate_val,
                         steps=cfg.steps, eval_every=cfg.eval_every, modules=modules,
                         generators=generators, grad_clip=5.0,
                         meta={**tok.meta(), **({"teacher": teacher_meta} if teacher_meta else {})},
                         curves=["train_ctc", "train_kd", "train_layer", "train_apc", "val_cer", "val_wer"])

    return fit(cfg, exp_dir, build)


def _augments(c: AugmentConfig) -> bool:
    """Whether any waveform augmentation stage is on."""
    return any(getattr(c, k) > 0 for k in ("reverb_prob", "babble_prob", "noise_prob", "colour_prob", "gain_prob"))


def parse_chunk_ms(values: list[str]) -> list[int]:
    """``["160", "320", "full"]`` -> chunk sizes in output frames (40 ms); ``full`` -> 0."""
    out = []
    for v in values:
        if v == "full":
            out.append(0)
            continue
        try:
            ms = int(v)
        except ValueError:
            raise ValueError(f"--chunk-ms: expected milliseconds or 'full', got {v!r}")
        if ms <= 0 or ms % 40:
            raise ValueError(f"--chunk-ms {ms}: must be a positive multiple of 40 ms (one encoder frame)")
        out.append(ms // 40)
    return out


def read_alignments(folder: str | Path) -> dict[str, list]:
    """Every ``*.alignment.txt`` under ``folder`` (MFA text format) as ``{utt_id: [WordAlignment, ...]}``."""
    from speechedge.data_prep.alignments import read_alignment_file

    refs: dict[str, list] = {}
    for f in Path(folder).rglob("*.alignment.txt"):
        refs.update(read_alignment_file(f))
    return refs


def streaming_latency(model: ASRModel, utts: UttSet, refs: dict[str, list], chunk_frames: int, left_chunks: int,
                      tokens: list[str] | None = None) -> dict:
    """Decode every utterance chunk by chunk through ``step`` and measure word emission latency against the
    word alignments ``refs`` (:func:`read_alignments`): emission time of a correctly recognised word's last
    character (when its chunk was complete) minus the word's end in the audio."""
    lat: list[float] = []
    for uid, audio in zip(utts.ids, utts.audio):
        if uid in refs:
            _, words = stream_decode(model, audio, chunk_frames, left_chunks, tokens)
            lat += emission_latency(words, refs[uid])
    if not lat:
        return {"latency_words": 0}
    a = np.array(lat)
    return {"latency_words": int(a.size), "latency_median_s": float(np.median(a)), "latency_mean_s": float(a.mean()),
            "latency_p90_s": float(np.quantile(a, 0.9))}


def evaluate_experiment(exp_dir: str | Path, data: str | Path, chunks: list[int], *, beam: int = 0,
                        limit: int | None = None, alignments: str | Path | None = None,
                        utterances: bool = False, left_chunks: int | None = None) -> list[dict]:
    """WER/CER of ``exp_dir``'s best checkpoint on a manifest for each chunk size (0 = full context); with
    ``alignments``, also the streaming emission latency of each chunk size; with ``utterances``, each row keeps
    every utterance's hypothesis and errors (``eval asr --json``: paired comparisons need them).
    ``left_chunks``: the chunks of left context each streaming chunk sees (default: the model's own; -1: all)."""
    if left_chunks is not None and (isinstance(left_chunks, bool) or left_chunks < -1):
        raise ValueError(f"--left-chunks must be -1 (all) or >= 0, got {left_chunks!r}")
    model, cfg, tok = load_model(exp_dir)
    utts = _load_utts(data, tok, cfg, limit=limit)
    refs = read_alignments(alignments) if alignments is not None else None
    rows = []
    for c in chunks:
        if c > 0 and not cfg.causal:
            log.warning("%s is a full-context model; skipping chunk %d ms", exp_dir, c * 40)
            continue
        t0 = time.perf_counter()
        left = (cfg.left_chunks if left_chunks is None else left_chunks) if c > 0 else -1
        res = evaluate(model, utts, chunk_frames=c, left_chunks=left, beam=beam, tokenizer=tok)
        if not utterances:
            res.pop("utterances")
        row = {"chunk_ms": c * 40 if c else "full", "left_chunks": left, **res, "decode_s": time.perf_counter() - t0}
        if refs is not None and c > 0 and left >= 0:
            row.update(streaming_latency(model, utts, refs, c, left, tok.tokens))
        rows.append(row)
    return rows


def evaluate_cli(exp_dir: str, data: str, chunk_ms: list[str], beam: int = 0, json_path: str | None = None,
                 alignments: str | None = None, left_chunks: int | None = None) -> int:
    import json

    rows = evaluate_experiment(exp_dir, data, parse_chunk_ms(chunk_ms), beam=beam, alignments=alignments,
                               utterances=json_path is not None, left_chunks=left_chunks)
    print(f"{exp_dir} on {data} ({rows[0]['words'] if rows else 0} words, {'greedy' if beam <= 1 else f'beam {beam}'})")
    lat = alignments is not None
    print("| chunk | left chunks | WER % | CER % |" + (" median emission latency after word end |" if lat else "") +
          "\n|---|---|---|---|" + ("---|" if lat else ""))
    for r in rows:
        cell = ""
        if lat:
            cell = f" {r['latency_median_s'] * 1000:.0f} ms ({r['latency_words']} words) |" \
                if r.get("latency_words") else " - |"
        left = "-" if r["chunk_ms"] == "full" else "all" if r["left_chunks"] < 0 else r["left_chunks"]
        print(f"| {r['chunk_ms']}{'' if r['chunk_ms'] == 'full' else ' ms'} | {left} | {r['wer']:.1f} | {r['cer']:.1f} |"
              + cell)
    if json_path:
        from speechedge.io import atomic_write_text

        atomic_write_text(json_path, json.dumps(rows, indent=2))
    return 0


def main(config_path: str | None, exp_dir: str, overrides: list[str]) -> int:
    cfg = load_config(ASRConfig, config_path, overrides)
    train(cfg, exp_dir)
    return 0
