"""Keyword spotting on the device: an exported KWS folder (:class:`KWSModel`) and the streaming detector.

Torch-free: numpy, the Numba frontend and a TFLite interpreter (tested).

- :class:`KWSModel` loads an exported KWS folder (``speechedge export``): one-shot classification for a
  classifier, embeddings + few-shot enrolment (K clips -> K exemplar embeddings, saved in the keywords file)
  and open-set scoring for a few-shot model.
- :class:`StreamingKWS` is the host-side detector: blocks of samples in, :class:`Detection` events out. Every
  ``stride_ms`` it computes an embedding of the last second, smooths the keyword scores over the last
  ``smooth`` windows, and fires when the same keyword's smoothed score is above the threshold in ``agree``
  consecutive windows, then stays quiet for ``refractory_s``. In window mode (the default) it keeps a ring
  buffer of feature frames and re-runs the whole 1-second model each stride; in stream mode
  (``KWSModel(..., mode="stream")``, a few-shot export's ``stream_fp32.tflite``) each 10 ms frame is
  computed once, the step model carrying its state.

The detector's rule for a few-shot model (:meth:`KWSModel.detection_scores`), chosen on development streams
(``benchmarks/kws_detector.py``): a window's score for keyword k is ``max_i 1 - d_i / s_i`` over k's enrolment
clips ``i``, where ``d_i`` is the squared distance to clip i's embedding (each clip on its own, not the mean
prototype: enrolment clips from different voices or conditions stay separate) and ``s_i`` the 10th percentile
(:data:`BACKGROUND_QUANTILE`) of the same distance over the model's background set (``background.npy``:
embeddings of non-keyword speech, noise and music, written by export). So 0 means "as close to this clip as the
closest tenth of background speech", and a threshold means the same for every keyword and every enrolment
clip, whether the clip lies where background speech is dense or sparse. Calibrated once at enrolment; stored
with the exemplars.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import numbers
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechedge.audio import far_field_copies, fit_length, from_int16
from speechedge.features import FrontendConfig, InputLevel, LevelTracker
from speechedge.io import atomic_write_text
from speechedge.kernels.frontend import StreamingLogMel, log_mel

from .tflite import TFLiteModel, dequantize, median_ms, quantize

log = logging.getLogger(__name__)

__all__ = ["KWSModel", "StreamingKWS", "StreamStep", "Detection", "detect_file", "agreement_streak", "context_padding",
           "UNKNOWN"]

UNKNOWN = "_unknown_"
#: the background distance quantile that scales each enrolment clip's distances (the detector's rule; chosen on
#: development streams among 0.005-0.2 and the mean, benchmarks/kws_detector.py rules 5, 11, 18-19, 105-300)
BACKGROUND_QUANTILE = 0.1


def context_padding(lag: int, window: int, chunk: int) -> tuple[int, int]:
    """Frames of silence ``(left, right)`` around a clip's ``window`` frames so that streaming the whole from zero
    state ends a chunk exactly when the pooled window covers the clip; ``left >= lag`` (past the warm-up)."""
    right = lag
    return lag + (-(lag + window + right)) % chunk, right


class StreamStep:
    """A streaming step model (``stream.json`` + its TFLite model): state in, state out, the last window's
    embedding. Export verifies with it and the runtime detects with it, so both run the same loop.

    Args:
        net: the step model.
        spec: the parsed ``stream.json`` (chunk, window, lag, state names and shapes).
        source: what to name in an error about ``spec``.
    """

    def __init__(self, net: TFLiteModel, spec: dict, source: str = "stream.json") -> None:
        self.net, self.spec = net, spec
        try:
            self.chunk = int(spec["chunk_frames"])
            self.window = int(spec["window_frames"])
            self.lag = int(spec["lag_frames"])
            self.state_shapes = {s["name"]: tuple(s["shape"]) for s in spec["state"]}
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{source}: malformed ({e!r}); re-run `speechedge export`") from None
        ins, outs = net._in, net._out
        names = ["feats", *self.state_shapes]
        if set(ins) != set(names) or set(outs) != {"embedding", *self.state_shapes}:
            raise ValueError(f"{source}: the step model's inputs {sorted(ins)} and outputs {sorted(outs)} are not "
                             f"feats + embedding + the listed state; re-run `speechedge export`")
        # per state tensor: name, input index, output detail, input detail, same quantization in and out
        self._plan = [(k, ins[k]["index"], outs[k], ins[k], ins[k]["dtype"] == outs[k]["dtype"]
                       and ins[k]["quantization"] == outs[k]["quantization"]) for k in self.state_shapes]

    @classmethod
    def from_folder(cls, folder: Path, precision: str, threads: int) -> StreamStep:
        """``stream_{precision}.tflite`` (else the fp32 one) and ``stream.json`` of an export folder."""
        path = folder / f"stream_{precision}.tflite"
        net = TFLiteModel(path if path.exists() else folder / "stream_fp32.tflite", threads)
        return cls(net, _read_json_object(folder / "stream.json"), str(folder / "stream.json"))

    def init_state(self) -> dict[str, np.ndarray]:
        return {k: np.zeros(s, np.float32) for k, s in self.state_shapes.items()}

    def step(self, feats: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(F, chunk)`` new frames -> (the embedding ``(dim,)`` of the last window, the new state), the state as
        float (what calibration and the checks read); the detector runs :meth:`step_raw`."""
        out = self.net.run({"feats": feats[None, None], **state})
        return out["embedding"][0], {k: out[k] for k in state}

    def init_raw(self) -> dict[str, np.ndarray]:
        """The initial state in the model's own types (int8 for an int8 model): what :meth:`step_raw` carries."""
        d = self.net._in
        return {k: quantize(v, d[k]) for k, v in self.init_state().items()}

    def step_raw(self, feats: np.ndarray, raw: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """:meth:`step` with the state kept in the model's own types: each output goes back in as it came out,
        requantized only where its quantization differs from its input's (the export ties them, so never for its
        models), instead of a dequantize and quantize of every state tensor around every invoke (4x the invoke's
        own time for the int8 microcontroller model on x86); by name-free index lists. Equal to :meth:`step`."""
        it, feats_d, emb_d = self.net.it, self.net._in["feats"], self.net._out["embedding"]
        it.set_tensor(feats_d["index"], quantize(feats[None, None], feats_d))
        for k, i, _, _, _ in self._plan:
            it.set_tensor(i, raw[k])
        it.invoke()
        new = {}
        for k, _, dout, din, same in self._plan:
            y = it.get_tensor(dout["index"])
            new[k] = y if same else quantize(dequantize(y, dout), din)
        return dequantize(it.get_tensor(emb_d["index"]), emb_d)[0], new

    def median_step_ms(self, n: int = 1000) -> float:
        """Median wall time of one :meth:`step_raw` as the detector takes it (set the frames and the state, invoke,
        read the embedding and the new state), in milliseconds."""
        feats = np.zeros(tuple(self.net._in["feats"]["shape"][2:]), np.float32)
        state = self.init_raw()

        def step() -> None:
            nonlocal state
            _, state = self.step_raw(feats, state)

        return median_ms(step, n)

    def embed(self, feats: np.ndarray) -> np.ndarray:
        """The last embedding of ``feats (F, T)`` (T a multiple of the chunk) streamed from zero state."""
        state, emb = self.init_raw(), None
        for i in range(0, feats.shape[1], self.chunk):
            emb, state = self.step_raw(feats[:, i: i + self.chunk], state)
        return emb


def _read_json_object(path: Path) -> dict:
    """A JSON object from ``path``; a clear one-line error naming the file otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


class KWSModel:
    """An exported KWS model folder.

    Args:
        folder: the output of ``speechedge export`` (or a shipped model, :mod:`speechedge.pretrained`).
        precision: ``"fp32"`` or ``"int8"`` (``model_{precision}.tflite``); ``"auto"`` prefers int8.
        keywords_file: where enrolled keywords are read and saved; default ``folder/keywords.json``, or the
            per-user file for a shipped (read-only) model.
        mode: ``"window"`` (the 1-second model on every window, the default: the most accurate detector for
            models trained on isolated clips, README) or ``"stream"`` (the streaming step model, where the export
            has one: each frame is computed once, 2-3x less CPU, decisions 0.58 s later; enrolment and the
            background set then use the streaming embedding).
    """

    def __init__(self, folder: str | Path, precision: str = "auto", threads: int = 1,
                 keywords_file: str | Path | None = None, mode: str = "window") -> None:
        from speechedge.pretrained import is_pretrained, user_keywords_file

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such model folder (run `speechedge export` first)")
        if precision == "auto":
            precision = "int8" if (self.folder / "model_int8.tflite").exists() else "fp32"
        self.precision = precision
        self.net = TFLiteModel(self.folder / f"model_{precision}.tflite", threads)
        self.frontend = FrontendConfig.load(self.folder / "frontend.json")
        lv = self.folder / "level.json"
        #: the input level normalization (``level.json``; None: features as computed, older exports)
        self.level = InputLevel.load(lv) if lv.exists() else None
        if self.level is not None and self.frontend.n_mfcc:
            raise ValueError(f"{lv}: level normalization needs log-mel features, but frontend.json asks for MFCC; "
                             "delete level.json")
        report = _read_json_object(self.folder / "report.json") if (self.folder / "report.json").exists() else {}
        self.kind = report.get("kind", "classifier" if (self.folder / "labels.txt").exists() else "embedding")
        self.input_frames = int(self.net.inputs[0]["shape"][-1])
        # the clip length the model was trained with (report.json); older exports: the centred-frame inverse
        self.clip_samples = int(report.get("clip_samples", (self.input_frames - 1) * self.frontend.hop_length))
        self.labels = (self.folder / "labels.txt").read_text().split() if self.kind == "classifier" else []
        fs = self.folder / "fewshot.json"
        self.fewshot = _read_json_object(fs) if fs.exists() else {"threshold": None, "temperature": 1.0}
        dp = self.folder / "dummy_prototypes.npz"
        if str(self.fewshot.get("unknown_rule", "")).startswith("dummy") and not dp.exists():
            # silently falling back to the threshold rule would change what fires (3 -> 31 detections a minute)
            raise FileNotFoundError(f"{dp}: missing, but {fs.name} says the open-set rule uses dummy prototypes; "
                                    "re-run `speechedge export`")
        self.dummy = dict(np.load(dp)) if dp.exists() else None
        if mode not in ("stream", "window"):
            raise ValueError(f"mode must be window or stream, got {mode!r}")
        has_stream = self.kind == "embedding" and (self.folder / "stream.json").exists()
        if mode == "stream" and not has_stream:
            raise FileNotFoundError(f"{self.folder}: no streaming model (stream.json); re-run `speechedge export` "
                                    "(few-shot models only) or use the window mode")
        self.mode = mode
        self._has_stream, self._precision, self._threads = has_stream, precision, threads
        self._stream: StreamStep | None = None
        if mode == "stream":
            self.stream  # noqa: B018  (load now: a broken stream.json is an error at construction, as before)
        bg = self.folder / ("background_stream.npy" if self.mode == "stream" else "background.npy")
        self.background = self._read_background(bg) if bg.exists() else None
        if keywords_file is not None:
            self.keywords_file = Path(keywords_file)
        elif is_pretrained(self.folder):
            self.keywords_file = user_keywords_file(self.folder.name)
        else:
            self.keywords_file = self.folder / "keywords.json"
        self.exemplars: dict[str, np.ndarray] = {}  # name -> (clips, dim) enrolment embeddings of this mode
        self.background_scale: dict[str, np.ndarray] = {}  # name -> (clips,) per-exemplar scale s_i of the rule
        self._other: dict[str, dict] = {}  # name -> the other mode's entry, kept when the file is written
        self.enrolled_level: dict[str, dict | None] = {}  # name -> the input level its exemplars were computed at
        self.score_offset: dict[str, float] = {}  # name -> subtracted from its score (text enrolment, :meth:`enroll`)
        if self.keywords_file.exists():
            self._read_keywords(self.keywords_file)
            stale = sorted(k for k, v in self.enrolled_level.items() if self.level is not None
                           and v != self.level.to_dict())
            if stale:  # enrolled before the model had its input level normalization (or with another one)
                log.warning("%s: %s enrolled without this model's input level normalization (level.json); "
                            "re-enrol %s for the best detection from a quiet microphone", self.keywords_file,
                            ", ".join(stale), "them" if len(stale) > 1 else "it")

    @property
    def dim(self) -> int:
        return int(self.net.outputs[0]["shape"][-1])

    @property
    def rule(self) -> str:
        """The detector's rule for this model: ``"calibrated"`` or ``"softmax"`` (:attr:`StreamingKWS.DEFAULTS`)."""
        return "calibrated" if self.calibrated else "softmax"

    def detector_defaults(self) -> tuple[float, int, int]:
        """``(threshold, smooth, agree)`` of :class:`StreamingKWS` for this model: the model's own operating point
        for its mode (``fewshot.json`` ``detector`` / ``detector_stream``) for the calibrated rule, else
        :attr:`StreamingKWS.DEFAULTS`."""
        own = self.fewshot.get(self.detector_key) if self.calibrated else None
        if own is None:
            return StreamingKWS.DEFAULTS[self.rule]
        try:
            return float(own["threshold"]), int(own["smooth"]), int(own["agree"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{self.folder / 'fewshot.json'}: bad '{self.detector_key}' entry {own!r} (needs an object with "
                             "threshold, smooth, agree); fix or delete it") from e

    def detector_peak_margin(self) -> float | None:
        """The peak rule of this mode's operating point (``fewshot.json`` ``detector`` / ``detector_stream``
        ``peak_margin``): a single window whose raw score reaches ``threshold + peak_margin`` fires without
        smoothing or agreement; None when the model's operating point has none (or the rule is not calibrated)."""
        own = self.fewshot.get(self.detector_key) if self.calibrated else None
        if not isinstance(own, dict) or own.get("peak_margin") is None:
            return None
        m = own["peak_margin"]
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m) or m < 0:
            raise ValueError(f"{self.folder / 'fewshot.json'}: '{self.detector_key}' peak_margin must be a finite number "
                             f">= 0 (null or absent: no peak rule), got {m!r}; fix or delete it")
        return float(m)

    def text_offset(self, mode: str | None = None) -> float | None:
        """How much higher a keyword enrolled with synthetic renderings must score (``enroll(..., rendered=...)``):
        this mode's text operating point minus its plain one (``fewshot.json`` ``detector_text`` /
        ``detector_stream_text``, both chosen on the development streams), or None when the model has none."""
        return self.enrolment_offset("text", mode)

    def enrolment_offset(self, variant: str, mode: str | None = None) -> float | None:
        """How much higher a keyword enrolled with extra exemplars must score: ``variant`` ``"text"`` (synthetic
        renderings, ``enroll(..., rendered=...)``) or ``"far"`` (far-field copies, ``enroll(..., far_field=True)``);
        this mode's operating point for that enrolment minus its plain one (``fewshot.json`` ``detector_{variant}``
        / ``detector_stream_{variant}``, both chosen on the development streams: more exemplars come closer to
        more speech), or None when the model has none."""
        key = "detector_stream" if (mode or self.mode) == "stream" else "detector"
        plain, own = self.fewshot.get(key), self.fewshot.get(f"{key}_{variant}")
        try:
            return float(own["threshold"]) - float(plain["threshold"])
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def stream(self) -> StreamStep | None:
        """The export's streaming step model (None without one), loaded on first use: window-mode detection
        never needs it, enrolment does (it writes both modes' exemplars)."""
        if self._stream is None and self._has_stream:
            self._stream = StreamStep.from_folder(self.folder, self._precision, self._threads)
        return self._stream

    @property
    def detector_key(self) -> str:
        """The ``fewshot.json`` entry of this mode's detector operating point."""
        return "detector_stream" if self.mode == "stream" else "detector"

    @property
    def calibrated(self) -> bool:
        """Whether the detector uses the calibrated nearest-exemplar rule (a few-shot model with a background
        set); otherwise it uses the open-set softmax of :meth:`scores`."""
        return self.kind == "embedding" and self.background is not None

    @property
    def keywords(self) -> dict[str, np.ndarray]:
        """``{name: prototype}``: the mean enrolment embedding of each keyword (D-ProtoNet's prototype)."""
        return {k: e.mean(0) for k, e in self.exemplars.items()}

    def forget(self, name: str | None = None) -> None:
        """Drop one enrolled keyword (all with ``None``); :meth:`save_keywords` writes the change."""
        for k in [name] if name is not None else list(self.exemplars):
            self.exemplars.pop(k, None)
            self.score_offset.pop(k, None)
            self.background_scale.pop(k, None)
            self._other.pop(k, None)
            self.enrolled_level.pop(k, None)

    def _read_background(self, path: Path) -> np.ndarray:
        try:
            a = np.load(path, allow_pickle=False).astype(np.float32)
        except (ValueError, OSError) as e:
            raise ValueError(f"{path}: not a readable .npy array ({e}); re-run `speechedge export`") from None
        if a.ndim != 2 or a.shape[1] != self.dim or len(a) < 10 or not np.isfinite(a).all():
            raise ValueError(f"{path}: expected a finite (N >= 10, {self.dim}) array of background embeddings, got "
                             f"{a.shape}; re-run `speechedge export`")
        return a

    def _read_keywords(self, path: Path) -> None:
        """Exemplars (and calibration) from a keywords file; anything but finite vectors of the model's size is
        an error naming the file (a NaN vector would make the detector fire every second). Reads format 3
        (``{"format": 3, "keywords": {name: {"exemplars": [[...]], "scales": [s_1, ...], "stream":
        {"exemplars": ..., "scales": ...}}}}``: the window model's exemplars and, for a model with a streaming
        step model, the streaming ones), format 2 (the same with the earlier rule's one ``background_distance``
        per keyword: the scales are recomputed from the background set) and the older ``{name: prototype}``
        (one exemplar each)."""
        data = _read_json_object(path)
        entries = data.get("keywords") if data.get("format") in (2, 3) else \
            {k: {"exemplars": [v]} for k, v in data.items()}
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: 'keywords' must be an object of name -> {{exemplars: [...]}}")
        for name, entry in entries.items():
            if self.mode == "stream":
                if not (isinstance(entry, dict) and isinstance(entry.get("stream"), dict)):
                    raise ValueError(f"{path}: keyword {name!r} was enrolled without the streaming model; re-enrol it "
                                     "(speechedge demo kws --enroll ... --name WORD) or use mode='window'")
                self._other[name] = {k: v for k, v in entry.items() if k != "stream"}
                entry = entry["stream"]
            elif isinstance(entry, dict) and isinstance(entry.get("stream"), dict):
                self._other[name] = entry["stream"]
            ex = entry.get("exemplars") if isinstance(entry, dict) else None
            try:
                a = np.asarray(ex, np.float32)
            except (TypeError, ValueError):
                a = np.zeros(0, np.float32)
            if a.ndim != 2 or a.shape[1] != self.dim or len(a) == 0 or not np.isfinite(a).all():
                raise ValueError(f"{path}: keyword {name!r} is not a list of finite vectors of {self.dim} numbers; "
                                 "re-enrol it (speechedge demo kws --enroll ... --name WORD) or delete the file")
            self.exemplars[name] = a
            offset = entry.get("offset", 0.0) if isinstance(entry, dict) else 0.0
            if isinstance(offset, bool) or not (isinstance(offset, (int, float)) and math.isfinite(offset)):
                raise ValueError(f"{path}: keyword {name!r} has a bad 'offset' {offset!r} (a finite number); re-enrol it")
            self.score_offset[name] = float(offset)
            level = entry.get("level") if isinstance(entry, dict) else None
            self.enrolled_level[name] = level if isinstance(level, dict) else None
            if self.background is not None:
                try:
                    s = np.asarray(entry.get("scales"), np.float64)
                except (TypeError, ValueError):
                    s = np.zeros(0)
                if s.shape != (len(a),) or not (np.isfinite(s).all() and (s > 0).all()):
                    s = self._background_scales(a)  # older file, or enrolled without a background set
                self.background_scale[name] = s

    # -- features and inference --------------------------------------------------------------------------
    def fit_length(self, audio: np.ndarray) -> np.ndarray:
        """One clip (float in [-1, 1) or int16, scaled to float) centre-cropped or zero-padded to the model's input
        length (:func:`speechedge.audio.fit_length`)."""
        return fit_length(_as_float(audio), self.clip_samples)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """One clip (float in [-1, 1) or int16) -> ``(n_mels, frames)`` as in training, brought up to the
        model's input level when it is quieter (:meth:`normalize_level`)."""
        return self.normalize_level(log_mel(self.fit_length(audio), self.frontend))

    def normalize_level(self, feats: np.ndarray) -> np.ndarray:
        """One clip's ``feats (F, T)`` with the model's input level normalization at the clip's own gain
        (:class:`speechedge.features.InputLevel`: a clip quieter than the training clips is amplified to their
        level; louder ones and steady noise are unchanged); the same array without a ``level.json``. Streams go
        through :class:`StreamingKWS`, which holds the gain between windows."""
        return feats if self.level is None else self.level.apply(feats, self.frontend.log_floor)

    def run_features(self, feats: np.ndarray) -> np.ndarray:
        """``(n_mels, frames)`` -> the model output (logits or embedding), float32 ``(dim,)``."""
        return self.net(feats[None, None])[0][0]

    def classify(self, audio: np.ndarray) -> tuple[str, dict[str, float]]:
        """Label and scores of one clip: softmax over the classes for a classifier, or the enrolled keywords'
        open-set scores (:meth:`scores`) for a few-shot model."""
        out = self.run_features(self.features(audio))
        if self.kind == "classifier":
            p = np.exp(out - out.max())
            p /= p.sum()
            scores = dict(zip(self.labels, p.tolist()))
        else:
            scores = self.scores(out)
        best = max(scores, key=scores.get) if scores else UNKNOWN
        return best, scores

    # -- few-shot ------------------------------------------------------------------------------------------
    def embed(self, audio: np.ndarray, mode: str | None = None) -> np.ndarray:
        """One clip's embedding: of the window model, or (``mode="stream"``, the default in stream mode) the
        streaming model's for the clip spoken in silence (:func:`context_padding`), as the detector sees it."""
        if self.kind != "embedding":
            raise ValueError(f"{self.folder}: a classifier has no embeddings to enrol keywords with; export a "
                             "few-shot (kws-fewshot) experiment")
        if (mode or self.mode) == "window":
            return self.run_features(self.features(audio))
        st = self.stream
        left, right = context_padding(st.lag, st.window, st.chunk)
        hop = self.frontend.hop_length
        x = np.concatenate([np.zeros(left * hop, np.float32), self.fit_length(audio), np.zeros(right * hop, np.float32)])
        return st.embed(self.normalize_level(log_mel(x, self.frontend)))

    def enroll(self, name: str, clips: list[np.ndarray], *, save: bool = True,
               rendered: list[np.ndarray] = (), far_field: bool = False) -> np.ndarray:
        """Prototype of ``name`` = mean embedding of ``clips``; kept (and saved to ``keywords.json``).

        ``rendered``: synthetic renderings of the keyword (:func:`speechedge.synth.engines.render_keyword`), extra
        exemplars; the keyword's score then carries the model's :meth:`text_offset` (its detector was chosen for
        recorded clips; more exemplars come closer to more speech), frozen into the keywords file at enrolment
        (re-enrol after re-calibrating). A model without a text operating point gets none, with a warning. The
        prototype (the uncalibrated softmax rule's) is then the mean over recordings and renderings alike.

        ``far_field``: each recorded clip also as heard across a room (:func:`speechedge.audio.far_field_copies`,
        RT60 0.3 / 0.5 / 0.8 s, seeded by the clip's position), extra exemplars for a keyword said at a distance
        from the microphone after enrolling close to it; the score carries :meth:`enrolment_offset` ``"far"`` as
        renderings carry the text offset. Not combined with ``rendered`` (each has its own operating point)."""
        clips = list(clips)
        if far_field and len(rendered):
            raise ValueError(f"enroll {name!r}: far_field and rendered (text enrolment) each have their own operating "
                             "point and are not calibrated together; use one")
        if not clips:
            raise ValueError(f"enroll {name!r}: no clips given (need 1 or more, 3-5 work well)")
        if not name or name == UNKNOWN:
            raise ValueError(f"enroll: bad keyword name {name!r}")
        min_samples = self.frontend.sample_rate // 10
        short = [i for i, c in enumerate(clips) if np.asarray(c).size < min_samples]
        if short:
            raise ValueError(f"enroll {name!r}: clip(s) {short} shorter than 0.1 s; record the whole word")
        rendered = list(rendered)
        variant = "text" if rendered else "far" if far_field else None
        offsets = {m: (self.enrolment_offset(variant, m) if variant else 0.0) for m in ("window", "stream")}
        if variant and offsets[self.mode] is None:
            log.warning("%s: no %s enrolment operating point (fewshot.json %s_%s); the extra exemplars of %r use "
                        "the recorded clips' threshold, and false alarms may rise", self.folder, variant,
                        self.detector_key, variant, name)
        offsets = {m: o or 0.0 for m, o in offsets.items()}
        if far_field:
            sr = self.frontend.sample_rate
            rendered = [c for i, x in enumerate(clips)
                        for c in far_field_copies(_as_float(x), sr, seed=i)]
        clips = clips + rendered
        ex = np.stack([self.embed(c) for c in clips]).astype(np.float32)
        self.exemplars[name] = ex
        self.score_offset[name] = offsets[self.mode]
        if self.background is not None:
            self.background_scale[name] = self._background_scales(ex)
        if self._has_stream:  # the other mode's exemplars too, so the keywords file serves both
            other = "window" if self.mode == "stream" else "stream"
            oex = np.stack([self.embed(c, other) for c in clips]).astype(np.float32)
            bg = self.folder / ("background_stream.npy" if other == "stream" else "background.npy")
            self._other[name] = {"exemplars": oex.tolist(), **(
                {"scales": self._background_scales(oex, self._read_background(bg)).tolist()} if bg.exists() else {}),
                **({"level": self.level.to_dict()} if self.level is not None else {}),
                **({"offset": offsets[other]} if offsets[other] else {})}
        self.enrolled_level[name] = self.level.to_dict() if self.level is not None else None
        if save:
            self.save_keywords()
        return ex.mean(0)

    def _background_scales(self, exemplars: np.ndarray, background: np.ndarray | None = None) -> np.ndarray:
        """Per exemplar: the :data:`BACKGROUND_QUANTILE` quantile over the background set of the squared distance
        to it (the scale ``s_i`` of :meth:`detection_scores`)."""
        background = self.background if background is None else background
        d = ((background[:, None, :].astype(np.float64) - exemplars[None]) ** 2).sum(-1)
        # 0 only for a degenerate (untrained) model
        return np.maximum(np.quantile(d, BACKGROUND_QUANTILE, axis=0), np.finfo(np.float32).tiny)

    def save_keywords(self) -> Path:
        """Write the enrolled exemplars and their calibration to :attr:`keywords_file` (atomically)."""
        self.keywords_file.parent.mkdir(parents=True, exist_ok=True)
        entries = {}
        for k, e in self.exemplars.items():
            own = {"exemplars": e.tolist(), **({"scales": self.background_scale[k].tolist()}
                                                if k in self.background_scale else {}),
                   **({"level": self.enrolled_level[k]} if self.enrolled_level.get(k) else {}),
                   **({"offset": self.score_offset[k]} if self.score_offset.get(k) else {})}
            other = self._other.get(k)
            if self.mode == "stream":
                entries[k] = {**(other or {}), "stream": own}
            else:
                entries[k] = {**own, **({"stream": other} if other else {})}
        data = {"format": 3, "keywords": entries}
        try:
            return atomic_write_text(self.keywords_file, json.dumps(data))
        except PermissionError:
            raise PermissionError(f"{self.keywords_file}: cannot write the enrolled keywords here (read-only); pass "
                                  "--keywords FILE (a file you can write)") from None

    def detection_scores(self, embedding: np.ndarray) -> dict[str, float]:
        """The detector's per-keyword scores of one window: ``max_i 1 - d_i / s_i`` over keyword k's enrolment
        exemplars, ``d_i`` the squared distance to exemplar i and ``s_i`` its scale (:attr:`background_scale`);
        1 = identical to an enrolment clip, 0 = as close as the closest tenth of background speech; minus the
        keyword's :attr:`score_offset` (text enrolment, :meth:`enroll`; 0 otherwise). Without a
        background set (older exports) the open-set softmax of :meth:`scores`."""
        if not self.calibrated:
            return self.scores(embedding)
        return {k: float((1.0 - ((e - embedding[None]) ** 2).sum(1) / self.background_scale[k]).max())
                - self.score_offset.get(k, 0.0) for k, e in self.exemplars.items()}

    def dummy_prototypes(self) -> np.ndarray | None:
        """D-ProtoNet's dummy prototypes for the enrolled set ``(L, dim)`` (the generator shipped by export)."""
        if self.dummy is None or not self.exemplars:
            return None
        w = self.dummy
        p = np.stack(list(self.keywords.values()))
        h = np.maximum(p @ w["point.0.weight"].T + w["point.0.bias"], 0)
        h = np.maximum(h @ w["point.2.weight"].T + w["point.2.bias"], 0)
        out = h.max(0) @ w["out.weight"].T + w["out.bias"]
        return out.reshape(-1, p.shape[1]).astype(np.float32)

    def scores(self, embedding: np.ndarray) -> dict[str, float]:
        """Open-set keyword scores in [0, 1] that sum to 1 with the ``_unknown_`` entry.

        With prototypes ``p_k`` and squared distances ``d_k``, the scores are a softmax over ``-d_k / T`` plus an
        unknown logit: for a D-ProtoNet model, the nearest dummy prototype's ``-d / (gamma T)`` (as in training);
        otherwise ``-threshold / T``, so that a keyword wins only when nearer than the threshold (export sets it
        to the 95th percentile of held-out clips' distance to their own class prototype).
        """
        protos = self.keywords
        if not protos:
            return {}
        names = list(protos)
        d = np.array([float(((embedding - protos[k]) ** 2).sum()) for k in names])
        t = float(self.fewshot.get("temperature", 1.0))
        logits = -d / t
        dummies = self.dummy_prototypes()
        thr = self.fewshot.get("threshold")
        if dummies is not None:
            dd = ((embedding[None] - dummies) ** 2).sum(1)
            logits = np.append(logits, -float(dd.min()) / (float(self.fewshot.get("gamma", 1.0)) * t))
            names = names + [UNKNOWN]
        elif thr is not None:
            logits = np.append(logits, -float(thr) / t)
            names = names + [UNKNOWN]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        return dict(zip(names, p.tolist()))


@dataclass(frozen=True)
class Detection:
    keyword: str
    time_s: float  # stream time of the end of the window that fired
    score: float

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


class StreamingKWS:
    """Keyword detection over a stream: every ``stride_ms`` the embedding of the last window is scored.

    With the model in stream mode (:attr:`KWSModel.mode`) the streaming step model runs once per chunk on the
    new frames only, and its decisions lag the audio by the model's :attr:`lag_s` (its centred convolutions
    need that much look-ahead); in window mode the 1-second model is re-run on a ring buffer of frames.

    Args:
        model: a :class:`KWSModel` (a few-shot model needs enrolled keywords).
        threshold: smoothed score that fires a detection (default :attr:`DEFAULTS` of the model's rule).
        stride_ms: how often the window is evaluated (a multiple of the 10 ms hop).
        smooth: windows averaged per keyword (posterior smoothing).
        agree: consecutive windows whose best smoothed keyword must be the same and above the threshold.
        peak_margin: the peak rule: one window whose raw (unsmoothed) score reaches ``threshold + peak_margin``
            fires at once. A keyword said alone holds the threshold for many windows; one followed by more
            speech (a wake word and a command without a pause) has one or two clean windows, which smoothing
            and agreement average away. Default: the model's own (:meth:`KWSModel.detector_peak_margin`);
            ``math.inf`` switches it off.
        refractory_s: quiet time after a detection (any keyword).
        ignore: labels that never fire (``_unknown_``, ``_silence_``, ``_background_noise_``).
    """

    #: (threshold, smooth, agree) per rule: the calibrated nearest-exemplar rule's operating point was chosen on
    #: development streams (about 1 false alarm per hour there, benchmarks/kws_detector.py); the softmax rules
    #: (classifiers, older few-shot exports) keep the earlier defaults. A model whose ``fewshot.json`` holds a
    #: ``detector`` entry (its own operating point, chosen on development streams by
    #: ``benchmarks/kws_calibrate_detector.py``) uses that instead.
    DEFAULTS = {"calibrated": (0.67, 4, 4), "softmax": (0.7, 3, 1)}

    def __init__(self, model: KWSModel, *, threshold: float | None = None, stride_ms: float = 100.0,
                 smooth: int | None = None, agree: int | None = None, peak_margin: float | None = None,
                 refractory_s: float = 1.0, ignore=(UNKNOWN, "_silence_", "_unknown_", "_background_noise_")) -> None:
        if model.kind == "embedding" and not model.exemplars:
            raise ValueError(f"{model.folder}: no enrolled keywords; enrol some first (KWSModel.enroll or "
                             "`speechedge demo kws --enroll ...`)")
        hop = model.frontend.hop_length * 1000 / model.frontend.sample_rate
        if stride_ms < hop or abs(stride_ms / hop - round(stride_ms / hop)) > 1e-6:
            raise ValueError(f"stride_ms must be a positive multiple of the {hop:g} ms hop, got {stride_ms}")
        d_threshold, d_smooth, d_agree = model.detector_defaults()
        threshold = d_threshold if threshold is None else threshold
        smooth = d_smooth if smooth is None else smooth
        agree = d_agree if agree is None else agree
        if model.calibrated:  # 1 - d/s: any value up to 1 (0 = as close as the closest tenth of background speech)
            if not (math.isfinite(threshold) and threshold <= 1):
                raise ValueError(f"threshold must be a number <= 1 for the calibrated rule, got {threshold}")
        elif not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if smooth < 1 or agree < 1:
            raise ValueError(f"smooth and agree must be >= 1 window, got smooth={smooth}, agree={agree}")
        if peak_margin is None:
            peak_margin = model.detector_peak_margin()
        elif isinstance(peak_margin, bool) or not isinstance(peak_margin, numbers.Real) or not peak_margin >= 0:
            raise ValueError(f"peak_margin must be a number >= 0 (inf: no peak rule), got {peak_margin!r}")
        #: a single window at or above ``threshold + peak_margin`` fires (None or inf: no peak rule)
        self.peak_margin = None if peak_margin is None or math.isinf(peak_margin) else peak_margin
        self.model, self.threshold, self.smooth, self.refractory_s = model, threshold, int(smooth), refractory_s
        self.agree = int(agree)
        self.ignore = set(ignore)
        self.stride_frames = int(round(stride_ms / hop))
        self.stream = model.stream if model.mode == "stream" else None
        if self.stream is not None and self.stride_frames % self.stream.chunk:
            raise ValueError(f"stride_ms must be a multiple of the streaming model's {self.stream.chunk * hop:g} ms "
                             f"chunk, got {stride_ms}")
        #: seconds by which a decision lags the audio it is about (0 for the window model)
        self.lag_s = self.stream.lag * hop / 1000 if self.stream is not None else 0.0
        self.frames = model.input_frames
        # frames computed a few at a time, aligned so that the frame of every decision (the first at half a
        # window, then every stride; the streaming model's at chunk ends) comes with the push that completes it
        batch = self.stream.chunk if self.stream is not None else math.gcd(self.stride_frames, self.frames // 2)
        self.frontend = StreamingLogMel(dataclasses.replace(model.frontend, center=False), min_frames=batch)
        self.ring = np.zeros((model.frontend.num_features, self.frames), np.float32)
        #: the input level's state (its window at least the model's; the gain held through windows without speech)
        self.leveler = LevelTracker(model.level, model.frontend, self.frames) if model.level is not None else None
        self.reset()

    def reset(self) -> None:
        self.frontend.reset()
        self.frontend.push(np.zeros(self.model.frontend.n_fft // 2, np.float32))  # = the batch frontend's centring
        self.ring[:] = np.log(self.model.frontend.log_floor)  # silence
        if self.stream is not None:
            self.state = self.stream.init_raw()
            self.pending: list[np.ndarray] = []  # frames not yet stepped (fewer than a chunk)
        self.filled = 0
        if self.leveler is not None:
            self.leveler.reset()
        self.since_eval = 0
        self.history: list[dict[str, float]] = []
        self.streak: tuple[str | None, int] = (None, 0)  # keyword above the threshold, consecutive windows
        self.last_fire_s = -np.inf
        self.last_scores: dict[str, float] = {}
        self.windows = 0
        self.invoke_s = 0.0
        #: set to [] to record (time, smoothed scores, raw scores) of every window
        self.trace: list[tuple[float, dict[str, float], dict[str, float]]] | None = None

    @property
    def time_s(self) -> float:
        """Seconds of audio pushed since the last reset."""
        fe = self.model.frontend
        return (self.frontend.num_samples_seen - fe.n_fft // 2) / fe.sample_rate

    def push(self, samples: np.ndarray) -> list[Detection]:
        """Feed a block of samples (any size, float in [-1, 1) or int16); returns the detections it caused."""
        feats = self.frontend.push(samples)
        if self.stream is not None:
            return self._push_stream(feats)
        out = []
        for j in range(feats.shape[1]):
            self.ring[:, :-1] = self.ring[:, 1:]
            self.ring[:, -1] = feats[:, j]
            self.filled += 1
            self.since_eval += 1
            if self.filled >= self.frames // 2 and self.since_eval >= self.stride_frames:
                self.since_eval = 0
                det = self._evaluate(self.frontend.num_frames_emitted - feats.shape[1] + j + 1)
                if det is not None:
                    out.append(det)
        return out

    def _push_stream(self, feats: np.ndarray) -> list[Detection]:
        out, st = [], self.stream
        self.pending += list(feats.T)
        done = self.frontend.num_frames_emitted - len(self.pending)
        while len(self.pending) >= st.chunk:
            chunk, self.pending = np.stack(self.pending[: st.chunk], 1), self.pending[st.chunk:]
            if self.leveler is not None:  # the gain of the level window that ends with this chunk (causal)
                chunk = self.leveler.push(chunk)
            t0 = time.perf_counter()
            y, self.state = st.step_raw(chunk, self.state)
            self.invoke_s += time.perf_counter() - t0
            done += st.chunk
            self.filled += st.chunk
            self.since_eval += st.chunk
            if self.filled >= st.lag + self.frames // 2 and self.since_eval >= self.stride_frames:
                self.since_eval = 0
                det = self._evaluate(done, y)
                if det is not None:
                    out.append(det)
        return out

    def leveled(self, window: np.ndarray) -> np.ndarray:
        """The window (the ring's features) at the model's input level: the window's own gain when it holds
        speech, else the gain held from the last one (frames before the stream's start are left out)."""
        if self.leveler is None:
            return window
        return self.leveler.window(window, min(max(self.filled, 1), self.frames))

    @property
    def level_gain(self) -> float:
        """The power gain the input level normalization applied last (1: none)."""
        return self.leveler.gain if self.leveler is not None else 1.0

    def _evaluate(self, frames_done: int, y: np.ndarray | None = None) -> Detection | None:
        if y is None:
            t0 = time.perf_counter()
            y = self.model.run_features(self.leveled(self.ring))
            self.invoke_s += time.perf_counter() - t0
        self.windows += 1
        self.last_embedding = y
        if self.model.kind == "classifier":
            p = np.exp(y - y.max())
            p /= p.sum()
            scores = dict(zip(self.model.labels, p.tolist()))
        else:
            scores = self.model.detection_scores(y)
        self.history = (self.history + [scores])[-self.smooth:]
        smoothed = {k: float(np.mean([h.get(k, 0.0) for h in self.history])) for k in scores}
        self.last_scores = smoothed
        fe = self.model.frontend
        now = ((frames_done - 1) * fe.hop_length + fe.n_fft // 2) / fe.sample_rate  # end of the window's last frame
        if self.trace is not None:
            self.trace.append((now, smoothed, scores))
        best = max((k for k in smoothed if k not in self.ignore), key=smoothed.get, default=None)
        self.streak = agreement_streak(self.streak, best, best is not None and smoothed[best] >= self.threshold)
        if self.streak[1] >= self.agree:
            key, score = best, smoothed[best]
        elif self.peak_margin is not None:  # the peak rule: one clean window well above the threshold
            key = max((k for k in scores if k not in self.ignore), key=scores.get, default=None)
            if key is None or scores[key] < self.threshold + self.peak_margin:
                return None
            score = scores[key]
        else:
            return None
        if now - self.last_fire_s < self.refractory_s:
            return None
        self.last_fire_s = now
        return Detection(key, round(now, 3), round(float(score), 4))


def _as_float(audio: np.ndarray) -> np.ndarray:
    """Samples as float32 in [-1, 1): int16 scaled, float types cast."""
    audio = np.asarray(audio)
    return from_int16(audio) if audio.dtype == np.int16 else audio.astype(np.float32, copy=False)


def agreement_streak(streak: tuple, best, above: bool) -> tuple:
    """The detector's agreement counter, one window on: ``(keyword, n)`` = ``best`` has been above the threshold
    for ``n`` consecutive windows (``(None, 0)`` when this window is not). :func:`speechedge.apps.longform.fire`
    replays the same rule over a recorded trace."""
    if not above:
        return None, 0
    return best, (streak[1] + 1 if streak[0] == best else 1)


def detect_file(model: KWSModel, audio: np.ndarray, *, block: int = 1600, **kw) -> list[Detection]:
    """Run :class:`StreamingKWS` over a whole recording in blocks of ``block`` samples."""
    det = StreamingKWS(model, **kw)
    out = []
    for i in range(0, len(audio), block):
        out += det.push(audio[i: i + block])
    return out


