"""Manifests: JSON Lines (optionally gzipped) of frozen dataclasses with units in the field names.

Rows are plain dataclasses; reading and writing are free functions. Writes are atomic (temporary
file + rename) so an interrupted run never leaves half a manifest behind.

    rows = list(read_manifest("dev-clean.jsonl.gz", UtteranceRecord))
    write_manifest("subset.jsonl", [r for r in rows if r.duration_s < 10])
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

__all__ = ["UtteranceRecord", "ClipRecord", "read_manifest", "write_manifest", "ManifestWriter", "ManifestError"]

T = TypeVar("T")


class ManifestError(ValueError):
    """A manifest line is not valid JSON or does not match the expected row type."""


@dataclass(frozen=True)
class UtteranceRecord:
    """One utterance of a read-speech corpus (LibriSpeech layout)."""

    id: str
    path: str
    speaker: str
    chapter: str
    split: str
    sample_rate: int
    num_samples: int
    duration_s: float
    transcript: str


@dataclass(frozen=True)
class ClipRecord:
    """One keyword clip (LibriWord or Speech Commands).

    ``path`` is relative to the manifest's dataset folder for LibriWord clips and absolute for corpus
    files. ``source_*`` is the clip's span in its source recording and ``word_*`` the word's span inside
    the clip (seconds); both are ``None`` where unknown (Speech Commands).
    """

    id: str
    word: str
    speaker: str
    path: str
    split: str
    label: str = ""
    source_id: str = ""
    source_start_s: float | None = None
    source_end_s: float | None = None
    word_start_s: float | None = None
    word_end_s: float | None = None
    duration_s: float | None = None


def _open_text(path: Path, mode: str, gz: bool | None = None):
    """Text file, gzip-compressed when ``gz`` (default: the ``.gz`` suffix). Written gzip streams carry no
    file name and no time stamp, so the same rows give the same bytes."""
    if gz if gz is not None else path.suffix == ".gz":
        if "w" in mode:
            z = gzip.GzipFile(filename="", mode="wb", fileobj=open(path, "wb"), mtime=0)
            z.myfileobj = z.fileobj  # close the file with the stream, as gzip.open does for the file it opens
            return io.TextIOWrapper(z, encoding="utf-8")
        return io.TextIOWrapper(gzip.open(path, mode + "b"), encoding="utf-8")
    return open(path, mode, encoding="utf-8")


_CHECKS = {  # a field's annotation -> (test, what it must be)
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "float | None": (lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
                     "a number or null"),
}


def _rows(path: Path, f) -> Iterator[tuple[int, str]]:
    """Numbered lines; a truncated or corrupt file (gzip, UTF-8) becomes a ManifestError naming it."""
    i = 0
    try:
        for i, line in enumerate(f, 1):
            yield i, line
    except (EOFError, OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: unreadable after line {i} ({type(e).__name__}: {e}); the file is truncated "
                            "or corrupt: write it again") from None


def read_manifest(path: str | os.PathLike, cls: type[T]) -> Iterator[T]:
    """Stream rows of ``cls`` from a ``.jsonl`` or ``.jsonl.gz`` file (bounded memory).

    Every line must be a JSON object whose fields are ``cls``'s, each of its annotated type.

    Raises:
        FileNotFoundError: no such manifest.
        ManifestError: a line that is not a JSON object or does not fit ``cls``, or a truncated / corrupt file
            (the message names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    fields = {f.name: _CHECKS.get(str(f.type)) for f in dataclasses.fields(cls)}
    with _open_text(path, "r") as f:
        for i, line in _rows(path, f):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{path}:{i}: not JSON ({e})") from e
            if not isinstance(d, dict):
                raise ManifestError(f"{path}:{i}: not a JSON object (a {type(d).__name__}); each line is one "
                                    f"{cls.__name__}")
            unknown = d.keys() - fields.keys()
            if unknown:
                raise ManifestError(f"{path}:{i}: unknown fields {sorted(unknown)} for {cls.__name__}")
            for name, value in d.items():
                check = fields[name]
                if check is not None and not check[0](value):
                    raise ManifestError(f"{path}:{i}: field {name!r} must be {check[1]}, got {value!r}")
            try:
                yield cls(**d)
            except TypeError as e:
                raise ManifestError(f"{path}:{i}: {e}") from e


class ManifestWriter:
    """Write rows one at a time to a temporary file; ``close()`` renames it into place.

    Use as a context manager; on an exception the temporary file is removed and the old manifest
    (if any) stays untouched.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        from speechedge.io import PartialFile

        self._partial = PartialFile(self.path)
        self._f = _open_text(self._partial.tmp, "w", gz=self.path.suffix == ".gz")
        self.count = 0

    def write(self, row) -> None:
        self._f.write(json.dumps(dataclasses.asdict(row), ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> Path:
        self._f.close()
        return self._partial.commit()

    def abort(self) -> None:
        self._f.close()
        self._partial.discard()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_manifest(path: str | os.PathLike, rows: Iterable) -> Path:
    """Write all ``rows`` atomically; returns the path."""
    with ManifestWriter(path) as w:
        for row in rows:
            w.write(row)
    return w.path
