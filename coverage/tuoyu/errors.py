"""Exception hierarchy of the library.

Every error is a ``ValueError`` subclass (the osmnx habit), so callers that only know
about bad values still catch them. The API maps these classes to HTTP status codes in
one table (``api/tuoyu_api/errors.py``); the library itself never raises HTTP errors.
"""

from __future__ import annotations

from pathlib import Path


class TuoyuError(ValueError):
    """Base class of every error raised on purpose by tuoyu-coverage."""


class DataNotFoundError(TuoyuError):
    """A data file or the data directory cannot be found."""


class ChecksumMismatchError(TuoyuError):
    """An external data file does not match the sha256 recorded in the data registry."""


class AreaConfigError(TuoyuError):
    """A study-area definition file is malformed or names something unknown."""


class CRSError(TuoyuError):
    """An unknown or unusable coordinate reference system was given."""


class InputValidationError(TuoyuError):
    """A record of an input file is invalid.

    Parameters
    ----------
    message
        What is wrong, in one line.
    path
        The file that holds the record.
    row
        1-based data row number (header excluded), or ``None`` for the whole file.
    field
        The field (column / property) at fault, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.row = row
        self.field = field
        self.reason = message
        where = []
        if self.path is not None:
            where.append(self.path)
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class EmptyInputError(InputValidationError):
    """An input file holds no usable records."""


class NotFoundError(TuoyuError):
    """A named object (area, facility, unit) does not exist."""


class ConflictError(TuoyuError):
    """A write conflicts with existing state (for example a duplicate id)."""


class OffNetworkError(TuoyuError):
    """A point lies farther than the snapping limit from every walkable edge."""


class NoNetworkError(TuoyuError):
    """The study area has no walking network, so walking times cannot be computed."""
