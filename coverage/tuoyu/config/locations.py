"""Where the project's own data, the cache and the service state live.

The study areas, target profiles and the external-data registry ship inside the
package (``tuoyu/_data``, copied from the checkout's ``data/`` when the wheel is built);
in a source checkout they are read from ``data/`` directly. Cache and state default to
the user's cache and state directories (``platformdirs``), never to the package or the
checkout, and are set with ``TUOYU_CACHE_DIR`` / ``TUOYU_STATE_DIR``.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_CHECKOUT_DIR = _PACKAGE_DIR.parents[1]
APP_NAME = "tuoyu"


def checkout_dir() -> Path | None:
    """The source checkout holding this package, ``None`` when installed from a wheel.

    >>> root = checkout_dir()
    >>> root is None or (root / "pyproject.toml").is_file()
    True
    """
    if (_CHECKOUT_DIR / "pyproject.toml").is_file() and (_CHECKOUT_DIR / "data").is_dir():
        return _CHECKOUT_DIR
    return None


def project_data_dir() -> Path:
    """The project's own data: ``areas/``, ``profiles/`` and ``registry.toml``.

    >>> (project_data_dir() / "registry.toml").is_file()
    True
    """
    packaged = _PACKAGE_DIR / "_data"
    if (packaged / "registry.toml").is_file():
        return packaged
    root = checkout_dir()
    if root is not None:
        return root / "data"
    return packaged  # an incomplete install: the loaders then name the missing file


def default_cache_dir() -> Path:
    """Per-user cache directory (parsed networks keyed by file hash)."""
    return Path(platformdirs.user_cache_dir(APP_NAME))


def default_state_dir() -> Path:
    """Per-user state directory (the service's SQLite registry)."""
    return Path(platformdirs.user_state_dir(APP_NAME))


def default_shared_data_dir() -> Path | None:
    """``../shared/data`` beside the checkout (or the working directory), if present."""
    candidates = []
    root = checkout_dir()
    if root is not None:
        candidates.append(root.parent / "shared" / "data")
    candidates.append(Path.cwd().parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    return None
