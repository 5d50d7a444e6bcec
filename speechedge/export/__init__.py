"""TFLite export of trained models (KWS, streaming ASR), verified against PyTorch, and the export-side
TFLite tools. Export imports models, never recipes."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["ExportError", "check_out_dir", "replace_folder"]


class ExportError(RuntimeError):
    """A parity or target check failed; nothing was written. ``report`` holds what was measured."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report


KEYWORDS_PREVIOUS = "keywords.previous-model.json"
# every name an export writes (and what a user or the runtime adds to an export folder): a folder holding
# anything else is not a previous export, and is never replaced
_EXPORT_FILES = ("model_*.tflite", "stream_*.tflite", "report.json", "frontend.json", "asr.json", "stream.json",
                 "fewshot.json", "level.json", "tokens.txt", "labels.txt", "state_init.npz", "background.npy",
                 "background_stream.npy", "dummy_prototypes.npz", "window.npy", "kws_model.h", "kws_model.cc",
                 "kws_stream_model.h", "kws_stream_model.cc", "MODEL_CARD.md", "keywords.json",
                 KEYWORDS_PREVIOUS, ".keywords.json.*")


def _not_export_files(folder: Path) -> list[str]:
    """Names in ``folder`` that no export writes (sub-folders included)."""
    import fnmatch

    return sorted(p.name for p in folder.iterdir()
                  if p.is_dir() or not any(fnmatch.fnmatchcase(p.name, pat) for pat in _EXPORT_FILES))


def _is_export_report(path: Path) -> bool:
    import json

    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and {"exp_dir", "kind", "models"} <= report.keys()


def check_out_dir(out_dir: str | Path, exp_dir: str | Path | None = None) -> Path:
    """Refuse (``ExportError``) an ``--out`` that an export must not replace: a symbolic link, a folder that
    holds files but is not a previous export (its ``report.json`` an export's report, and nothing in it that an
    export does not write), an experiment folder, one that contains the experiment ``exp_dir`` or the working
    directory. Called before any work is done, and again just before the swap."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        raise ExportError(f"--out {out_dir}: is a symbolic link; pass the folder it points to")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ExportError(f"--out {out_dir}: exists and is not a folder")
        if Path.cwd().resolve().is_relative_to(out_dir.resolve()):
            raise ExportError(f"--out {out_dir}: contains the working directory; choose a new folder")
        if (out_dir / "config.json").exists() or any(out_dir.glob("checkpoint-*.pt")):
            raise ExportError(f"--out {out_dir}: is an experiment folder; export into a folder of its own")
        if exp_dir is not None and Path(exp_dir).resolve().is_relative_to(out_dir.resolve()):
            raise ExportError(f"--out {out_dir}: contains the experiment {exp_dir}; export into a folder of its own")
        if any(out_dir.iterdir()):
            foreign = _not_export_files(out_dir)
            if foreign or not _is_export_report(out_dir / "report.json"):
                what = f" (holds {', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''})" if foreign else ""
                raise ExportError(f"--out {out_dir}: not empty and not a previous export{what}; choose a "
                                  "new or empty folder")
    return out_dir


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where the kernel or
    the filesystem does not offer it."""
    import ctypes
    import errno
    import sys

    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, f"renameat2({a}, {b}, RENAME_EXCHANGE): {os.strerror(err)}")


def replace_folder(out_dir: Path, write: Callable[[Path], None]) -> None:
    """Write a complete export into a temporary folder beside ``out_dir`` with ``write(tmp)``, then put it in
    place atomically: the two folders are exchanged in one ``renameat2(RENAME_EXCHANGE)`` call, so at every
    instant ``out_dir`` is either the old or the new complete export (tested), and the old one is removed
    afterwards. Where the exchange is unavailable (not Linux, or a filesystem without it) the old folder is
    renamed aside first and removed only after the new one is in place (a kill between the two renames leaves
    the previous export whole in ``.NAME.speechedge-export-old.*`` beside it, and the next export puts it
    back). Refuses what :func:`check_out_dir` refuses, so an export never deletes what the toolkit did not
    write.
    """
    out_dir = check_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _export_lock(out_dir):
        _replace_locked(out_dir, write)


_TMP, _OLD = "speechedge-export-tmp", "speechedge-export-old"  # beside --out: .NAME.<tag>.<random>


@contextlib.contextmanager
def _export_lock(out_dir: Path):
    """Hold an exclusive ``flock`` on the folder that holds ``out_dir`` (released by the kernel when a process
    dies; no lock file left behind) and tidy what an export killed earlier left beside ``out_dir``: its
    temporary folders (``.NAME.speechedge-export-tmp.*``: removed) and, from the two-rename fallback, the
    previous export set aside (``.NAME.speechedge-export-old.*/x``: put back when ``out_dir`` is missing,
    removed when the new one is in place). Only folders with these names are touched. The lock covers only
    the writing and the swap (exports into sibling folders wait for each other that long); where the parent
    cannot be locked (no read permission, a filesystem without ``flock``) the export goes on without the
    lock and without tidying."""
    try:
        import fcntl

        fd = os.open(out_dir.parent, os.O_RDONLY | os.O_DIRECTORY)
    except (ImportError, OSError) as e:
        log.warning("cannot lock %s (%s): exporting without tidying what killed exports left", out_dir.parent, e)
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another export into %s", out_dir.parent)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:
            log.warning("cannot lock %s (%s): exporting without tidying what killed exports left", out_dir.parent, e)
            yield
            return
        name = glob.escape(out_dir.name)
        for old in out_dir.parent.glob(f".{name}.{_OLD}.*"):
            if (old / "x").is_dir() and not out_dir.exists():
                log.info("putting back %s, set aside by an export that was killed", out_dir)
                os.rename(old / "x", out_dir)
        for stale in [*out_dir.parent.glob(f".{name}.{_TMP}.*"), *out_dir.parent.glob(f".{name}.{_OLD}.*")]:
            if stale.is_dir() and not stale.is_symlink():
                log.info("removing %s, left by an export that was killed", stale)
                shutil.rmtree(stale, ignore_errors=True)
        yield
    finally:
        os.close(fd)


def _keep_keywords(out_dir: Path, tmp: Path) -> None:
    """Carry the keywords enrolled in the previous export into the new one: as ``keywords.json`` when the model
    is byte for byte the same, else as ``keywords.previous-model.json`` (their embeddings belong to the old
    model: re-enrol), so a re-export never loses an enrolment."""
    src = out_dir / "keywords.json"
    if not src.is_file() or (tmp / "keywords.json").exists():
        return
    old, new = out_dir / "model_fp32.tflite", tmp / "model_fp32.tflite"
    same = old.is_file() and new.is_file() and old.read_bytes() == new.read_bytes()
    dst = tmp / ("keywords.json" if same else KEYWORDS_PREVIOUS)
    shutil.copy2(src, dst)
    if not same:
        log.warning("%s: enrolled for the previous model; kept as %s, re-enrol the keywords with this one", src,
                    dst.name)


def _replace_locked(out_dir: Path, write: Callable[[Path], None]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{_TMP}.", dir=out_dir.parent))
    old = None
    try:
        write(tmp)
        _keep_keywords(out_dir, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's folder is private; an export is as readable as any new folder
        if out_dir.exists() and _exchange(tmp, out_dir):
            shutil.rmtree(tmp, ignore_errors=True)  # now the previous export
            return
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{_OLD}.", dir=out_dir.parent))
            os.rename(out_dir, old / "x")
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / "x").exists() and not out_dir.exists():
            os.rename(old / "x", out_dir)  # put the previous export back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
