"""Small file helpers shared by data preparation, training and export: atomic writes."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_savefig", "capture_native_output"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Readers see either the old file or the complete new one; an interrupted write leaves no partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_savefig(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save a matplotlib figure as PNG atomically (temporary file + rename) and close it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def capture_native_output(fds: tuple[int, ...] = (1, 2)):
    """Capture what native code (C/C++ libraries) writes to the file descriptors ``fds`` while the block runs.

    Yields a list that holds the captured text (one string) after the block. Python's own ``sys.stdout``/
    ``sys.stderr`` are flushed before and C stdio buffers after, so nothing is reordered or lost.
    """
    import ctypes

    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    sys.stderr.flush()
    out: list[str] = []
    saved = {fd: os.dup(fd) for fd in fds}
    with tempfile.TemporaryFile(mode="w+b") as f:
        for fd in fds:
            os.dup2(f.fileno(), fd)
        try:
            yield out
        finally:
            libc.fflush(None)
            for fd, old in saved.items():
                os.dup2(old, fd)
                os.close(old)
            f.seek(0)
            out.append(f.read().decode("utf-8", "replace"))
