"""Small helpers shared by data preparation, training and export: atomic writes, native output capture, and
the process pools' context (workers that die with their parent)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["partial_path", "PartialFile", "atomic_write_bytes", "atomic_write_text", "atomic_savefig", "capture_native_output", "spawn_pool_context",
           "pool_worker_init"]


def partial_path(path: str | os.PathLike) -> Path:
    """The temporary file an atomic write of ``path`` goes through: ``.NAME.partial`` in the same folder.

    The name is fixed, not random: a write killed before its rename (SIGKILL, a crash) leaves this file,
    and the next write of the same ``path`` truncates and reuses it, so a re-run leaves nothing behind.
    """
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


class PartialFile:
    """The temporary file of one atomic write of ``path``, held with an ``flock`` until :meth:`commit`
    (rename into place) or :meth:`discard`.

    Normally :func:`partial_path`. The lock makes the fixed name safe with concurrent writers of the same
    file (two training runs filling one clip cache): a second writer finds the name locked and writes
    ``.NAME.<pid>.partial`` instead, and a writer never reuses a name another one has just renamed into place
    (the inode is checked after locking). A file left by a killed writer is unlocked and is reused. Write the
    content to :attr:`tmp` by its path; where ``fcntl`` is missing (Windows) no lock is taken.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = partial_path(self.path)
        try:
            import fcntl
        except ImportError:
            self.fd = None
            return
        while True:
            fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another live process writes this very file: take a name of our own
                os.close(fd)
                self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
                fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT, 0o644)
                break
            try:
                if os.fstat(fd).st_ino == os.stat(self.tmp).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)  # the writer that held it renamed it into place meanwhile: open the name again
        os.ftruncate(fd, 0)
        self.fd = fd

    def commit(self) -> Path:
        """Rename the written file into place (still holding the lock), then release it."""
        try:
            os.replace(self.tmp, self.path)
        finally:
            self._release()
        return self.path

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)
        self._release()

    def _release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@contextlib.contextmanager
def file_lock(path: str | os.PathLike):
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block; the kernel releases
    it when the process dies, so a crash never leaves it stuck. Where ``fcntl`` is missing (Windows) no lock is
    taken. Used to let one process build a shared cache while the others wait for it."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a :class:`PartialFile` and a rename.

    Readers see either the old file or the complete new one; an interrupted write leaves no partial file
    (an exception removes it; a kill leaves it for the next write of ``path`` to reuse).
    """
    pf = PartialFile(path)
    try:
        pf.tmp.write_bytes(data)
    except BaseException:
        pf.discard()
        raise
    return pf.commit()


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


def spawn_pool_context():
    """The multiprocessing context of every process pool of the toolkit ('spawn': no forked torch/numba state).

    Its resource tracker is told not to warn about semaphores that a killed parent could not release (the
    warning names no file of ours and there is nothing for a user to do about it).
    """
    import multiprocessing as mp

    quiet = "ignore::UserWarning:multiprocessing.resource_tracker"
    if quiet not in os.environ.get("PYTHONWARNINGS", ""):  # read by the tracker process when it starts
        os.environ["PYTHONWARNINGS"] = ",".join(x for x in (os.environ.get("PYTHONWARNINGS"), quiet) if x)
    return mp.get_context("spawn")


def pool_worker_init(parent_pid: int) -> None:
    """Initializer of pool workers (``initargs=(os.getpid(),)``): the worker is terminated (SIGTERM, silently)
    when its parent dies, instead of living on to write results into a closed pipe and print BrokenPipe
    tracebacks. Linux ``prctl(PR_SET_PDEATHSIG)``; a no-op where it is not available."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)

