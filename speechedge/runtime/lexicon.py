"""Lexicon decoding of a CTC stream: the best word sequence of a word list weighted by a unigram language model.

Greedy CTC spells each word as the acoustic model hears it ("hed" for "head"); a lexicon decoder searches the
spellings of a word list instead (a beam search over a prefix tree of the words, flashlight-text's
``LexiconDecoder``, the decoder behind torchaudio's ``ctc_decoder``), scoring each finished word with
``lm_weight * log p(word) + word_score``. The word list is a text file, one word per line, optionally followed
by a positive weight (a count or a frequency; p(word) = weight / sum of weights; a list without weights is
uniform): ``speechedge prepare words`` writes the 20,000 most frequent English words with their frequencies,
and a list of command words (``lights``, ``on``, ``off``, ...) makes a command recognizer. Words the model's
tokens cannot spell are skipped and counted. A word that is not in the list cannot be output: it comes out as
the listed word that sounds closest (the price of the lexicon; README "Streaming ASR" measures it).

Streaming: :meth:`LexiconCTC.push` decodes each chunk as it comes; the search's history older than
``keep_frames`` is cut (flashlight's ``prune``) after its best path's words are kept, so time and memory per
chunk stay bounded on an endless segment; :attr:`LexiconCTC.text` is the best hypothesis so far (finished words
only), :meth:`LexiconCTC.end_segment` finishes the last word and starts a new segment (the demo calls it at a
pause). Torch-free (flashlight-text is a small C++ wheel without dependencies, with Linux x86-64 and aarch64 and
macOS builds).
"""

from __future__ import annotations

import functools
import gzip
import math
from pathlib import Path

import numpy as np

__all__ = ["WORD_LIST_NAMES", "LexiconCTC", "WordList", "find_word_list", "parse_word_list", "read_word_list"]


class WordList:
    """Words and their log-probabilities (natural log, summing to 1 over the list)."""

    def __init__(self, words: list[str], log_probs: np.ndarray, skipped: list[str] | None = None) -> None:
        self.words = words
        self.log_probs = np.asarray(log_probs, np.float64)
        #: words of the file the model's tokens cannot spell (not in the list)
        self.skipped = skipped or []

    def __len__(self) -> int:
        return len(self.words)


def parse_word_list(path: str | Path) -> list[tuple[str, float | None]]:
    """The ``(word, weight or None)`` entries of a word list file: ``word [weight]`` per line, ``#`` comments, a
    positive finite weight; ``.gz`` is gzip-compressed. A malformed line or an unreadable file raises
    ``ValueError`` naming the file (and line)."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        lines = raw.decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as e:
        raise ValueError(f"{path}: cannot read the word list ({e}); give a UTF-8 text file, one word per line") \
            from None
    out = []
    for n, line in enumerate(lines, 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        try:
            weight = float(parts[1]) if len(parts) == 2 else None
            if len(parts) > 2 or (weight is not None and not (weight > 0 and math.isfinite(weight))):
                raise ValueError
        except ValueError:
            raise ValueError(f"{path}:{n}: expected 'WORD [WEIGHT]' with a positive weight, got {line.strip()!r}") \
                from None
        out.append((parts[0], weight))
    return out


def read_word_list(path: str | Path, tokens: list[str]) -> WordList:
    """Read a word list (:func:`parse_word_list`; no weight = 1) for a model with ``tokens``.

    Words are lower-cased; a word the tokens cannot spell is skipped (listed in ``WordList.skipped``); a
    repeated word keeps its first weight."""
    path = Path(path)
    spellable = set(tokens) - {"<blk>", "|"}
    if any(len(t) > 1 for t in spellable):
        raise ValueError(f"{path}: lexicon decoding needs a character model (this one has subword tokens)")
    words, weights, skipped, seen = [], [], [], set()
    for w, weight in parse_word_list(path):
        w = w.lower()
        if w in seen:
            continue
        seen.add(w)
        if set(w) <= spellable:
            words.append(w)
            weights.append(1.0 if weight is None else weight)
        else:
            skipped.append(w)
    if not words:
        raise ValueError(f"{path}: no word the model can spell ({len(skipped)} skipped); the model's letters are "
                         f"{''.join(sorted(spellable))}")
    lp = np.log(np.asarray(weights, np.float64))
    return WordList(words, lp - np.logaddexp.reduce(lp), skipped)


#: the word list an export folder may hold, in the order they are looked for
WORD_LIST_NAMES = ("words.txt", "words.txt.gz")


def find_word_list(folder: str | Path) -> Path | None:
    """The folder's word list (the first of :data:`WORD_LIST_NAMES` there), or None."""
    return next((p for p in (Path(folder) / n for n in WORD_LIST_NAMES) if p.exists()), None)


def _flashlight():
    try:
        from flashlight.lib.text import decoder
    except ImportError as e:
        raise ImportError(f"lexicon decoding needs flashlight-text ({e}): pip install flashlight-text, or decode "
                          "greedily (decoder='greedy', --decoder greedy)") from None
    return decoder


class LexiconCTC:
    """Streaming lexicon decoding of CTC log-probabilities (see the module docstring).

    Args:
        tokens: the model's token table (``<blk>`` = 0, ``|`` = the word boundary, then characters).
        words: the word list (:func:`read_word_list`).
        lm_weight: weight of the unigram log-probability of each word (0: the word list only constrains).
        word_score: added per word (positive: more, shorter words).
        beam: hypotheses kept per frame; ``beam_threshold``: dropped when this far below the best.
        keep_frames: the search keeps its history for this many frames (100 = 4 s at 40 ms); older words are
            fixed to those of the best path at the cut (bounds memory and time on an endless stream).
    The defaults were chosen on the shipped model's dev set (README "Streaming ASR": lexicon decoding).
    """

    def __init__(self, tokens: list[str], words: WordList, *, lm_weight: float = 0.5, word_score: float = 0.0,
                 beam: int = 32, beam_threshold: float = 25.0, keep_frames: int = 100) -> None:
        fl = _flashlight()
        if tokens[0] != "<blk>" or "|" not in tokens:
            raise ValueError("lexicon decoding needs a character CTC model: token 0 '<blk>' and a '|' word boundary")
        if keep_frames < 1:
            raise ValueError(f"keep_frames must be >= 1, got {keep_frames}")
        self.tokens, self.words, self.keep_frames = tokens, words, keep_frames
        tid = {t: i for i, t in enumerate(tokens)}
        self._sil, self._unk = tid["|"], len(words)
        trie = fl.Trie(len(tokens), self._sil)
        for i, w in enumerate(words.words):
            trie.insert([tid[c] for c in w] + [self._sil], i, float(words.log_probs[i]))
        trie.smear(fl.SmearingMode.MAX)
        opts = fl.LexiconDecoderOptions(beam_size=beam, beam_size_token=len(tokens), beam_threshold=beam_threshold,
                                        lm_weight=lm_weight, word_score=word_score, unk_score=-math.inf,
                                        sil_score=0.0, log_add=False, criterion_type=fl.CriterionType.CTC)
        self._lm = _unigram_lm_class(fl)(words.log_probs)
        self._decoder = fl.LexiconDecoder(opts, trie, self._lm, self._sil, 0, self._unk, [], False)
        # one frame certain of the word boundary: ends the last word of a segment (the model rarely emits '|'
        # after the last word)
        self._boundary = np.full((1, len(tokens)), -1e4, np.float32)
        self._boundary[0, self._sil] = 0.0
        self.reset()

    def reset(self) -> None:
        """Start a new stream (no segments)."""
        self._done: list[str] = []  # finished segments' text
        self._begin()

    def _begin(self) -> None:
        self._decoder.decode_begin()
        self._frames = 0  # frames decoded in this segment
        self._cut = 0  # the frame of the last cut (prune): the search's frame 0
        self._fixed: list[int] = []  # word ids of the best path before the cut

    def push(self, log_probs: np.ndarray) -> None:
        """Decode ``(frames, vocab)`` log-probabilities (a chunk of the stream)."""
        e = np.ascontiguousarray(log_probs, dtype=np.float32)
        if len(e):
            self._decoder.decode_step(e.ctypes.data, e.shape[0], e.shape[1])
            self._frames += len(e)
            if self._frames - self._cut > 2 * self.keep_frames:
                # prune() forgets every path before frame (now - keep_frames): keep the best one's words first
                self._fixed += self._word_ids(self._decoder.get_best_hypothesis(self.keep_frames))
                self._decoder.prune(self.keep_frames)
                self._cut = self._frames - self.keep_frames

    def _word_ids(self, result) -> list[int]:
        """``result``'s words after its frame 0 (the last cut, or the start)."""
        return [w for w in result.words[1:] if 0 <= w < self._unk]

    def _words(self, result) -> str:
        """The segment's words: those fixed at cuts, then ``result``'s."""
        return " ".join(self.words.words[w] for w in self._fixed + self._word_ids(result))

    @property
    def segment_text(self) -> str:
        """The best hypothesis of the current segment so far (finished words)."""
        if not self._frames:
            return ""
        return self._words(max(self._decoder.get_all_final_hypothesis(), key=lambda h: h.score))

    @property
    def text(self) -> str:
        """Every finished segment and the current one's best hypothesis."""
        return " ".join(t for t in (*self._done, self.segment_text) if t)

    def end_segment(self) -> str:
        """Finish the current segment (its last word included) and return its text; the next push starts a new
        one."""
        self.push(self._boundary)
        self._decoder.decode_end()
        text = self._words(self._decoder.get_best_hypothesis(0))
        if text:
            self._done.append(text)
        self._begin()
        return text

    def decode(self, log_probs: np.ndarray) -> str:
        """The text of a whole utterance (a new segment; earlier segments are kept in :attr:`text`)."""
        self.push(log_probs)
        return self.end_segment()


@functools.cache
def _unigram_lm_class(fl):
    class UnigramLM(fl.LM):
        """A unigram language model: the same state for every history, log p(word) per word."""

        def __init__(self, log_probs: np.ndarray) -> None:
            fl.LM.__init__(self)
            self.log_probs = log_probs.tolist()
            self.state = fl.LMState()

        def start(self, start_with_nothing: bool):
            return self.state

        def score(self, state, word: int):
            return state, (self.log_probs[word] if word < len(self.log_probs) else -math.inf)

        def finish(self, state):
            return state, 0.0

    return UnigramLM

