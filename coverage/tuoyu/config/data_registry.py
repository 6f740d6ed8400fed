"""Finding external data files and checking them against the data registry.

The registry (``data/registry.toml``) lists each external file with its origin, licence
and sha256. Files are read in place from the data directory (never copied into the
repository); a file whose hash differs from the registry is refused.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tuoyu.config.locations import default_shared_data_dir
from tuoyu.config.locations import project_data_dir as packaged_data_dir
from tuoyu.config.settings import Settings
from tuoyu.errors import ChecksumMismatchError, DataNotFoundError

DATA_DIR_ENV = "TUOYU_DATA_DIR"


@dataclass(frozen=True)
class RegisteredFile:
    """One external file of the data registry."""

    path: str
    sha256: str
    origin: str
    licence: str
    attribution: str | None = None


def resolve_data_dir(settings: Settings | None = None) -> Path:
    """Return the external data directory.

    Order: ``settings.data_dir`` (env ``TUOYU_DATA_DIR``), else ``../shared/data`` beside
    the checkout when it exists.

    Raises
    ------
    DataNotFoundError
        When no data directory can be found, with how to provide one.
    """
    configured = settings.data_dir if settings is not None else None
    if configured is None and os.environ.get(DATA_DIR_ENV):
        configured = Path(os.environ[DATA_DIR_ENV])
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(
                f"data directory {path} (from {DATA_DIR_ENV}) does not exist or is not a directory"
            )
        return path.resolve()
    shared = default_shared_data_dir()
    if shared is not None:
        return shared.resolve()
    raise DataNotFoundError(
        f"no data directory: set {DATA_DIR_ENV}=/path/to/data, or place the shared data at "
        "../shared/data beside the checkout; see README.md 'Data'"
    )


def load_registry(project_data_dir: Path | None = None) -> dict[str, RegisteredFile]:
    """Read ``data/registry.toml`` into ``{relative path: RegisteredFile}``."""
    registry_path = (project_data_dir or packaged_data_dir()) / "registry.toml"
    return _load_registry_cached(registry_path)


@lru_cache(maxsize=4)
def _load_registry_cached(registry_path: Path) -> dict[str, RegisteredFile]:
    with registry_path.open("rb") as fh:
        raw = tomllib.load(fh)
    files: dict[str, RegisteredFile] = {}
    for entry in raw.get("file", []):
        item = RegisteredFile(
            path=entry["path"],
            sha256=entry["sha256"].lower(),
            origin=entry["origin"],
            licence=entry.get("licence", "unknown"),
            attribution=entry.get("attribution"),
        )
        files[item.path] = item
    return files


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=256)
def _sha256_cached(path: Path, size: int, mtime_ns: int) -> str:
    return sha256_of(path)


def file_sha256(path: Path) -> str:
    """sha256 of ``path``, memoised on (path, size, mtime) within the process."""
    stat = path.stat()
    return _sha256_cached(path.resolve(), stat.st_size, stat.st_mtime_ns)


def resolve_data_file(
    relative: str | Path,
    settings: Settings | None = None,
    *,
    verify: bool | None = None,
) -> Path:
    """Find an external file and check it against the registry.

    Parameters
    ----------
    relative
        Path relative to the data directory (as written in study-area files), or an
        absolute path (user files outside the data directory; not registry-checked).
    settings
        Settings carrying the data directory and the ``verify_checksums`` switch.
    verify
        Override ``settings.verify_checksums``.

    Returns
    -------
    pathlib.Path
        The absolute path of the file.

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    ChecksumMismatchError
        The file is in the registry and its sha256 differs.
    """
    rel = Path(relative)
    if rel.is_absolute():
        if not rel.is_file():
            raise DataNotFoundError(f"file not found: {rel}")
        return rel
    data_dir = resolve_data_dir(settings)
    path = data_dir / rel
    if not path.is_file():
        raise DataNotFoundError(f"file not found: {path} (data directory {data_dir})")
    do_verify = verify if verify is not None else (settings.verify_checksums if settings else True)
    if do_verify:
        project_data = settings.project_data_dir if settings else None
        entry = load_registry(project_data).get(rel.as_posix())
        if entry is not None:
            actual = file_sha256(path)
            if actual != entry.sha256:
                raise ChecksumMismatchError(
                    f"{path}: sha256 {actual} differs from the registry's {entry.sha256} "
                    f"(origin: {entry.origin}); the file changed — update data/registry.toml "
                    "if the new version is intended"
                )
    return path


def verify_all(settings: Settings | None = None) -> list[tuple[str, bool, str]]:
    """Check every registered file; return ``(path, ok, message)`` rows."""
    data_dir = resolve_data_dir(settings)
    rows: list[tuple[str, bool, str]] = []
    project_data = settings.project_data_dir if settings else None
    for rel, entry in load_registry(project_data).items():
        path = data_dir / rel
        if not path.is_file():
            rows.append((rel, False, "missing"))
            continue
        actual = file_sha256(path)
        ok = actual == entry.sha256
        rows.append((rel, ok, "ok" if ok else f"sha256 {actual} != {entry.sha256}"))
    return rows
