"""OSM building footprints and candidate sites: hand-made fixture and real Yuzhong data."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import osmium
import pytest
import shapely
from pyproj import CRS, Geod
from tuoyu.config.data_registry import resolve_data_file
from tuoyu.config.settings import Settings
from tuoyu.errors import CRSError, DataNotFoundError, InputValidationError
from tuoyu.layers.osm_features import (
    BUILDING_COLUMNS,
    POI_COLUMNS,
    is_residential,
    load_osm_buildings,
    load_osm_pois,
    parse_levels,
)
from tuoyu.layers.osm_network import load_walk_network

FEATURES = Path(__file__).parent / "fixtures" / "osm" / "features.osm"
UTM48 = CRS.from_epsg(32648)
# Hand value (see fixtures/osm/features.osm): a 0.001 x 0.001 degree square at 29.5605 N.
SQUARE_M2 = 110.845 * 96.913


def test_fixture_buildings_by_hand() -> None:
    gdf = load_osm_buildings(FEATURES, UTM48)
    assert list(gdf.columns) == [*BUILDING_COLUMNS, "geometry"]
    assert gdf.crs == UTM48
    rows = gdf.set_index("osm_id")
    assert sorted(rows.index) == [201, 202, 203, 204, 207, 301]
    assert rows.loc[301, "osm_type"] == "relation"
    assert (rows.drop(index=301)["osm_type"] == "way").all()
    assert rows["building"].to_dict() == {
        201: "residential",
        202: "yes",
        203: "yes",
        204: "office",
        301: "apartments",
        207: "school",
    }
    assert sorted(rows.index[rows["residential"]]) == [201, 203, 301]
    assert rows.loc[201, "levels"] == 6.0 and rows.loc[301, "levels"] == 20.0
    assert rows["levels"].isna().sum() == 4
    assert gdf.attrs["levels_unparsed"] == 1  # way 202: "abc"
    assert rows.loc[201, "footprint_m2"] == pytest.approx(SQUARE_M2, rel=2e-3)
    assert rows.loc[202, "footprint_m2"] == pytest.approx(SQUARE_M2 / 4, rel=2e-3)
    # Multipolygon with a courtyard: outer minus inner.
    assert rows.loc[301, "footprint_m2"] == pytest.approx(SQUARE_M2 * 3 / 4, rel=2e-3)
    assert len(rows.loc[301, "geometry"].interiors) == 1
    assert set(gdf.geom_type) == {"Polygon"}
    assert gdf["levels"].dtype == np.float64 and gdf["residential"].dtype == bool


def test_fixture_footprints_agree_with_geodesic_area() -> None:
    gdf = load_osm_buildings(FEATURES, UTM48)
    geod = Geod(ellps="WGS84")
    wgs = gdf.to_crs(4326)
    geodesic = np.array([abs(geod.geometry_area_perimeter(g)[0]) for g in wgs.geometry])
    assert np.abs(gdf["footprint_m2"].to_numpy() / geodesic - 1.0).max() < 2e-3


def test_fixture_pois_by_hand() -> None:
    gdf = load_osm_pois(FEATURES, "EPSG:32648")
    assert list(gdf.columns) == [*POI_COLUMNS, "geometry"]
    rows = gdf.set_index("osm_id")
    assert rows["category"].to_dict() == {
        401: "kindergarten",
        404: "government",
        207: "school",
        208: "community_centre",
    }
    assert rows["osm_type"].to_dict() == {401: "node", 404: "node", 207: "way", 208: "way"}
    assert rows.loc[401, "name"] == "阳光幼儿园" and rows.loc[401, "category_zh"] == "幼儿园"
    assert rows.loc[208, "name"] == "七星岗社区服务中心"
    assert set(gdf.geom_type) == {"Point"}
    centre = gdf.to_crs(4326).set_index("osm_id").loc[208, "geometry"]
    assert (centre.x, centre.y) == pytest.approx((106.5745, 29.5625), abs=2e-6)
    node = gdf.to_crs(4326).set_index("osm_id").loc[401, "geometry"]
    assert (node.x, node.y) == pytest.approx((106.5700, 29.5640), abs=1e-7)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"building": "residential"}, True),
        ({"building": "dormitory"}, True),
        ({"building": "yes"}, True),
        ({"building": "yes", "amenity": "school"}, False),
        ({"building": "yes", "highway": "pedestrian"}, False),
        ({"building": "commercial"}, False),
        ({"building": "hospital"}, False),
    ],
)
def test_residential_rule(tags: dict[str, str], expected: bool) -> None:
    assert is_residential(tags) is expected


def test_parse_levels() -> None:
    assert parse_levels("12") == 12.0
    assert all(math.isnan(parse_levels(v)) for v in (None, "", "-1", "0", "inf", "2-3"))


def test_empty_results_keep_columns(tmp_path: Path) -> None:
    empty = Path(__file__).parent / "fixtures" / "osm" / "empty.osm"
    buildings = load_osm_buildings(empty, UTM48)
    pois = load_osm_pois(empty, UTM48)
    assert len(buildings) == 0 and list(buildings.columns) == [*BUILDING_COLUMNS, "geometry"]
    assert len(pois) == 0 and list(pois.columns) == [*POI_COLUMNS, "geometry"]
    assert buildings.crs == UTM48 and pois.crs == UTM48


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"gone\.osm"):
        load_osm_buildings(tmp_path / "gone.osm", UTM48)
    text = tmp_path / "b.txt"
    text.write_text("x", "utf-8")
    with pytest.raises(InputValidationError, match=r"b\.txt"):
        load_osm_pois(text, UTM48)
    broken = tmp_path / "broken.osm"
    broken.write_bytes(b"<osm><node id=")
    with pytest.raises(InputValidationError, match=r"broken\.osm.*cannot read"):
        load_osm_buildings(broken, UTM48)
    with pytest.raises(CRSError):
        load_osm_buildings(FEATURES, "EPSG:4326")


# ----------------------------------------------------------------------------- Yuzhong


@pytest.fixture(scope="module")
def yuzhong_pbf(settings: Settings) -> Path:
    return resolve_data_file("chongqing-yuzhong/yuzhong.osm.pbf", settings)


def test_yuzhong_buildings(settings: Settings, yuzhong_pbf: Path) -> None:
    crs = load_walk_network(yuzhong_pbf).crs
    gdf = load_osm_buildings(yuzhong_pbf, crs)
    # Independent count of building objects from the raw file.
    raw = Counter(
        o.type_str()
        for o in osmium.FileProcessor(str(yuzhong_pbf)).with_filter(
            osmium.filter.KeyFilter("building")
        )
    )
    print(
        f"Yuzhong: {len(gdf)} footprints ({raw}), {gdf['levels'].notna().sum()} with levels, "
        f"{int(gdf['residential'].sum())} residential, "
        f"{gdf['footprint_m2'].sum() / 1e6:.2f} km2 of footprint"
    )
    # 2,043 building objects = 2,006 ways + 35 multipolygons + 2 nodes (no footprint).
    assert raw == Counter({"w": 2006, "r": 35, "n": 2})
    assert len(gdf) == 2_041
    assert gdf["osm_type"].value_counts().to_dict() == {"way": 2006, "relation": 35}
    assert int(gdf["levels"].notna().sum()) == 714
    assert gdf.attrs["levels_unparsed"] == 0
    assert not gdf[["osm_type", "osm_id"]].duplicated().any()
    assert shapely.is_valid(gdf.geometry.to_numpy()).all()
    # Metres: footprints from a few m2 to a few hectares, about 1.8 km2 in all.
    assert (gdf["footprint_m2"] > 0).all() and gdf["footprint_m2"].max() < 2e5
    assert 1.0 < gdf["footprint_m2"].sum() / 1e6 < 3.0
    residential = gdf.loc[gdf["residential"], "building"].value_counts().to_dict()
    assert residential["residential"] == 321 and residential["apartments"] == 58
    assert set(residential) <= {"residential", "apartments", "house", "yes"}
    assert "hospital" not in residential and "office" not in residential
    bz2 = load_osm_buildings(resolve_data_file("chongqing-yuzhong/yuzhong.osm.bz2", settings), crs)
    assert len(bz2) == len(gdf)
    assert bz2["footprint_m2"].sum() == pytest.approx(gdf["footprint_m2"].sum(), rel=1e-12)


def test_yuzhong_pois(yuzhong_pbf: Path) -> None:
    gdf = load_osm_pois(yuzhong_pbf, UTM48)
    counts = gdf["category"].value_counts().to_dict()
    print(f"Yuzhong candidate sites: {len(gdf)} {counts}")
    assert counts == {
        "school": 14,  # building=school footprints (12 ways, 2 relations)
        "government": 4,  # office=government: 2 nodes, 2 building ways
        "arts_centre": 1,
        "library": 1,
        "townhall": 1,
    }
    assert gdf.set_index("osm_id").loc[1244287274, "name"] == "人民大礼堂"
    assert set(gdf.geom_type) == {"Point"}
    # All sites lie within the extract's extent (metric coordinates of UTM 48N).
    x, y = gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy()
    assert ((x > 640_000) & (x < 660_000) & (y > 3_260_000) & (y < 3_280_000)).all()
