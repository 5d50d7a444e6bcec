"""Synthesized corpora laid out exactly like LibriSpeech (+ MFA word alignments) and Speech Commands v2.

Tests and the quickstart run on these instead of downloads. A LibriSpeech "speaker" is an espeak voice x
variant x rate x pitch x pitch range x gain x background-noise level, or (``engines=``) a
:class:`speechedge.synth.engines.Voice` of another engine with a gain and noise level; a Speech Commands
speaker is a :class:`speechedge.synth.engines.Voice` of any installed engine (espeak-ng, SVOX Pico, hibari)
with a vocal-tract-length factor, gain and noise floor. Every choice comes from a seeded
generator, so the same ``seed`` gives byte-identical corpora.

Word boundaries (LibriSpeech alignments) come from espeak's word events: the event gives the sample at
which a word starts; the word is taken to last until the next word's event (or the end of the audio), and
both ends are then tightened to the first and last 10 ms frame whose energy is within 40 dB of the
utterance peak, so pauses between words become silences (empty words in the MFA format). When espeak
merges words it reports fewer word events than the text has words; such utterances are **dropped and
counted** (``dropped_utterances`` in the report) rather than given guessed boundaries. The other engines
report no word timings: their utterances get a transcript and no alignment (``unaligned_utterances``);
``speechedge align`` adds alignments from a trained CTC model where they are needed (LibriWord clips, the
ASR recipe's word-span curriculum and latency figures; CER/WER need none).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..audio import from_int16, resample, write_audio
from ..manifest import ClipRecord, write_manifest
from .engines import ESPEAK_VARIANTS, ESPEAK_VOICES, check_engines
from .espeak import Espeak, Utterance

log = logging.getLogger(__name__)

__all__ = [
    "EngineSpeaker",
    "SpeakerStyle",
    "SynthReport",
    "WordSpan",
    "SPEECH_COMMANDS_V2_WORDS",
    "voice_hash",
    "noise_signal",
    "music_signal",
    "make_speakers",
    "vocabulary",
    "word_spans",
    "format_alignment_line",
    "synth_librispeech",
    "synth_speech_commands",
]

SPEECH_COMMANDS_V2_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
    "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)

_FRAME_S = 0.010
_SILENCE_DB = 40.0


@dataclass(frozen=True)
class SpeakerStyle:
    """One synthetic speaker: how espeak speaks and how the recording sounds."""

    speaker_id: int
    voice: str
    variant: str
    rate: int
    pitch: int
    pitch_range: int
    gain: float
    snr_db: float | None

    @property
    def voice_name(self) -> str:
        return self.voice + (f"+{self.variant}" if self.variant else "")


@dataclass(frozen=True)
class EngineSpeaker:
    """A LibriSpeech speaker of an engine other than espeak (no word timings): its voice, gain and noise."""

    speaker_id: int
    voice: object  # speechedge.synth.engines.Voice
    gain: float
    snr_db: float | None

    @property
    def voice_name(self) -> str:
        return self.voice.key


@dataclass(frozen=True)
class WordSpan:
    word: str
    start_s: float
    end_s: float


@dataclass
class SynthReport:
    out_dir: str
    num_files: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    dropped_utterances: int = 0  # espeak merged words, a word had no audible frame, an engine refused
    unaligned_utterances: int = 0  # spoken by an engine without word timings (no alignment line written)
    splits: dict = field(default_factory=dict)

    @property
    def speed(self) -> float:
        """Seconds of audio synthesized per second of wall time."""
        return self.audio_s / self.wall_s if self.wall_s > 0 else float("nan")

    def to_dict(self) -> dict:
        return {**asdict(self), "audio_per_wall_s": round(self.speed, 2)}


def make_speakers(num_speakers: int, rng: np.random.Generator, *, noise: bool = True, first_id: int = 100) -> list[SpeakerStyle]:
    """Draw ``num_speakers`` distinct speaker styles.

    ``noise=True`` gives about a third of the speakers a background noise floor at 10..30 dB SNR.
    """
    speakers: list[SpeakerStyle] = []
    seen: set[tuple[str, str]] = set()
    while len(speakers) < num_speakers:
        voice = ESPEAK_VOICES[rng.integers(len(ESPEAK_VOICES))]
        variant = ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))]
        if (voice, variant) in seen and len(seen) < len(ESPEAK_VOICES) * len(ESPEAK_VARIANTS):
            continue
        seen.add((voice, variant))
        snr = float(rng.uniform(10, 30)) if noise and rng.random() < 0.35 else None
        speakers.append(SpeakerStyle(
            speaker_id=first_id + 3 * len(speakers) + int(rng.integers(3)),
            voice=voice, variant=variant, rate=int(rng.integers(130, 210)), pitch=int(rng.integers(25, 80)),
            pitch_range=int(rng.integers(20, 90)), gain=float(rng.uniform(0.3, 0.9)), snr_db=snr,
        ))
    return speakers


def vocabulary(size: int = 4000) -> tuple[list[str], np.ndarray]:
    """The ``size`` most frequent English words (wordfreq) and their relative frequencies.

    Keeps lower-case alphabetic words (with an optional apostrophe part, e.g. ``don't``), drops
    single letters other than "a"/"i" and vowel-less tokens such as "ii" or "st".
    """
    try:
        import wordfreq
    except ImportError as e:  # pragma: no cover - an install problem, not a code path
        raise ImportError("synthesis needs wordfreq: pip install 'speechedge[data]'") from e
    words = []
    for w in wordfreq.top_n_list("en", int(size * 1.3) + 50):
        if not re.fullmatch(r"[a-z]+('[a-z]+)?", w):
            continue
        if (len(w) == 1 and w not in ("a", "i")) or not re.search(r"[aeiouy]", w):
            continue
        words.append(w)
        if len(words) == size:
            break
    freqs = np.array([wordfreq.word_frequency(w, "en") for w in words], dtype=np.float64)
    return words, freqs / freqs.sum()


def _frame_energy_db(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    hop = int(round(_FRAME_S * sample_rate))
    n = len(samples) // hop
    frames = samples[: n * hop].astype(np.float64).reshape(n, hop)
    energy = (frames**2).mean(axis=1) + 1e-12
    return 10 * np.log10(energy / energy.max())


def word_spans(utt: Utterance, words: list[str], text: str) -> list[WordSpan] | None:
    """Word boundaries (seconds) from espeak's word events tightened by frame energy.

    Returns None when a word has no event of its own (espeak merged it with a neighbour) or no
    audible frame; the caller drops such an utterance.
    """
    # character offset of each word in the text
    offsets, pos = [], 0
    for w in words:
        pos = text.index(w, pos)
        offsets.append(pos)
        pos += len(w)
    by_char = {ev.char_start: ev.start_sample for ev in utt.words}
    if any(o not in by_char for o in offsets):
        return None
    starts = [by_char[o] for o in offsets]
    if any(b <= a for a, b in zip(starts, starts[1:])):
        return None
    hop = int(round(_FRAME_S * utt.sample_rate))
    voiced = _frame_energy_db(utt.samples, utt.sample_rate) > -_SILENCE_DB
    num_frames = len(voiced)
    spans = []
    bounds = starts + [num_frames * hop]
    for w, a, b in zip(words, bounds[:-1], bounds[1:]):
        fa, fb = a // hop, min(num_frames, -(-b // hop))
        idx = np.flatnonzero(voiced[fa:fb])
        if idx.size == 0:
            return None
        spans.append(WordSpan(w, (fa + idx[0]) * hop / utt.sample_rate, (fa + idx[-1] + 1) * hop / utt.sample_rate))
    return spans


def format_alignment_line(utt_id: str, spans: list[WordSpan], duration_s: float) -> str:
    """One line of the LibriSpeech MFA alignment text format (upper-case words, end times, "" = silence)."""
    # Like the public files, the list always opens and closes with a silence entry (the leading and
    # trailing commas); a pause between two words is another empty entry.
    labels, ends = [""], [min(spans[0].start_s, duration_s) if spans else duration_s]
    for prev, s in zip([None, *spans], spans):
        if prev is not None and s.start_s > prev.end_s + 1e-9:
            labels.append("")
            ends.append(min(s.start_s, duration_s))
        labels.append(s.word.upper())
        ends.append(min(s.end_s, duration_s))  # resampling can shorten the audio by a sample
    labels.append("")
    ends.append(max(duration_s, ends[-1]))
    return f'{utt_id} "{",".join(labels)}" "{",".join(f"{e:.3f}" for e in ends)}"'


def _render(utt: Utterance | np.ndarray, style: SpeakerStyle | EngineSpeaker, sample_rate: int,
            rng: np.random.Generator, lead_s: float = 0.0, trail_s: float = 0.0) -> np.ndarray:
    """int16 at espeak's rate (or float32 at 16 kHz from another engine) -> float32 at ``sample_rate`` with
    the speaker's gain, silence padding (``lead_s`` before, ``trail_s`` after) and background noise over the
    whole recording."""
    if isinstance(utt, Utterance):
        audio = resample(from_int16(utt.samples), utt.sample_rate, sample_rate)
    else:
        audio = resample(utt, 16000, sample_rate) if sample_rate != 16000 else utt
    peak = float(np.abs(audio).max()) or 1.0
    audio = audio * (style.gain / peak)
    if lead_s or trail_s:
        audio = np.concatenate([np.zeros(round(lead_s * sample_rate), np.float32), audio,
                                np.zeros(round(trail_s * sample_rate), np.float32)])
    if style.snr_db is not None:
        power = float(np.mean(audio**2))
        noise = rng.standard_normal(len(audio)).astype(np.float32)
        audio = audio + noise * np.sqrt(power / 10 ** (style.snr_db / 10))
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _split_speakers(speakers: list, fractions: tuple[float, ...]) -> list[list]:
    """Deterministic, speaker-disjoint split; every part gets at least one speaker when possible."""
    n = len(speakers)
    counts = [max(1, int(round(f * n))) if n >= len(fractions) else 0 for f in fractions[1:]]
    first = n - sum(counts)
    parts, i = [], 0
    for c in [first, *counts]:
        parts.append(speakers[i : i + c])
        i += c
    return parts


def _run_groups(fn, groups: list, common: dict, desc: str, progress: bool) -> list:
    """Run ``fn(group, **common)`` for each group, each in a fresh process, at most one per core.

    libespeak-ng keeps state between calls in the same process (for example the position in its pitch
    flutter table), so the same text comes out slightly different depending on what was spoken
    before. A fresh process per group with a fixed order of calls makes the output byte-identical for
    a seed, independently of the number of workers.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    from ..io import pool_worker_init, spawn_pool_context

    workers = max(1, min(len(groups), os.cpu_count() or 1))
    results: list = [None] * len(groups)
    with ProcessPoolExecutor(workers, mp_context=spawn_pool_context(), max_tasks_per_child=1,
                             initializer=pool_worker_init, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(fn, g, **common): i for i, g in enumerate(groups)}
        for fut in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="group", disable=not progress):
            results[futures[fut]] = fut.result()
    return results


def _groups(items: list, work_s: float, max_groups: int = 8) -> list[list]:
    """Round-robin partition into groups of about a minute of audio each, at most ``max_groups``.

    Starting a worker process costs about half a second, so small corpora use few groups. The
    partition depends only on the arguments, never on the machine, so output stays reproducible; since
    libespeak-ng keeps state within a process, ``max_groups`` is part of what a corpus is (8 by default,
    the value every published corpus of this project used; 32 keeps a 16-core machine busy).
    """
    if max_groups < 1:
        raise ValueError(f"max_groups must be >= 1, got {max_groups}")
    n = max(1, min(len(items), max_groups, round(work_s / 60.0)))
    return [items[i::n] for i in range(n)]


def _librispeech_speaker_task(tasks: list, *, out_dir: str, seed: int, sample_rate: int, vocab_size: int,
                              min_words: int, max_words: int) -> list[dict]:
    """Worker: synthesize the chapters of each ``(index, split, style, budget_s)`` in ``tasks``."""
    from .engines import EngineError, synthesize

    out = Path(out_dir)
    words, probs = vocabulary(vocab_size)
    tts = Espeak() if any(isinstance(t[2], SpeakerStyle) for t in tasks) else None
    stats = []
    for index, split, style, budget_s in tasks:
        rng = np.random.default_rng([seed, index])
        st = {"split": split, "utterances": 0, "audio_s": 0.0, "dropped": 0, "unaligned": 0,
              "engine": style.voice.engine if isinstance(style, EngineSpeaker) else "espeak"}
        done_s, chapter_no = 0.0, 0
        while done_s < budget_s:
            chapter = 1000 + style.speaker_id * 7 + chapter_no
            chapter_dir = out / split / str(style.speaker_id) / str(chapter)
            align_dir = out / "alignments" / split / str(style.speaker_id) / str(chapter)
            trans, aligns = [], []
            utt_no = 0
            while done_s < budget_s and utt_no < 20:
                n = int(rng.integers(min_words, max_words + 1))
                sentence = [words[i] for i in rng.choice(len(words), size=n, p=probs)]
                text = " ".join(sentence)
                if isinstance(style, EngineSpeaker):  # no word timings: a transcript without alignment
                    # each utterance a little faster or slower (as espeak's rate +-10), its own engine randomness
                    take = replace(style.voice, rate=round(style.voice.rate * float(rng.uniform(0.94, 1.06)), 3),
                                   seed=int(rng.integers(2**31)))
                    try:
                        utt, spans = synthesize(take, text), None
                    except EngineError as e:  # the engine refused this sentence: dropped and counted
                        log.warning("%s: %s; utterance dropped", style.voice_name, e)
                        st["dropped"] += 1
                        if st["dropped"] >= 20 and not st["utterances"]:  # not one sentence: a broken engine
                            raise
                        continue
                else:
                    utt = tts.synthesize(text, voice=style.voice_name, rate=style.rate + int(rng.integers(-10, 11)),
                                         pitch=style.pitch, pitch_range=style.pitch_range,
                                         seed=int(rng.integers(2**31)))
                    spans = word_spans(utt, sentence, text)
                    if spans is None:
                        st["dropped"] += 1
                        continue
                # read speech has pauses around each utterance (LibriSpeech segments keep ~0.1-0.5 s)
                lead, trail = (float(x) for x in rng.uniform(0.1, 0.5, size=2))
                lead = round(lead * sample_rate) / sample_rate
                audio = _render(utt, style, sample_rate, rng, lead_s=lead, trail_s=trail)
                utt_id = f"{style.speaker_id}-{chapter}-{utt_no:04d}"
                write_audio(chapter_dir / f"{utt_id}.flac", audio, sample_rate)
                duration = len(audio) / sample_rate
                trans.append(f"{utt_id} {text.upper()}")
                if spans is None:
                    st["unaligned"] += 1
                else:
                    spans = [WordSpan(sp.word, sp.start_s + lead, sp.end_s + lead) for sp in spans]
                    aligns.append(format_alignment_line(utt_id, spans, duration))
                utt_no += 1
                done_s += duration
                st["utterances"] += 1
                st["audio_s"] += duration
            if trans:
                _write_text(chapter_dir / f"{style.speaker_id}-{chapter}.trans.txt", trans)
            if aligns:
                _write_text(align_dir / f"{style.speaker_id}-{chapter}.alignment.txt", aligns)
            chapter_no += 1
        stats.append(st)
    return stats


def synth_librispeech(
    out_dir: str | Path,
    *,
    hours: float = 0.05,
    num_speakers: int = 12,
    seed: int = 0,
    sample_rate: int = 16000,
    vocab_size: int = 4000,
    min_words: int = 6,
    max_words: int = 18,
    progress: bool = True,
    max_groups: int = 8,
    engines: tuple[str, ...] | list[str] = ("espeak",),
    held_out_engines: tuple[str, ...] | list[str] = (),
) -> SynthReport:
    """Write a LibriSpeech-layout corpus with MFA-format word alignments under ``out_dir``.

    Layout: ``{split}/{speaker}/{chapter}/{speaker}-{chapter}-{utt:04d}.flac``, one
    ``{speaker}-{chapter}.trans.txt`` per chapter (upper-case), and
    ``alignments/{split}/{speaker}/{chapter}/{speaker}-{chapter}.alignment.txt``.
    Splits ``train-clean-100`` / ``dev-clean`` / ``test-clean`` are speaker-disjoint (about 70/15/15).
    Sentences are drawn word by word from the Zipf-like frequency distribution of the ``vocab_size``
    most frequent English words. Each speaker reads ``hours / num_speakers`` of audio in chapters of
    up to 20 utterances. The same arguments give byte-identical files (see :func:`_run_groups`;
    ``max_groups``: :func:`_groups`).

    ``engines``: speakers are drawn from these engines in turn (espeak styles as above; the others through
    :func:`speechedge.synth.engines.make_voices`, each with a gain and a noise floor like espeak's speakers);
    their utterances have no word alignment (``unaligned_utterances``). ``held_out_engines``: all speakers of
    these engines go to ``test-clean`` (an unseen synthesizer); the others are split 70/15/15 as above.
    """
    if hours <= 0 or num_speakers < 3:
        raise ValueError(f"need hours > 0 and num_speakers >= 3 (got hours={hours}, num_speakers={num_speakers})")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    engines, held_out_engines = list(engines), list(held_out_engines)
    if engines == ["espeak"] and not held_out_engines:
        speakers = make_speakers(num_speakers, rng)
        splits = dict(zip(("train-clean-100", "dev-clean", "test-clean"),
                          _split_speakers(speakers, (0.7, 0.15, 0.15))))
    else:
        speakers, splits = _engine_speakers(num_speakers, rng, engines, held_out_engines)
    per_speaker_s = hours * 3600.0 / num_speakers
    tasks = [(i, split, style, per_speaker_s) for split, group in splits.items() for style in group
             for i in [speakers.index(style)]]
    if any(isinstance(s, EngineSpeaker) for s in speakers):
        from .engines import prepare_engines

        prepare_engines(engines)  # one-time set-up (Kokoro's model file) here, not raced by the workers
    t0 = time.perf_counter()
    results = _run_groups(_librispeech_speaker_task, _groups(tasks, hours * 3600.0, max_groups), dict(
        out_dir=str(out_dir), seed=seed, sample_rate=sample_rate, vocab_size=vocab_size, min_words=min_words,
        max_words=max_words), "synth librispeech", progress)
    report = SynthReport(str(out_dir))
    for split, group in splits.items():
        report.splits[split] = {"speakers": len(group), "utterances": 0, "audio_s": 0.0}
    for st in (st for group in results for st in group):
        sp = report.splits[st["split"]]
        sp["utterances"] += st["utterances"]
        sp["audio_s"] = round(sp["audio_s"] + st["audio_s"], 2)
        report.num_files += st["utterances"]
        report.audio_s += st["audio_s"]
        report.dropped_utterances += st["dropped"]
        report.unaligned_utterances += st.get("unaligned", 0)
        sp.setdefault("engines", {})
        sp["engines"][st.get("engine", "espeak")] = round(sp["engines"].get(st.get("engine", "espeak"), 0.0)
                                                          + st["audio_s"], 2)
    report.audio_s = round(report.audio_s, 2)
    report.wall_s = time.perf_counter() - t0
    _write_text(out_dir / "synth_report.json", [json.dumps(report.to_dict(), indent=2)])
    _write_text(out_dir / "SPEAKERS.TXT", [
        f"{s.speaker_id} | {split} | voice={s.voice_name} rate={s.rate} pitch={s.pitch} snr_db={s.snr_db}"
        if isinstance(s, SpeakerStyle) else
        f"{s.speaker_id} | {split} | voice={s.voice_name} gain={s.gain:.3f} snr_db={s.snr_db}"
        for split, group in splits.items() for s in group
    ])
    log.info("synthesized %d utterances (%.1f s audio) in %.1f s; %d dropped (merged or silent words), "
             "%d without word alignment (engines without word timings)", report.num_files, report.audio_s,
             report.wall_s, report.dropped_utterances, report.unaligned_utterances)
    return report


def _engine_speakers(num_speakers: int, rng: np.random.Generator, engines: list[str],
                     held_out_engines: list[str]) -> tuple[list, dict[str, list]]:
    """Speakers drawn from ``engines`` in turn (espeak: :func:`make_speakers` styles; others: voices with a gain
    and noise floor) and their split: ``held_out_engines`` all to ``test-clean``, the rest 70/15/15."""
    from .engines import make_voices

    check_engines(engines, held_out_engines)
    per_engine = {e: len(range(i, num_speakers, len(engines))) for i, e in enumerate(engines)}
    espeak = make_speakers(per_engine.get("espeak", 0), rng)
    others = iter(make_voices(num_speakers - len(espeak), rng, [e for e in engines if e != "espeak"])
                  if len(espeak) < num_speakers else [])
    espeak_iter, speakers = iter(espeak), []
    next_id = 100 + 3 * num_speakers  # above every espeak speaker id
    for i in range(num_speakers):
        if engines[i % len(engines)] == "espeak":
            speakers.append(next(espeak_iter))
            continue
        snr = float(rng.uniform(10, 30)) if rng.random() < 0.35 else None
        speakers.append(EngineSpeaker(next_id + 3 * i + int(rng.integers(3)), next(others),
                                      float(rng.uniform(0.3, 0.9)), snr))
    engine_of = (lambda s: s.voice.engine if isinstance(s, EngineSpeaker) else "espeak")
    shared = [s for s in speakers if engine_of(s) not in held_out_engines]
    if len(shared) < 3:
        raise ValueError(f"{len(shared)} speakers left for train/dev/test after holding out {held_out_engines}; "
                         "use more speakers")
    train, dev, test = _split_speakers(shared, (0.7, 0.15, 0.15))
    test = test + [s for s in speakers if engine_of(s) in held_out_engines]
    return speakers, {"train-clean-100": train, "dev-clean": dev, "test-clean": test}


def _write_text(path: Path, lines: list[str]) -> None:
    from ..io import atomic_write_text

    atomic_write_text(path, "\n".join(lines) + "\n")


def noise_signal(kind: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """16 kHz background noise: ``white_noise``, ``pink_noise``, ``brown_noise`` or ``hum``; peak 0.3."""
    white = rng.standard_normal(num_samples)
    if kind == "white_noise":
        x = white
    elif kind in ("pink_noise", "brown_noise"):
        spec = np.fft.rfft(white)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        spec /= np.sqrt(f) if kind == "pink_noise" else f
        x = np.fft.irfft(spec, n=num_samples)
    elif kind == "hum":  # a mains-hum-like machine noise with harmonics and a slow wobble
        t = np.arange(num_samples) / 16000.0
        x = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 8)) * (1 + 0.3 * np.sin(2 * np.pi * 0.3 * t))
        x = x + 0.05 * white
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def music_signal(num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A music-like signal: random melodies of harmonic notes with attack/decay envelopes over a bass line."""
    sr, out, t0 = 16000, np.zeros(num_samples, np.float32), 0
    while t0 < num_samples:
        n = int(sr * rng.uniform(0.15, 0.6))
        t = np.arange(n) / sr
        f0 = 220 * 2 ** (rng.integers(-12, 13) / 12)
        note = sum(np.sin(2 * np.pi * f0 * k * t) * 0.6 ** k for k in range(1, 6))
        env = np.minimum(1, t / 0.01) * np.exp(-t * rng.uniform(2, 8))
        bass = 0.5 * np.sin(2 * np.pi * f0 / 4 * t)
        seg = ((note + bass) * env).astype(np.float32)
        out[t0: t0 + n] += seg[: num_samples - t0]
        t0 += n
    return (0.3 * out / max(1e-6, np.abs(out).max())).astype(np.float32)


def _speech_commands_task(tasks: list, *, out_dir: str, words: list[str], per_word: int, num_speakers: int,
                          seed: int) -> list[tuple[str, str]]:
    """Worker: every word for each ``(index, voice)`` in ``tasks``; returns ``(relative path, voice key)``."""
    from .engines import synthesize

    clip = 16000
    out = Path(out_dir)
    written = []
    for index, voice in tasks:
        rng = np.random.default_rng([seed, index])
        gain = float(rng.uniform(0.3, 0.9))
        snr_db = float(rng.uniform(10, 30)) if rng.random() < 0.35 else None
        for word in words:
            for n in range(len(range(index, per_word, num_speakers))):  # this voice's repetitions
                # each repetition a little faster, with its own engine randomness
                take = replace(voice, rate=round(voice.rate * (1 + 0.04 * n), 3), seed=voice.seed + n)
                audio = synthesize(take, word) * gain
                # trim to the audible part, then place it at a random offset inside the 1-second clip
                voiced = np.flatnonzero(np.abs(audio) > 0.02 * gain)
                if voiced.size:
                    audio = audio[voiced[0] : voiced[-1] + 1]
                if len(audio) > clip:  # a slow voice: keep the middle second
                    start = (len(audio) - clip) // 2
                    audio = audio[start : start + clip]
                clip_audio = np.zeros(clip, np.float32)
                offset = int(rng.integers(0, clip - len(audio) + 1))
                clip_audio[offset : offset + len(audio)] = audio
                if snr_db is not None:  # a noise floor across the whole clip
                    level = np.sqrt(np.mean(audio**2) / 10 ** (snr_db / 10))
                    clip_audio += rng.standard_normal(clip).astype(np.float32) * level
                rel = f"{word}/{voice_hash(voice)}_nohash_{n}.wav"
                write_audio(out / rel, np.clip(clip_audio, -1, 1), 16000)
                written.append((rel, voice.key))
    return written


def voice_hash(voice) -> str:
    """An 8-hex-digit speaker id in the style of Speech Commands file names."""
    return hashlib.sha1(voice.key.encode()).hexdigest()[:8]


def synth_speech_commands(
    out_dir: str | Path,
    *,
    words: tuple[str, ...] | list[str] = SPEECH_COMMANDS_V2_WORDS,
    per_word: int = 20,
    num_speakers: int | None = None,
    seed: int = 0,
    noise_seconds: float = 20.0,
    engines: tuple[str, ...] | list[str] = ("espeak",),
    held_out_engines: tuple[str, ...] | list[str] = (),
    progress: bool = True,
    max_groups: int = 8,
) -> SynthReport:
    """Write a Speech Commands v2-layout corpus under ``out_dir``.

    ``{word}/{voice_hash}_nohash_{n}.wav`` (1 s, 16 kHz, int16, the word at a random offset),
    ``validation_list.txt`` and ``testing_list.txt`` (speaker-disjoint), ``_background_noise_/`` with white,
    pink, brown and hum noise files of ``noise_seconds`` each, ``voices.jsonl`` (every speaker's engine,
    voice settings and split) and ``manifest.jsonl`` (every clip with its split: a word-clip manifest the
    few-shot recipe takes as ``libriword_manifest``). Clip ``i`` of a word is said by speaker ``i % num_speakers`` (default
    ``num_speakers = per_word``); ``n`` in the file name counts that speaker's repetitions of the word.

    Args:
        engines: the speech engines speakers are drawn from, in turn (:mod:`speechedge.synth.engines`).
        held_out_engines: engines whose speakers all go to the test list (an unseen synthesizer for
            evaluation); the other speakers are split about 80/10/10 into train/validation/test.
        max_groups: worker processes the work is split into (part of the corpus's identity, see :func:`_groups`).
    """
    from .engines import make_voices

    out_dir = Path(out_dir)
    words = list(words)
    bad = [w for w in words if not re.fullmatch(r"[a-z][a-z_']*", w)]
    if bad or not words:
        raise ValueError(f"words must be non-empty lower-case words, got bad entries {bad}")
    if per_word < 1:
        raise ValueError(f"per_word must be >= 1, got {per_word}")
    engines, held_out_engines = list(engines), list(held_out_engines)
    check_engines(engines, held_out_engines)
    num_speakers = min(num_speakers or per_word, per_word)
    if num_speakers < 3:
        raise ValueError(f"need at least 3 speakers for a speaker-disjoint split, got num_speakers={num_speakers}")
    rng = np.random.default_rng(seed)
    voices = make_voices(num_speakers, rng, engines)
    shared = [v for v in voices if v.engine not in held_out_engines]
    if len(shared) < 3:
        raise ValueError(f"{len(shared)} speakers left for train/val/test after holding out {held_out_engines}; "
                         "use more speakers")
    train, val, test = _split_speakers(sorted(shared, key=voice_hash), (0.8, 0.1, 0.1))
    test = test + [v for v in voices if v.engine in held_out_engines]
    split_of = {v.key: name for name, group in (("train", train), ("val", val), ("test", test)) for v in group}
    t0 = time.perf_counter()
    from .engines import prepare_engines

    prepare_engines(engines)  # one-time set-up (Kokoro's model file) here, not raced by the workers
    results = _run_groups(_speech_commands_task, _groups(list(enumerate(voices)), len(words) * per_word, max_groups), dict(
        out_dir=str(out_dir), words=words, per_word=per_word, num_speakers=num_speakers, seed=seed),
        "synth speech-commands", progress)
    report = SynthReport(str(out_dir), splits={"train": 0, "val": 0, "test": 0})
    lists: dict[str, list[str]] = {"val": [], "test": []}
    for rel, key in (item for group in results for item in group):
        split = split_of[key]
        report.splits[split] += 1
        lists.get(split, []).append(rel)
        report.num_files += 1
        report.audio_s += 1.0
    _write_text(out_dir / "validation_list.txt", sorted(lists["val"]))
    _write_text(out_dir / "testing_list.txt", sorted(lists["test"]))
    _write_text(out_dir / "voices.jsonl", [json.dumps({"speaker": voice_hash(v), "split": split_of[v.key], **asdict(v)})
                                           for v in voices])
    # every clip with its voice-disjoint split: usable directly as a word-clip (LibriWord-style) manifest
    write_manifest(out_dir / "manifest.jsonl", sorted(
        (ClipRecord(id=rel[:-4], word=rel.split("/")[0], speaker=Path(rel).name.split("_")[0], path=rel,
                    split=split_of[key], label=rel.split("/")[0], duration_s=1.0)
         for rel, key in (item for group in results for item in group)), key=lambda r: r.id))
    for kind in ("white_noise", "pink_noise", "brown_noise", "hum"):
        noise = noise_signal(kind, int(noise_seconds * 16000), rng)
        write_audio(out_dir / "_background_noise_" / f"{kind}.wav", noise, 16000)
        report.audio_s += noise_seconds
    report.wall_s = time.perf_counter() - t0
    _write_text(out_dir / "synth_report.json", [json.dumps(report.to_dict(), indent=2)])
    log.info("synthesized %d keyword clips in %.1f s", report.num_files, report.wall_s)
    return report
