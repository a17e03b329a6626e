"""Files in the folder connector's folders: what is never picked up, digests, free names,
atomic writes, and the check that a folder can be written."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from hub.plugin import ServerUnavailable

SIDECAR = ".toml"
_INCOMPLETE = (".part", ".tmp", ".crdownload", ".partial")


def ignored(name: str) -> bool:
    """Names never picked up: partial downloads, hidden and lock files, sidecars, our notes."""
    return (
        name.startswith((".", "~$"))
        or name.endswith(_INCOMPLETE)
        or name.endswith((SIDECAR, ".result.txt", ".reason.txt"))
    )


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `name (2)`, `name (3)`… if taken: staff files are never overwritten."""
    target = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    number = 2
    while target.exists():
        target = folder / f"{stem} ({number}){suffix}"
        number += 1
    return target


def write_atomically(target: Path, data: bytes | Path) -> None:
    """Write bytes (or copy a file) to `target` so that it appears complete or not at all."""
    part = target.with_name(f".{target.name}.part")
    if isinstance(data, Path):
        shutil.copyfile(data, part)
    else:
        part.write_bytes(data)
    with part.open("rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(part, target)
    with contextlib.suppress(OSError):
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_writable(root: Path) -> None:
    """The folder (or, before the first run, the folder that will hold it) is writable."""
    existing = root if root.exists() else root.parent
    if not existing.is_dir():
        raise ServerUnavailable(f"neither {root} nor its parent folder exists")
    if not os.access(existing, os.W_OK):
        raise ServerUnavailable(f"{existing} is not writable for this user")
