"""Streaming ASR on the device: an exported step model run chunk by chunk with named state.

Torch-free: numpy, the Numba frontend and a TFLite interpreter (tested).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from speechedge.ctc import GreedyCTC, ids_to_text
from speechedge.features import FrontendConfig, InputLevel, LevelTracker
from speechedge.kernels.frontend import StreamingLogMel

from .lexicon import LexiconCTC, find_word_list, read_word_list
from .tflite import TFLiteModel

__all__ = ["PRECISIONS", "StreamingASR"]

#: the step models an export may hold (``model_{precision}.tflite``), in the order ``precision="auto"`` takes them:
#: float, then dynamic-range int8 (the shipped model's only file), then the integer ones
PRECISIONS = ("fp32", "dynamic_int8", "int16x8", "int8")


class StreamingASR:
    """An exported streaming ASR folder (``model_{precision}.tflite`` with named state inputs/outputs,
    ``asr.json``, ``tokens.txt``, ``frontend.json``): push audio blocks, get text.

    The model's signature names its inputs (``feats`` and every state tensor) and outputs (``log_probs`` and
    the new state under the same names); ``asr.json`` lists the state's names, shapes, dtypes and initial
    values. The host binds by name and keeps the state between calls.

    Args:
        folder: the export folder.
        precision: which step model runs: ``auto`` (the first of :data:`PRECISIONS` the folder holds) or one of
            them; ``FileNotFoundError`` names the file and what the folder holds when it is missing.
        threads: interpreter threads.
        keep_log_probs: keep every chunk's log-probabilities in ``log_probs`` (tests, analysis).
        decoder: ``greedy`` (best path, the model's own spelling), ``lexicon`` (the best sequence of words of a
            word list, :mod:`.lexicon`) or ``auto`` (``lexicon`` when the folder holds a ``words.txt`` (or
            ``words.txt.gz``) or ``words`` is given, else ``greedy``).
        words: a word list for the lexicon decoder instead of the folder's ``words.txt`` (e.g. the commands of an
            application); ``lexicon_options``: :class:`~.lexicon.LexiconCTC` arguments (``lm_weight``, ...).
    """

    def __init__(self, folder: str | Path, precision: str = "auto", threads: int = 1,
                 keep_log_probs: bool = False, decoder: str = "auto", words: str | Path | None = None,
                 lexicon_options: dict | None = None) -> None:
        self.folder = Path(folder)
        if precision != "auto" and precision not in PRECISIONS:
            raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got {precision!r}")
        held = [p for p in PRECISIONS if (self.folder / f"model_{p}.tflite").exists()]
        if precision == "auto" and held:
            precision = held[0]
        elif precision not in held and (self.folder / "asr.json").exists():
            flag = {"fp32": "", "dynamic_int8": " --dynamic-int8", "int16x8": " --int16x8", "int8": " --int8"}
            raise FileNotFoundError(
                f"{self.folder / f'model_{precision}.tflite'}: no such model in this export (it holds "
                f"{', '.join(held) or 'no step model'}); choose one of those, or re-export with "
                f"`speechedge export{flag.get(precision, '')}`")
        #: which step model runs (``model_{precision}.tflite``)
        self.precision = precision
        self.keep_log_probs = keep_log_probs
        meta_path = self.folder / "asr.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path}: missing; export a streaming ASR experiment with `speechedge export`")
        try:
            self.meta = json.loads(meta_path.read_text())
            self.state_spec = list(self.meta["state"])
            self.chunk_input_frames = int(self.meta["chunk_input_frames"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{meta_path}: not a valid streaming ASR description ({e}); re-run `speechedge export`") \
                from None
        self.net = TFLiteModel(self.folder / f"model_{precision}.tflite", threads)
        missing = {s["name"] for s in self.state_spec} - set(self.net.input_names)
        if missing or "feats" not in self.net.input_names:
            raise ValueError(f"{self.folder}: the model's inputs {self.net.input_names} do not match asr.json "
                             f"(missing {sorted(missing | ({'feats'} - set(self.net.input_names)))})")
        npz = self.folder / "state_init.npz"
        self._init_arrays = dict(np.load(npz)) if npz.exists() else {}
        self.frontend_config = FrontendConfig.load(self.folder / "frontend.json")
        lv = self.folder / "level.json"
        #: the input level normalization (``level.json``; None: features as computed, older exports): each
        #: chunk gets the gain of the last ``level.window_s`` of frames, itself included
        self.level = InputLevel.load(lv) if lv.exists() else None
        if self.level is not None and (self.frontend_config.n_mfcc or not self.level.window_s):
            raise ValueError(f"{lv}: a streaming ASR model needs log-mel features and a window_s; re-run "
                             "`speechedge export` or delete it")
        self.tokens = [line.rsplit(" ", 1)[0] for line in (self.folder / "tokens.txt").read_text().splitlines() if line]
        if decoder not in ("auto", "greedy", "lexicon"):
            raise ValueError(f"decoder must be auto, greedy or lexicon, got {decoder!r}")
        if words is None and decoder != "greedy":
            words = find_word_list(self.folder)
        if decoder == "lexicon" and words is None:
            raise FileNotFoundError(f"{self.folder / 'words.txt'}: no word list for the lexicon decoder; give one "
                                    "(--words FILE; `speechedge prepare words` writes one) or decode greedily")
        #: which decoder turns log-probabilities into text: ``greedy`` or ``lexicon``
        self.decoder_name = "greedy" if decoder == "greedy" or words is None else "lexicon"
        self.lexicon = None
        if self.decoder_name == "lexicon":
            self.word_list = read_word_list(words, self.tokens)
            self.lexicon = LexiconCTC(self.tokens, self.word_list, **(lexicon_options or {}))
        self.reset()

    def initial_state(self) -> dict[str, np.ndarray]:
        """``{name: array}`` of the state before the first chunk."""
        out = {}
        for s in self.state_spec:
            if s["init"] is None:
                out[s["name"]] = self._init_arrays[s["name"]].astype(s["dtype"])
            else:
                out[s["name"]] = np.full(s["shape"], s["init"], dtype=s["dtype"])
        return out

    def reset(self) -> None:
        # frames computed a chunk at a time: small pushes only store samples until a chunk is complete
        self.frontend = StreamingLogMel(dataclasses.replace(self.frontend_config, center=False),
                                        min_frames=self.chunk_input_frames)
        # n_fft / 2 leading zeros make stream frame t the batch (centred) frame t used in training
        self.frontend.push(np.zeros(self.frontend_config.n_fft // 2, np.float32))
        self.pending = np.zeros((0, self.frontend_config.num_features), np.float32)
        self.leveler = LevelTracker(self.level, self.frontend_config, self.chunk_input_frames) \
            if self.level is not None else None
        self.state = self.initial_state()
        self.greedy = GreedyCTC()  # always: the token stream tells when something is said
        self._segment_ids = 0  # greedy ids before the current segment
        if self.lexicon is not None:
            self.lexicon.reset()
        self.chunks = 0
        self.compute_s = 0.0
        self.log_probs: list[np.ndarray] = []  # per chunk, when keep_log_probs

    def push(self, samples: np.ndarray) -> str:
        """Feed samples; returns the text decoded so far."""
        self._run_chunks(self.frontend.push(samples))
        return self.text

    def transcribe(self, audio: np.ndarray, block: int = 1600) -> str:
        """The text of one recording pushed in ``block``-sample pieces (1600 = 100 ms at 16 kHz, as from a
        microphone) as a new stream: :meth:`reset`, :meth:`push` each block, :meth:`flush`."""
        self.reset()
        for i in range(0, len(audio), block):
            self.push(audio[i: i + block])
        return self.flush()

    def _run_chunks(self, feats: np.ndarray) -> None:
        """Add ``(F, frames)`` features and run every chunk they complete."""
        self.pending = np.concatenate([self.pending, feats.T])
        while len(self.pending) >= self.chunk_input_frames:
            x, self.pending = self.pending[: self.chunk_input_frames], self.pending[self.chunk_input_frames:]
            self._run_chunk(x)

    def flush(self) -> str:
        """End of the stream: :meth:`flush_audio`, then :meth:`end_segment`; returns the final text (nothing said in
        the last fraction of a chunk is dropped). :meth:`reset` starts a new stream."""
        self.flush_audio()
        self.end_segment()
        return self.text

    def flush_audio(self) -> None:
        """Complete the last frames as the batch frontend does (``n_fft / 2`` trailing zeros) and run the last
        partial chunk padded with silence features; the segment stays open (:meth:`end_segment` ends it)."""
        self.push(np.zeros(self.frontend_config.n_fft // 2, np.float32))
        self._run_chunks(self.frontend.flush())
        if len(self.pending):
            pad = np.full((self.chunk_input_frames - len(self.pending), self.pending.shape[1]),
                          np.log(self.frontend_config.log_floor), np.float32)
            x, self.pending = np.concatenate([self.pending, pad]), self.pending[:0]
            self._run_chunk(x)

    def _run_chunk(self, x: np.ndarray) -> None:
        if self.level is not None:  # x: (frames, F); the tracker is made by reset() for the level then set
            x = np.ascontiguousarray(self.leveler.push(x.T).T)
        t0 = time.perf_counter()
        out = self.net.run({"feats": x[None], **self.state})
        self.compute_s += time.perf_counter() - t0
        self.state = {s["name"]: out[s["name"]] for s in self.state_spec}
        lp = out["log_probs"][0]
        self.chunks += 1
        if self.keep_log_probs:
            self.log_probs.append(lp)
        self.greedy.push(lp)
        if self.lexicon is not None:
            self.lexicon.push(lp)

    @property
    def text_ids(self) -> list[int]:
        """The greedy decoder's token ids so far (whichever decoder gives the text)."""
        return self.greedy.ids

    def tokens_to_text(self, ids: list[int]) -> str:
        return ids_to_text(self.tokens, ids)

    @property
    def text(self) -> str:
        """The text so far: every segment's, the current one's best hypothesis last."""
        if self.lexicon is not None:
            return self.lexicon.text
        return self.tokens_to_text(self.greedy.ids)

    @property
    def segment_ids(self) -> list[int]:
        """The greedy decoder's token ids of the current segment (something was said in it when not empty)."""
        return self.greedy.ids[self._segment_ids:]

    @property
    def segment_text(self) -> str:
        """The current segment's text so far (the lexicon decoder shows finished words only)."""
        if self.lexicon is not None:
            return self.lexicon.segment_text
        return self.tokens_to_text(self.segment_ids)

    def end_segment(self) -> str:
        """End the current segment (the demo does at a pause) and return its final text. The audio stream and
        the model's state go on; the lexicon decoder finishes the segment's last word and starts a new search."""
        text = self.lexicon.end_segment() if self.lexicon is not None else self.segment_text
        self._segment_ids = len(self.greedy.ids)
        return text
