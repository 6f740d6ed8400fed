"""Property tests of tuoyu.crs.china against an independent implementation (prcoords).

``prcoords`` (PyPI, CC0/GPL, by Mingye Wang) is a scalar pure-Python implementation of
the published GCJ-02 and BD-09 formulas, written independently of ours; it is a test-only
dependency. Our module must agree with its forward transforms to 1e-9 degrees, invert
them to < 0.5 m inside China, leave points outside China alone, and accept scalars and
arrays of any shape.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pyproj import Geod
from tuoyu.crs.china import convert, outside_china, parse_crs_name
from tuoyu.errors import CRSError

try:
    import prcoords  # test-only dependency: the independent reference
except ImportError:  # pragma: no cover - the dev dependencies include it
    prcoords = None

needs_reference = pytest.mark.skipif(
    prcoords is None, reason="prcoords (dev dependency, independent reference) not installed"
)

GEOD = Geod(ellps="WGS84")
FORWARD_TOL_DEG = 1e-9
ROUND_TRIP_TOL_M = 0.5

# "Inside China": the GCJ-02 rectangle shrunk by a margin larger than the offset, so that a
# shifted point never crosses the rectangle's edge (which lies at sea or abroad anyway).
china_lon = st.floats(min_value=73.0, max_value=135.5, allow_nan=False)
china_lat = st.floats(min_value=3.0, max_value=53.6, allow_nan=False)
world_lon = st.floats(min_value=-180.0, max_value=180.0, allow_nan=False)
world_lat = st.floats(min_value=-89.0, max_value=89.0, allow_nan=False)
PROPERTY = settings(max_examples=150, deadline=None)


def _ref_wgs_gcj(lon: float, lat: float) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # prcoords warns on points outside China
        out = prcoords.wgs_gcj((lat, lon), True)
    return out.lon, out.lat


def _ref_gcj_bd(lon: float, lat: float) -> tuple[float, float]:
    out = prcoords.gcj_bd((lat, lon))
    return out.lon, out.lat


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return float(GEOD.inv(lon1, lat1, lon2, lat2)[2])


@needs_reference
@PROPERTY
@given(china_lon, china_lat)
def test_forward_wgs84_to_gcj02_matches_reference(lon: float, lat: float) -> None:
    ours = convert(lon, lat, "wgs84", "gcj02")
    ref = _ref_wgs_gcj(lon, lat)
    assert abs(float(ours[0]) - ref[0]) < FORWARD_TOL_DEG
    assert abs(float(ours[1]) - ref[1]) < FORWARD_TOL_DEG
    # and it is a real shift (tens to hundreds of metres), not the identity
    assert _metres(lon, lat, float(ours[0]), float(ours[1])) > 1.0


@needs_reference
@PROPERTY
@given(china_lon, china_lat)
def test_forward_gcj02_to_bd09_matches_reference(lon: float, lat: float) -> None:
    ours = convert(lon, lat, "gcj02", "bd09")
    ref = _ref_gcj_bd(lon, lat)
    assert abs(float(ours[0]) - ref[0]) < FORWARD_TOL_DEG
    assert abs(float(ours[1]) - ref[1]) < FORWARD_TOL_DEG


@needs_reference
@PROPERTY
@given(china_lon, china_lat)
def test_forward_wgs84_to_bd09_matches_reference(lon: float, lat: float) -> None:
    ours = convert(lon, lat, "wgs84", "bd09")
    ref = _ref_gcj_bd(*_ref_wgs_gcj(lon, lat))
    assert abs(float(ours[0]) - ref[0]) < FORWARD_TOL_DEG
    assert abs(float(ours[1]) - ref[1]) < FORWARD_TOL_DEG


@PROPERTY
@given(china_lon, china_lat, st.sampled_from(["gcj02", "bd09"]))
def test_round_trip_through_china_datum_is_exact(lon: float, lat: float, datum: str) -> None:
    shifted = convert(lon, lat, "wgs84", datum)
    back = convert(*shifted, datum, "wgs84")
    assert _metres(lon, lat, float(back[0]), float(back[1])) < ROUND_TRIP_TOL_M


@PROPERTY
@given(china_lon, china_lat)
def test_round_trip_gcj02_bd09(lon: float, lat: float) -> None:
    bd = convert(lon, lat, "gcj02", "bd09")
    back = convert(*bd, "bd09", "gcj02")
    assert _metres(lon, lat, float(back[0]), float(back[1])) < ROUND_TRIP_TOL_M


@PROPERTY
@given(world_lon, world_lat)
def test_identity_outside_china(lon: float, lat: float) -> None:
    if not outside_china(lon, lat):
        lon = lon + 180.0 if lon < 0 else lon - 180.0  # move it abroad: same latitude
    assert bool(outside_china(lon, lat))
    for src, dst in (("wgs84", "gcj02"), ("gcj02", "wgs84")):
        out = convert(lon, lat, src, dst)
        assert float(out[0]) == lon and float(out[1]) == lat


@needs_reference
@PROPERTY
@given(world_lon, world_lat)
def test_bd09_outside_china_matches_reference(lon: float, lat: float) -> None:
    """BD-09 adds Baidu's fixed offset everywhere (as the reference does): only the
    GCJ-02 step is the identity abroad."""
    if not outside_china(lon, lat):
        lon = lon + 180.0 if lon < 0 else lon - 180.0
    bd = convert(lon, lat, "wgs84", "bd09")
    ref = _ref_gcj_bd(*_ref_wgs_gcj(lon, lat))
    assert abs(float(bd[0]) - ref[0]) < FORWARD_TOL_DEG
    assert abs(float(bd[1]) - ref[1]) < FORWARD_TOL_DEG


@settings(max_examples=60, deadline=None)
@given(
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4).flatmap(
        lambda shape: st.tuples(
            hnp.arrays(np.float64, shape, elements=china_lon),
            hnp.arrays(np.float64, shape, elements=china_lat),
        )
    ),
    st.sampled_from([("wgs84", "gcj02"), ("gcj02", "wgs84"), ("wgs84", "bd09"), ("bd09", "wgs84")]),
)
def test_arrays_of_any_shape_match_scalars(
    arrays: tuple[np.ndarray, np.ndarray], pair: tuple[str, str]
) -> None:
    lon, lat = arrays
    lon_in, lat_in = lon.copy(), lat.copy()
    out_lon, out_lat = convert(lon, lat, *pair)
    assert out_lon.shape == lon.shape and out_lat.shape == lat.shape
    np.testing.assert_array_equal(lon, lon_in)  # inputs are not modified
    np.testing.assert_array_equal(lat, lat_in)
    for idx in np.ndindex(lon.shape):
        one = convert(float(lon[idx]), float(lat[idx]), *pair)
        # a vectorised fixed-point inverse may run extra iterations for its neighbours
        assert abs(float(one[0]) - out_lon[idx]) < 1e-9
        assert abs(float(one[1]) - out_lat[idx]) < 1e-9


def test_scalars_give_zero_dimensional_arrays() -> None:
    lon, lat = convert(116.397, 39.909, "wgs84", "gcj02")
    assert np.shape(lon) == () and np.shape(lat) == ()
    # Beijing's GCJ-02 offset is a few hundred metres
    assert 300.0 < _metres(116.397, 39.909, float(lon), float(lat)) < 700.0


def test_mismatched_shapes_and_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        convert([116.4, 116.5], [39.9], "wgs84", "gcj02")
    with pytest.raises(CRSError, match="mars"):
        convert(116.4, 39.9, "mars", "wgs84")
    with pytest.raises(CRSError):
        parse_crs_name("EPSG:999999")
    assert parse_crs_name("GCJ-02") == "gcj02"
