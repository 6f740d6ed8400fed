"""Reading vector layers so that any unreadable file is one input error naming it.

GDAL (through pyogrio) reports a malformed or absurd file — for example a GeoJSON
nested 50,000 levels deep — as a driver error, and Python's ``json`` module, used by the
table reader for GeoJSON, runs out of stack with a ``RecursionError``. Neither is an
error of the project, so the command line would print a traceback. The helpers here
turn both into :class:`tuoyu.errors.InputValidationError` with the file's path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
from pyogrio.errors import DataLayerError, DataSourceError, FieldError, GeometryError

from tuoyu.errors import InputValidationError, TuoyuError

_T = TypeVar("_T")

READ_ERRORS: tuple[type[BaseException], ...] = (
    RecursionError,
    DataSourceError,
    DataLayerError,
    FieldError,
    GeometryError,
    UnicodeDecodeError,
)
"""Errors of the readers that mean "this file cannot be read", not a bug."""


def guarded_read(reader: Callable[[Path], _T], path: str | Path) -> _T:
    """Call ``reader(path)``; a driver, decoding or nesting error becomes an input error.

    Errors of the project (:class:`tuoyu.errors.TuoyuError`) pass through unchanged.

    Parameters
    ----------
    reader
        A function reading one file, e.g. :func:`tuoyu.layers.tables.read_table`.
    path
        The file.

    Returns
    -------
    object
        What ``reader`` returns.

    Raises
    ------
    InputValidationError
        The file cannot be read (message names the file and the cause).

    Examples
    --------
    >>> def too_deep(path):
    ...     raise RecursionError("maximum recursion depth exceeded")
    >>> guarded_read(too_deep, "deep.geojson")
    Traceback (most recent call last):
    ...
    tuoyu.errors.InputValidationError: deep.geojson: cannot read the file: it is nested too deeply
    """
    file = Path(path)
    try:
        return reader(file)
    except TuoyuError:
        raise
    except RecursionError as exc:
        raise InputValidationError(
            "cannot read the file: it is nested too deeply", path=file
        ) from exc
    except READ_ERRORS as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputValidationError(f"cannot read the file: {reason}", path=file) from exc


def read_vector(path: str | Path, **kwargs: Any) -> gpd.GeoDataFrame:
    """``geopandas.read_file(path, engine="pyogrio", **kwargs)`` with one-line errors.

    Raises
    ------
    InputValidationError
        GDAL cannot read the file, or it is nested too deeply (file named).
    """

    def read(file: Path) -> gpd.GeoDataFrame:
        return gpd.read_file(file, engine="pyogrio", **kwargs)

    return guarded_read(read, path)


__all__ = ["READ_ERRORS", "guarded_read", "read_vector"]
