"""WGS84 ⇄ GCJ-02 ⇄ BD-09 coordinate conversion, vectorised with numpy.

GCJ-02 (Amap, Tencent) and BD-09 (Baidu) are obfuscated datums used by Chinese web maps;
PROJ/pyproj do not implement them, and the small pure-Python packages that do work one
point at a time, so the published forward formulas are written here on numpy arrays.
The inverses (to WGS84, and BD-09 to GCJ-02) are solved by fixed-point iteration of the
forward transform until the round trip is below 1e-9 degrees (≈ 0.1 mm), far inside
the 0.5 m the project requires. Points outside China are returned unchanged, as the
forward transform itself does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt
from pyproj import CRS
from pyproj.exceptions import CRSError as PyprojCRSError

from tuoyu.errors import CRSError

ChinaDatum = Literal["wgs84", "gcj02", "bd09"]
FloatArray = npt.NDArray[np.float64]
_Forward = Callable[[npt.ArrayLike, npt.ArrayLike], tuple[FloatArray, FloatArray]]

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by GCJ-02
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0
_ITERATIONS_MAX = 30
_TOLERANCE_DEG = 1e-10

_ALIASES: dict[str, ChinaDatum] = {
    "wgs84": "wgs84",
    "wgs-84": "wgs84",
    "epsg:4326": "wgs84",
    "gcj02": "gcj02",
    "gcj-02": "gcj02",
    "bd09": "bd09",
    "bd-09": "bd09",
}


def parse_crs_name(name: str) -> ChinaDatum | CRS:
    """Parse a coordinate-system name as used in study-area files and the API.

    Parameters
    ----------
    name
        ``wgs84``, ``gcj02``, ``bd09`` (case-insensitive, hyphen optional) or any
        ``EPSG:`` code understood by pyproj.

    Returns
    -------
    str or pyproj.CRS
        One of ``"wgs84"``, ``"gcj02"``, ``"bd09"``, or a pyproj CRS for EPSG codes.

    Raises
    ------
    CRSError
        When the name is none of these.
    """
    key = str(name).strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    if key.startswith("epsg:"):
        try:
            return CRS.from_user_input(key.upper())
        except PyprojCRSError as exc:
            raise CRSError(f"unknown coordinate system '{name}': {exc}") from exc
    raise CRSError(f"unknown coordinate system '{name}': use wgs84, gcj02, bd09 or an EPSG: code")


def outside_china(lon: npt.ArrayLike, lat: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """True where a point lies outside the rough China rectangle (no GCJ-02 offset)."""
    lon_a = np.asarray(lon, dtype=float)
    lat_a = np.asarray(lat, dtype=float)
    return (lon_a < 72.004) | (lon_a > 137.8347) | (lat_a < 0.8293) | (lat_a > 55.8271)


def _offset(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    d_lat = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * sqrt_abs_x
        + common
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    d_lon = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * sqrt_abs_x
        + common
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    d_lon = (d_lon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return d_lon, d_lat


def _as_arrays(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    lon_a = np.array(lon, dtype=np.float64, copy=True)
    lat_a = np.array(lat, dtype=np.float64, copy=True)
    if lon_a.shape != lat_a.shape:
        raise ValueError(f"lon and lat shapes differ: {lon_a.shape} vs {lat_a.shape}")
    return lon_a, lat_a


def wgs84_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """WGS84 → GCJ-02 (the published forward transform); identity outside China."""
    lon_a, lat_a = _as_arrays(lon, lat)
    d_lon, d_lat = _offset(lon_a, lat_a)
    keep = outside_china(lon_a, lat_a)
    return np.where(keep, lon_a, lon_a + d_lon), np.where(keep, lat_a, lat_a + d_lat)


def gcj02_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 → BD-09 (Baidu's published forward transform)."""
    x, y = _as_arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _invert(
    forward: _Forward, lon: npt.ArrayLike, lat: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Solve forward(x) = target by fixed-point iteration (the offsets are smooth and tiny)."""
    target_lon, target_lat = _as_arrays(lon, lat)
    guess_lon, guess_lat = target_lon.copy(), target_lat.copy()
    for _ in range(_ITERATIONS_MAX):
        f_lon, f_lat = forward(guess_lon, guess_lat)
        err_lon = f_lon - target_lon
        err_lat = f_lat - target_lat
        guess_lon = guess_lon - err_lon
        guess_lat = guess_lat - err_lat
        if np.all(np.abs(err_lon) < _TOLERANCE_DEG) and np.all(np.abs(err_lat) < _TOLERANCE_DEG):
            break
    return guess_lon, guess_lat


def gcj02_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 → WGS84, exact inverse of :func:`wgs84_to_gcj02` (iterative)."""
    return _invert(wgs84_to_gcj02, lon, lat)


def bd09_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """BD-09 → GCJ-02, exact inverse of :func:`gcj02_to_bd09` (iterative)."""
    return _invert(gcj02_to_bd09, lon, lat)


def wgs84_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """WGS84 → BD-09."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """BD-09 → WGS84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


_PATHS = {
    ("wgs84", "gcj02"): wgs84_to_gcj02,
    ("wgs84", "bd09"): wgs84_to_bd09,
    ("gcj02", "wgs84"): gcj02_to_wgs84,
    ("gcj02", "bd09"): gcj02_to_bd09,
    ("bd09", "wgs84"): bd09_to_wgs84,
    ("bd09", "gcj02"): bd09_to_gcj02,
}


def convert(
    lon: npt.ArrayLike, lat: npt.ArrayLike, source: str, target: str = "wgs84"
) -> tuple[FloatArray, FloatArray]:
    """Convert longitude/latitude arrays between WGS84, GCJ-02 and BD-09.

    Parameters
    ----------
    lon, lat
        Coordinates in degrees (scalars or arrays of one shape).
    source, target
        ``wgs84``, ``gcj02`` or ``bd09`` (see :func:`parse_crs_name`).

    Returns
    -------
    tuple of numpy.ndarray
        Converted ``(lon, lat)``.

    Examples
    --------
    >>> lon, lat = convert(116.397, 39.909, "wgs84", "gcj02")
    >>> back = convert(lon, lat, "gcj02", "wgs84")
    >>> bool(abs(back[0] - 116.397) < 1e-8 and abs(back[1] - 39.909) < 1e-8)
    True
    """
    src = parse_crs_name(source)
    dst = parse_crs_name(target)
    if not isinstance(src, str) or not isinstance(dst, str):
        raise CRSError("convert() handles wgs84/gcj02/bd09 only; use pyproj for EPSG codes")
    if src == dst:
        return _as_arrays(lon, lat)
    return _PATHS[(src, dst)](lon, lat)
