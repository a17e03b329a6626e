"""Files a person names on the command line: read as UTF-8 text, parsed as JSON, or written.

Every failure is one sentence naming the file (a GovhubError), never a Python exception's
text. Output files are written the way an auditor expects evidence to be written:

- a regular file (or a new one) is written to a temporary file in the same folder, flushed to
  disk and renamed over the target, so a reader never sees half a bundle and a failed write
  leaves the previous file as it was;
- an existing device or FIFO (`/dev/stdout`, `/dev/full`, a named pipe) is written in place,
  as a shell redirection would: renaming over it would replace the device with a regular file;
- a missing folder, a folder given as the file, or a full disk is refused with one sentence.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from hub.errors import ConfigError, GovhubError, InputError, OutputError

_WHY = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file would be too large",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOENT: "no such file or folder",
    errno.ENXIO: "nothing is reading from it",
    errno.EPIPE: "the reading side closed it",
    errno.EIO: "an input/output error",
}


def why(exc: OSError) -> str:
    """An OSError as the end of a sentence: `no space left on the device`."""
    if exc.errno in _WHY:
        return _WHY[exc.errno]
    text = exc.strerror or "it cannot be used"
    return text[:1].lower() + text[1:]


def read_text(path: str | Path, what: str, *, error: type[GovhubError] = InputError) -> str:
    """The UTF-8 text of `path`; `what` names the file in errors (`the adapter file`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or why(exc)}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{what} {path} is not UTF-8 text: line {line} holds the byte "
            f"0x{data[exc.start]:02x}, which UTF-8 does not allow there",
            hint="Save the file as UTF-8 (most editors offer it under 'Save as' or 'Encoding').",
        ) from None


def json_problem(exc: json.JSONDecodeError) -> str:
    """Where and why JSON does not parse: `Expecting value at line 1 column 1`.

    Some of the json module's messages end in "at" (`Unterminated string starting at`), which
    its own str() follows with a colon; the sentence here says it once.
    """
    return f"{exc.msg.removesuffix(' at')} at line {exc.lineno} column {exc.colno}"


def parse_json(text: str, what: str, *, error: type[GovhubError] = InputError) -> Any:
    """`text` as JSON; a syntax error is `error` naming the line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON: {json_problem(exc)}") from None
    except RecursionError:
        # The parser follows nesting by recursion; a record is never nested this deep.
        raise error(f"{what} cannot be read: it nests too deeply") from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise error(f"{what} holds a number with more digits than govhub reads") from None


def parse_toml(text: str, what: str, *, error: type[GovhubError] = ConfigError) -> dict[str, Any]:
    """`text` as TOML; a syntax error is `error` naming where (`at line 3, column 5`)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib has no depth limit: arrays nested hundreds deep
        raise error(f"{what} is not valid TOML: it nests too deeply") from None


def json_argument(text: str, what: str) -> Any:
    """A JSON command-line value given inline or as `@path` (then read as UTF-8)."""
    if text.startswith("@"):
        text = read_text(text[1:], f"{what} file")
    return parse_json(text, what)


class OutputFile:
    """A text file being written; a failed write raises OutputError naming the file."""

    def __init__(self, handle: IO[str], shown: str) -> None:
        self._handle = handle
        self._shown = shown

    def write(self, text: str) -> int:
        """Write `text` (buffered)."""
        try:
            return self._handle.write(text)
        except OSError as exc:
            raise _cannot(self._shown, exc) from exc

    def _finish(self, *, sync: bool) -> None:
        try:
            self._handle.flush()
            if sync:
                os.fsync(self._handle.fileno())
        except OSError as exc:
            raise _cannot(self._shown, exc) from exc


def _cannot(shown: str, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {shown}: {why(exc)}")


@contextlib.contextmanager
def output_file(path: str | Path) -> Iterator[OutputFile]:
    """Write the file `path` names (see the module docstring for how); yields the writer."""
    shown = str(path)
    # Write through a symbolic link, as a shell would, instead of replacing the link.
    target = Path(os.path.realpath(path))
    try:
        found: os.stat_result | None = target.stat()
    except FileNotFoundError:
        found = None
    except OSError as exc:
        raise _cannot(shown, exc) from exc
    if found is not None and stat.S_ISDIR(found.st_mode):
        raise OutputError(f"cannot write {shown}: it is a folder; name a file inside it")
    if found is not None and not stat.S_ISREG(found.st_mode):
        try:
            handle = open(target, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise _cannot(shown, exc) from exc
        try:
            writer = OutputFile(handle, shown)
            yield writer
            writer._finish(sync=False)
        finally:
            _close(handle)
        return
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {shown}: the folder {target.parent} does not exist")
    temp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _cannot(shown, exc) from exc
    handle = open(fd, "w", encoding="utf-8")  # noqa: SIM115
    try:
        try:
            if found is not None:
                os.chmod(fd, stat.S_IMODE(found.st_mode))  # a rewritten file keeps its mode
            writer = OutputFile(handle, shown)
            yield writer
            writer._finish(sync=True)
        finally:
            _close(handle)
        try:
            os.replace(temp, target)
        except OSError as exc:
            raise _cannot(shown, exc) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _close(handle: IO[str]) -> None:
    # After a failed write the buffer still holds text that close() would try again; the
    # failure was reported already, the descriptor is released either way.
    with contextlib.suppress(OSError):
        handle.close()


def write_output(path: str | Path, text: str) -> None:
    """Write `text` to the file `path` names, as `output_file` does."""
    with output_file(path) as out:
        out.write(text)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret (a private key, a seed, a passphrase) atomically, readable by its owner only.

    The temporary file is created with mode 0600, not chmod-ed after writing: between a write
    and a later chmod, anyone on the machine could open the file and keep the descriptor. Its
    folder is made 0700 for the same reason, and the rename means a reader sees the old secret
    or the new one, never half of either.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
