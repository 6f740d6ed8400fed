"""The planner's gap map (``gaps.html``): who is outside the circle, and what new sites add.

Draws whatever it is given, so that it reads at a glance: one thematic layer at a time —
the contiguous gap zones of :func:`tuoyu.indicators.gaps.uncovered_areas` shaded by
their people (shown first), the population outside the 15-minute walk as H3 hexagons (or
the points themselves), or the new sites' isochrones — switched in the layer control,
each with its own legend (units, the hexagon size in metres, the zones' merge distance);
over it the recommended sites numbered by rank, existing facilities and 街道 outlines.

The page opens at any size: the zones and the people outside the circle are not in its
configuration but in compact chunks (:func:`~tuoyu.outputs.maps.common.chunked_layer`:
WGS84 only, 5 decimals, a style class and the tooltip values per feature) that the page
reads when the layer is switched on, only those on screen — from files beside a saved
page (``gaps.layers/``) when the layer's data is over
:data:`~tuoyu.outputs.maps.common.INLINE_LAYER_MAX_BYTES`, else from inside the page.
The 街道 outlines and the sites' isochrones are small and embedded (with a GCJ-02 copy
only up to :data:`~tuoyu.outputs.maps.common.GCJ02_EMBED_MAX_COORDS` coordinates).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import Any, Final, Literal, cast

import folium
import geopandas as gpd
import h3
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from branca.element import MacroElement
from folium.template import Template
from h3.api import basic_int as h3_int

from tuoyu.errors import InputValidationError
from tuoyu.labels import Language, label
from tuoyu.outputs.maps.basemaps import add_basemaps
from tuoyu.outputs.maps.common import (
    DEFAULT_SIMPLIFY_M,
    LAYER_COORD_DECIMALS,
    DataChunks,
    base_config,
    check_language,
    chunked_layer,
    colon,
    display_tolerance,
    dual_geojson,
    dual_latlng,
    encode_display,
    esc,
    finish_map,
    fmt_number,
    is_missing,
    json_numbers,
    json_rows,
    json_strings,
    new_map,
    require_columns,
    require_crs,
    table_html,
    title_control,
    to_wgs84_fn,
    ui,
    wgs84_bounds,
)
from tuoyu.outputs.maps.facility_map import facility_popup, facility_rows

PEOPLE_RAMP: Final[tuple[str, ...]] = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")
"""Colours of uncovered people, few → many (ColorBrewer YlOrRd)."""
GAP_STYLE: Final[dict[str, Any]] = {
    "color": "#e6550d",
    "weight": 2.5,
    "dashArray": "6 4",
    "fillColor": "#e6550d",
    "fillOpacity": 0.08,
}
SITE_ISO_COLORS: Final[tuple[str, ...]] = ("#54278f", "#756bb1", "#9e9ac8", "#cbc9e2")
UNIT_STYLE: Final[dict[str, Any]] = {"color": "#444444", "weight": 1, "fill": False, "opacity": 0.7}


def _people_column(frame: pd.DataFrame) -> str:
    for column in ("population", "people"):
        if column in frame:
            return column
    raise InputValidationError(
        "layer needs a 'population' (or 'people') column", field="population"
    )


def _num(values: pd.Series) -> np.ndarray:
    """Values as floats, NaN when missing (numeric columns without a Python loop)."""
    dtype = values.dtype
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return np.asarray(values.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    return np.array([np.nan if is_missing(v) else float(v) for v in values], dtype=float)


def uncovered_points(
    population: gpd.GeoDataFrame, threshold_m: float, walk_column: str = "walk_m_all"
) -> gpd.GeoDataFrame:
    """Population points farther than ``threshold_m`` on foot (``inf`` = none reachable).

    Points with an unknown walking distance (NaN) are neither covered nor uncovered and
    are left out; their number is in ``attrs["walk_unknown"]``.
    """
    require_columns(population, (walk_column,), "population")
    walk = _num(population[walk_column])
    out = population[~np.isnan(walk) & (walk > threshold_m)]
    out.attrs["walk_unknown"] = int(np.isnan(walk).sum())
    return out


def _breaks(people: np.ndarray) -> np.ndarray:
    positive = people[people > 0]
    if positive.size == 0:
        return np.zeros(len(PEOPLE_RAMP) - 1)
    breaks = np.quantile(positive, np.linspace(0, 1, len(PEOPLE_RAMP) + 1)[1:-1])
    return np.asarray(breaks, dtype=float)


def _ramp_classes(people: np.ndarray, breaks: np.ndarray) -> np.ndarray:
    """Index into :data:`PEOPLE_RAMP` of each value (unknown counts as 0)."""
    index = np.searchsorted(breaks, np.nan_to_num(people), side="right")
    return np.asarray(index, dtype=np.int64)


def _rounded(values: np.ndarray, digits: int) -> list[float | int | None]:
    """Values at the precision the tooltip shows (``None`` when unknown)."""
    rounded = np.round(values.astype(float), digits)
    finite = np.isfinite(rounded)
    out = np.full(rounded.shape, None, dtype=object)
    out[finite] = rounded[finite].astype(np.int64) if digits == 0 else rounded[finite]
    return cast(list[float | int | None], out.tolist())


def _group_sums(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sum of each run ``values[starts[g] : starts[g] + counts[g]]``, as ``ndarray.sum``.

    Bit for bit what pandas' ``Series.sum`` gives for the run (NaN when a value is):
    numpy adds fewer than 8 values one after the other (done here for all such runs at
    once) and longer runs pairwise (done by ``ndarray.sum`` itself, run by run).
    """
    sums = np.zeros(starts.shape[0], dtype=float)
    short = counts < 8
    for j in range(7):
        runs = np.flatnonzero(short & (counts > j))
        sums[runs] += values[starts[runs] + j]
    for g in np.flatnonzero(~short).tolist():
        sums[g] = values[starts[g] : starts[g] + counts[g]].sum()
    return sums


def hexagon_people(points: gpd.GeoDataFrame, resolution: int = 9) -> gpd.GeoDataFrame:
    """Sum people (and under-3 children) of points per H3 cell, as WGS84 hexagons.

    Returns
    -------
    geopandas.GeoDataFrame
        ``cell``, ``population``, ``population_under3`` (NaN when unknown for a point of
        the cell), ``points``, polygon geometry in WGS84, most people first.
    """
    require_crs(points, "population")
    people_col = _people_column(points)
    columns: dict[str, list[Any]] = {
        "cell": [],
        "population": [],
        "population_under3": [],
        "points": [],
    }
    if len(points) == 0:
        return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    geoms = np.asarray(points.geometry.values, dtype=object)
    if bool((shapely.get_type_id(geoms) == 0).all() and not shapely.is_empty(geoms).any()):
        # the numbers of to_crs(4326), without building the points
        lon, lat = to_wgs84_fn(points.crs)(shapely.get_coordinates(geoms)).T
    else:
        wgs = points.geometry.to_crs(4326)
        lon, lat = wgs.x.to_numpy(), wgs.y.to_numpy()
    # cells as integers (h3's integer API; their order is that of the 15-digit strings)
    to_cell = h3_int.latlng_to_cell
    cells = np.fromiter(
        (to_cell(la, lo, resolution) for lo, la in zip(lon.tolist(), lat.tolist(), strict=True)),
        dtype=np.uint64,
        count=lon.shape[0],
    )
    people = _num(points[people_col])
    under3 = (
        _num(points["population_under3"])
        if "population_under3" in points
        else np.full(len(points), np.nan)
    )
    # cells in sorted order, each one's points in their order (as a sorted groupby)
    unique, inverse = np.unique(cells, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=unique.shape[0])
    starts = np.cumsum(counts) - counts
    grouped = pd.DataFrame(
        {
            "population": _group_sums(people[order], starts, counts),
            "population_under3": _group_sums(under3[order], starts, counts),
            "points": counts.astype(np.int64),
        },
        index=pd.Index(np.arange(unique.shape[0]), name="cell"),
    )
    grouped = grouped.sort_values(["population", "points"], ascending=False, na_position="last")
    ordered = unique[grouped.index.to_numpy()].tolist()
    return gpd.GeoDataFrame(
        {
            "cell": np.array(list(map(h3_int.int_to_str, ordered)), dtype=object),
            "population": grouped["population"].to_numpy(dtype=float),
            "population_under3": grouped["population_under3"].to_numpy(dtype=float),
            "points": grouped["points"].to_numpy(dtype=np.int64),
        },
        geometry=gpd.GeoSeries(_hexagons(ordered), crs=4326),
        crs=4326,
    )


def _hexagons(cells: list[int]) -> np.ndarray:
    """WGS84 polygons of H3 cells (integers; lon/lat, the ring closed), built in one call."""
    boundaries = list(map(h3_int.cell_to_boundary, cells))
    sizes = np.array([len(b) for b in boundaries], dtype=np.int64)
    flat = np.fromiter(
        chain.from_iterable(chain.from_iterable(boundaries)),
        dtype=float,
        count=2 * int(sizes.sum()),
    )
    lonlat = flat.reshape(-1, 2)[:, ::-1]  # h3 gives (lat, lng)
    rings = shapely.linearrings(lonlat, indices=np.repeat(np.arange(len(cells)), sizes))
    return np.asarray(shapely.polygons(rings), dtype=object)


def _people_columns(language: Language) -> list[dict[str, Any]]:
    """Tooltip columns of people and under-3 children (shown as the legend rounds them)."""
    return [
        {"label": label("population", language), "digits": 0},
        {"label": label("population_under3", language), "digits": 1},
    ]


def _site_key_column(sites: pd.DataFrame, isochrones: pd.DataFrame) -> tuple[str, str]:
    if "rank" in isochrones:
        return "rank", "rank"
    if "facility_id" in isochrones:
        return ("id" if "id" in sites else "rank"), "facility_id"
    raise InputValidationError(
        "site isochrones need a 'rank' or 'facility_id' column naming their site",
        field="rank",
    )


def hexagon_size_text(resolution: int, language: Language = "zh") -> str:
    """The H3 cell size in words: resolution, mean edge length (m) and area (km²).

    Examples
    --------
    >>> hexagon_size_text(9)
    '六边形：H3 第9级，边长约 201 米，面积约 0.11 平方公里'
    >>> hexagon_size_text(8, "en")
    'Hexagons: H3 resolution 8, edge ≈ 531 m, area ≈ 0.74 km²'
    """
    edge_m = float(h3.average_hexagon_edge_length(resolution, unit="m"))
    area_km2 = float(h3.average_hexagon_area(resolution, unit="km^2"))
    if language == "zh":
        return (
            f"六边形：H3 第{resolution}级，边长约 {edge_m:,.0f} 米，面积约 {area_km2:.2f} 平方公里"
        )
    return (
        f"Hexagons: H3 resolution {resolution}, edge ≈ {edge_m:,.0f} m, area ≈ {area_km2:.2f} km²"
    )


def _zone_layer_name(lang: Language) -> str:
    return "缺口区域（连片）" if lang == "zh" else "Gap zones (contiguous)"


def _zone_rank_label(lang: Language) -> str:
    return "缺口区排名" if lang == "zh" else "Zone rank"


def _zone_unit_names(
    gaps: pd.DataFrame, unit_names: dict[str, str]
) -> tuple[list[str], npt.NDArray[np.int64]]:
    """The distinct 街道 texts of the zones (:func:`_zone_units`) and each zone's index.

    Zones with the same ``unit_names`` and ``unit_codes`` share their text, which is
    worked out once for each such pair.
    """
    columns = [c for c in ("unit_names", "unit_codes") if c in gaps]
    if not columns or len(gaps) == 0:
        return [""], np.zeros(len(gaps), dtype=np.int64)
    keys = np.zeros(len(gaps), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(gaps[column], use_na_sentinel=True)
        keys = keys * (len(uniques) + 1) + (np.asarray(codes, dtype=np.int64) + 1)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    picks = first.tolist()
    values = [[whole[i] for i in picks] for whole in (gaps[c].tolist() for c in columns)]
    distinct = [
        _zone_units(dict(zip(columns, row, strict=True)), unit_names)
        for row in zip(*values, strict=True)
    ]
    return distinct, np.asarray(inverse, dtype=np.int64).ravel()


def _id_texts(ids: pd.Series) -> list[str]:
    """``[str(v) for v in ids]``, without a Python loop for integer ids."""
    if pd.api.types.is_integer_dtype(ids.dtype) and not bool(ids.isna().any()):
        return list(map(str, ids.to_numpy(dtype=np.int64).tolist()))
    return [str(v) for v in ids]


def _zone_units(row: Mapping[str, Any], unit_names: dict[str, str]) -> str:
    """The 街道 of a gap zone: its ``unit_names``, else its codes named via the units."""
    given = row.get("unit_names")
    if isinstance(given, str) and given:
        return "、".join(given.split(","))
    codes = row.get("unit_codes")
    if not isinstance(codes, str) or not codes:
        return ""
    return "、".join(unit_names.get(c, c) for c in codes.split(","))


def _legend_section(key: str, html: str) -> str:
    """A legend block shown only while its layer is on (``data-tuoyu-layer``)."""
    return f'<div class="tuoyu-legend-part" data-tuoyu-layer="{esc(key)}">{html}</div>'


def _ramp_legend(breaks: np.ndarray, lang: Language, unit: str | None = None) -> str:
    unit_text = unit if unit is not None else ui("people", lang)
    edges = [0.0, *[float(b) for b in breaks]]
    lines = []
    for i, color in enumerate(PEOPLE_RAMP):
        lo = edges[i] if i < len(edges) else edges[-1]
        text = f"≥ {lo:,.0f}" if i == len(PEOPLE_RAMP) - 1 else f"{lo:,.0f}–{edges[i + 1]:,.0f}"
        lines.append(
            f'<span class="tuoyu-swatch" style="background:{color}"></span>{text} '
            f"{esc(unit_text)}<br>"
        )
    return "".join(lines)


def _site_popup(row: pd.Series, sites: pd.DataFrame, lang: Language) -> tuple[str, str]:
    """Popup table and hover title of one recommended site."""
    added_col = next((c for c in ("added_population", "gain_weight") if c in sites), None)
    added = row[added_col] if added_col else None
    zh = lang == "zh"
    rows = [(esc(label("rank", lang)), esc(row["rank"]))]
    place = row.get("label")
    if isinstance(place, str) and place:
        rows.append(("点位" if zh else "Site", esc(place)))
    for column, zh_text, en_text in (
        ("unit_name", "所在街道", "Sub-district"),
        ("road_name", "最近道路", "Nearest named street"),
    ):
        value = row.get(column)
        if isinstance(value, str) and value:
            rows.append((zh_text if zh else en_text, esc(value)))
    if "lon_wgs84" in sites and not is_missing(row["lon_wgs84"]):
        rows.append(("WGS84", f"{float(row['lon_wgs84']):.6f}, {float(row['lat_wgs84']):.6f}"))
    if "lon_gcj02" in sites and not is_missing(row["lon_gcj02"]):
        rows.append(
            (
                "GCJ-02（高德）" if zh else "GCJ-02 (Amap)",
                f"{float(row['lon_gcj02']):.6f}, {float(row['lat_gcj02']):.6f}",
            )
        )
    rows.append(("新增覆盖人口（人）" if zh else "People added", fmt_number(added, lang)))
    if "added_under3" in sites:
        rows.append(
            (
                "新增覆盖3岁以下儿童（人）" if zh else "Children under 3 added",
                fmt_number(row["added_under3"], lang),
            )
        )
    if "cumulative_share" in sites:
        share = row["cumulative_share"]
        rows.append(
            (
                "累计覆盖率" if zh else "Cumulative share covered",
                fmt_number(None if is_missing(share) else 100.0 * float(share), lang, 1, "%"),
            )
        )
    if "covered_share_after_pct" in sites:
        rows.append(
            (
                "选址后覆盖率" if zh else "Covered after",
                fmt_number(row["covered_share_after_pct"], lang, 1, "%"),
            )
        )
    if "slots" in sites and not is_missing(row["slots"]):
        rows.append((esc(label("slots", lang)), fmt_number(row["slots"], lang)))
    head = f"{ui('sites', lang)} #{esc(row['rank'])}"
    name = f" {place}" if isinstance(place, str) and place else ""
    title = f"#{row['rank']}{name}: +{fmt_number(added, lang)} {ui('people', lang)}"
    return table_html(rows, title=head, cls="tuoyu-popup"), title


class _ExclusiveLayers(MacroElement):  # type: ignore[misc]
    """Thematic layers shown one at a time; legend blocks follow the shown layer.

    Turning one of ``groups`` on in the layer control turns the others off (after the
    control has finished its click, so it redraws its check boxes), and legend blocks
    marked ``data-tuoyu-layer="<key>"`` are shown only while their layer is on.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
          var map = {{ this._parent.get_name() }};
          var groups = {
            {%- for key, group in this.groups %}
            {{ key|tojson }}: {{ group.get_name() }}{{ "," if not loop.last }}
            {%- endfor %}
          };
          function syncLegend() {
            var parts = map.getContainer().querySelectorAll("[data-tuoyu-layer]");
            Array.prototype.forEach.call(parts, function (el) {
              var group = groups[el.getAttribute("data-tuoyu-layer")];
              el.style.display = !group || map.hasLayer(group) ? "" : "none";
            });
          }
          map.on("overlayadd", function (e) {
            var keep = e.layer;
            var isThematic = Object.keys(groups).some(function (k) {
              return groups[k] === keep;
            });
            setTimeout(function () {
              if (isThematic) {
                Object.keys(groups).forEach(function (k) {
                  if (groups[k] !== keep && map.hasLayer(groups[k])) {
                    map.removeLayer(groups[k]);
                  }
                });
              }
              syncLegend();
            }, 0);
          });
          map.on("overlayremove", function () { setTimeout(syncLegend, 0); });
          setTimeout(syncLegend, 0);
        })();
        {% endmacro %}
        """
    )

    def __init__(self, groups: list[tuple[str, Any]]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # folium ships no type hints
        self._name = "TuoyuExclusiveLayers"
        self.groups = list(groups)


def build_gap_map(
    population: gpd.GeoDataFrame | None = None,
    gaps: gpd.GeoDataFrame | None = None,
    sites: gpd.GeoDataFrame | None = None,
    site_isochrones: gpd.GeoDataFrame | None = None,
    *,
    facilities: gpd.GeoDataFrame | None = None,
    units: gpd.GeoDataFrame | None = None,
    threshold_m: float = 1000.0,
    walk_column: str = "walk_m_all",
    population_display: Literal["hex", "points"] = "hex",
    h3_resolution: int = 9,
    language: str = "zh",
    tianditu_key: str | None = None,
    nearest_url: str | None = None,
    area_name: str | None = None,
    attribution: str | None = None,
    simplify_m: float = DEFAULT_SIMPLIFY_M,
    basemap: str = "osm",
) -> folium.Map:
    """The planner's gap map; every layer is optional and drawn when given.

    Parameters
    ----------
    population
        Population points with ``population`` (or ``people``), optional
        ``population_under3`` and the walking distance ``walk_column`` (m, ``inf`` =
        none within the cut-off, NaN = unknown); those beyond ``threshold_m`` are drawn.
    gaps
        Gap polygons (``population`` or ``people``, optional ``population_under3``,
        ``gap_id``, ``area_m2``).
    sites
        Recommended sites: ``rank``, ``added_population`` (or ``gain_weight``),
        optional ``cumulative_share`` (0–1), ``slots``, ``id``; point geometry.
    site_isochrones
        Isochrones of the sites: ``minutes`` and ``rank`` (or ``facility_id`` equal to
        the site's ``id``, else its ``rank``).
    facilities
        Existing facilities for context (small dots with their popup).
    units
        街道 outlines for context.
    threshold_m
        Service-circle distance (15 min × speed), metres.
    walk_column
        Column of ``population`` with the walking distance to the nearest facility.
    population_display
        ``"hex"`` (H3 cells of ``h3_resolution`` shaded by people) or ``"points"``.
    h3_resolution
        H3 resolution of the hexagons (9 ≈ 0.1 km² cells).
    language, tianditu_key, nearest_url, area_name, attribution, simplify_m, basemap
        As for the other maps.

    Returns
    -------
    folium.Map

    Raises
    ------
    InputValidationError
        Missing columns, bad ``population_display`` or language, unknown site keys.
    CRSError
        A layer without CRS.
    """
    lang = check_language(language)
    if population_display not in ("hex", "points"):
        raise InputValidationError(
            "population_display must be 'hex' or 'points'", field="population_display"
        )
    if not threshold_m > 0:
        raise InputValidationError("threshold_m must be > 0", field="threshold_m")
    for layer, what in (
        (population, "population"),
        (gaps, "gaps"),
        (sites, "sites"),
        (site_isochrones, "site isochrones"),
        (facilities, "facilities"),
        (units, "units"),
    ):
        if layer is not None:
            require_crs(layer, what)

    bounds = wgs84_bounds(units, population, gaps, sites, site_isochrones, facilities)
    title = ui("gap_map", lang)
    full_title = f"{area_name or ''} {title}".strip()
    m = new_map(bounds, title=full_title)
    base_datums, initial = add_basemaps(m, lang, tianditu_key, basemap)
    config = base_config(
        kind="gaps",
        language=lang,
        base_datums=base_datums,
        initial_datum=initial,
        bounds=bounds,
        attribution=attribution,
        nearest_url=nearest_url,
    )
    config["controls"].append(title_control(full_title))
    legend: list[str] = []
    layer_data: list[DataChunks] = []
    counts: dict[str, int] = {}
    props: list[dict[str, Any]]
    # thematic layers: one shown at a time (see _ExclusiveLayers); context layers stay on
    thematic: list[tuple[str, Any]] = []
    first_thematic = "gaps" if gaps is not None and len(gaps) else "uncovered"
    unit_names: dict[str, str] = {}
    if units is not None and {"code", "name"} <= set(units.columns):
        unit_names = dict(zip(units["code"].astype(str), units["name"].astype(str), strict=True))

    if units is not None and len(units):
        group = folium.FeatureGroup(name=ui("units", lang), show=True).add_to(m)
        wgs, gcj = dual_geojson(units, simplify_m)
        props = [{"_s": UNIT_STYLE} for _ in range(len(units))]
        config["geojson"].append(
            {
                "key": "units",
                "container": group,
                "props": props,
                "wgs84": wgs,
                "gcj02": gcj,
                "interactive": False,
            }
        )
        counts["units"] = len(units)

    if gaps is not None and len(gaps):
        people_col = _people_column(gaps)
        merge_m = gaps.attrs.get("merge_distance_m")
        zone_name = _zone_layer_name(lang)
        group = folium.FeatureGroup(name=zone_name, show=first_thematic == "gaps").add_to(m)
        thematic.append(("gaps", group))
        zone_people = _num(gaps[people_col])
        breaks = _breaks(np.nan_to_num(zone_people))
        ranks = (
            _id_texts(gaps["gap_id"])
            if "gap_id" in gaps
            else list(map(str, range(1, len(gaps) + 1)))
        )
        under3 = (
            _num(gaps["population_under3"])
            if "population_under3" in gaps
            else np.full(len(gaps), np.nan)
        )
        distinct, name_of_zone = _zone_unit_names(gaps, unit_names)
        texts = sorted({n for n in distinct if n})
        text_index = {t: i for i, t in enumerate(texts)}
        columns: list[dict[str, Any]] = [
            {"label": _zone_rank_label(lang)},
            *_people_columns(lang),
            {
                "label": "街道" if lang == "zh" else "Sub-district",
                "texts": texts,
                "skipEmpty": True,
            },
        ]
        # each zone's tooltip values as JSON text, column by column
        unit_texts = np.array([str(text_index[n]) if n else "null" for n in distinct], dtype=object)
        cells: list[list[str]] = [
            json_strings(ranks),
            json_numbers(zone_people, 0),
            json_numbers(under3, 1),
            unit_texts[name_of_zone].tolist(),
        ]
        if "area_m2" in gaps:
            columns.append(
                {"label": "面积（平方公里）" if lang == "zh" else "Area (km²)", "digits": 2}
            )
            cells.append(json_numbers(_num(gaps["area_m2"]) / 1e6, 2))
        spec, data = chunked_layer(
            "gaps",
            group,
            encode_display(gaps, simplify_m, LAYER_COORD_DECIMALS),
            styles=[
                {"color": GAP_STYLE["color"], "weight": 1, "fillColor": c, "fillOpacity": 0.75}
                for c in PEOPLE_RAMP
            ],
            classes=_ramp_classes(zone_people, breaks),
            columns=columns,
            value_texts=json_rows(cells),
        )
        config["geojson"].append(spec)
        layer_data.append(data)
        counts["gaps"] = len(gaps)
        total = float(np.nansum(zone_people))
        if lang == "zh":
            head = f"<b>{esc(zone_name)}</b>：{len(gaps):,} 片，共 {fmt_number(total, lang)} 人"
            note = (
                f"（相距不超过 {float(merge_m):g} 米的范围外人口合并为一片）"
                if merge_m is not None
                else ""
            )
        else:
            head = f"<b>{esc(zone_name)}</b>: {len(gaps):,} zones, {fmt_number(total, lang)} people"
            note = (
                f" (people outside the circle within {float(merge_m):g} m of each other "
                "form one zone)"
                if merge_m is not None
                else ""
            )
        legend.append(
            _legend_section(
                "gaps", f"{head}<br><small>{esc(note)}</small><br>" + _ramp_legend(breaks, lang)
            )
        )

    if population is not None:
        uncovered = uncovered_points(population, threshold_m, walk_column)
        hex_name = ui("uncovered", lang)
        group = folium.FeatureGroup(name=hex_name, show=first_thematic == "uncovered").add_to(m)
        thematic.append(("uncovered", group))
        if population_display == "hex":
            shapes = hexagon_people(uncovered, h3_resolution)
            people = shapes["population"].to_numpy(dtype=float)
            under3 = shapes["population_under3"].to_numpy(dtype=float)
            geoms = encode_display(shapes, 0.0, LAYER_COORD_DECIMALS)
        else:
            shapes = uncovered
            people = _num(uncovered[_people_column(uncovered)])
            under3 = (
                _num(uncovered["population_under3"])
                if "population_under3" in uncovered
                else np.full(len(uncovered), np.nan)
            )
            geoms = encode_display(uncovered, 0.0, LAYER_COORD_DECIMALS, "point")
        breaks = _breaks(np.nan_to_num(people))
        styles: list[dict[str, Any]] = []
        for color in PEOPLE_RAMP:
            style: dict[str, Any] = {
                "color": color,
                "weight": 0.5,
                "fillColor": color,
                "fillOpacity": 0.65,
            }
            if population_display == "points":
                style.update(radius=4, weight=1, color="#7f2704")
            styles.append(style)
        spec, data = chunked_layer(
            "uncovered",
            group,
            geoms,
            styles=styles,
            classes=_ramp_classes(people, breaks),
            columns=_people_columns(lang),
            value_texts=json_rows([json_numbers(people, 0), json_numbers(under3, 1)]),
            kind="polygon" if population_display == "hex" else "point",
        )
        config["geojson"].append(spec)
        layer_data.append(data)
        counts["uncovered"] = len(shapes)
        counts["uncovered_points"] = len(uncovered)
        total = (
            float(np.nansum(_num(uncovered[_people_column(uncovered)]))) if len(uncovered) else 0.0
        )
        head = f"<b>{esc(hex_name)}</b>{colon(lang)}{fmt_number(total, lang)} {ui('people', lang)}"
        if population_display == "hex":
            cell = hexagon_size_text(h3_resolution, lang)
            head += f"<br><small>{esc(cell)}</small>"
            unit = "人/格" if lang == "zh" else "people per cell"
        else:
            unit = "人/点" if lang == "zh" else "people per point"
        legend.append(
            _legend_section("uncovered", f"{head}<br>" + _ramp_legend(breaks, lang, unit))
        )

    if site_isochrones is not None and len(site_isochrones):
        require_columns(site_isochrones, ("minutes",), "site isochrones")
        iso = site_isochrones[
            ~(site_isochrones.geometry.isna() | site_isochrones.geometry.is_empty)
        ]
        iso = iso.sort_values("minutes", ascending=False)
        if sites is not None:
            site_col, iso_col = _site_key_column(sites, iso)
            known = {str(v) for v in sites[site_col]}
            unknown = sorted({str(v) for v in iso[iso_col]} - known)
            if unknown:
                raise InputValidationError(
                    f"site isochrones name site(s) not given, e.g. '{unknown[0]}'", field=iso_col
                )
        iso_name = ui("site_isochrones", lang)
        group = folium.FeatureGroup(name=iso_name, show=False).add_to(m)
        thematic.append(("site_isochrones", group))
        wgs, gcj = dual_geojson(iso, display_tolerance(iso, simplify_m))
        minutes = sorted({float(v) for v in iso["minutes"]})
        color_of = {
            mm: SITE_ISO_COLORS[min(i, len(SITE_ISO_COLORS) - 1)] for i, mm in enumerate(minutes)
        }
        props = [
            {
                "_s": {
                    "color": color_of[float(mm)],
                    "weight": 1,
                    "fillColor": color_of[float(mm)],
                    "fillOpacity": 0.25,
                }
            }
            for mm in iso["minutes"]
        ]
        config["geojson"].append(
            {
                "key": "site_isochrones",
                "container": group,
                "props": props,
                "wgs84": wgs,
                "gcj02": gcj,
                "interactive": False,
            }
        )
        counts["site_isochrones"] = len(iso)
        lines = [f"<b>{esc(iso_name)}</b><br>"]
        for mm in minutes:
            lines.append(
                f'<span class="tuoyu-swatch" style="background:{color_of[mm]}"></span>'
                f"{mm:g} {ui('min', lang)}<br>"
            )
        legend.append(_legend_section("site_isochrones", "".join(lines)))

    if facilities is not None and len(facilities):
        group = folium.FeatureGroup(name=ui("existing", lang), show=True).add_to(m)
        wgs_ll, gcj_ll = dual_latlng(facilities)
        config["markers"].append(
            {
                "key": "facilities",
                "container": group,
                "wgs84": wgs_ll,
                "gcj02": gcj_ll,
                "icons": ['<span class="tuoyu-dot"></span>'] * len(facilities),
                "iconSize": [10, 10],
                "popups": [facility_popup(row, lang) for row in facility_rows(facilities)],
            }
        )
        counts["facilities"] = len(facilities)
        legend.append(
            f'<span class="tuoyu-dot" style="display:inline-block"></span> '
            f"{esc(ui('existing', lang))}<br>"
        )

    if sites is not None and len(sites):
        require_columns(sites, ("rank",), "sites")
        ordered = sites.sort_values("rank")
        group = folium.FeatureGroup(name=ui("sites", lang), show=True).add_to(m)
        wgs_ll, gcj_ll = dual_latlng(ordered)
        popups, titles = [], []
        for _, row in ordered.iterrows():
            popup, title = _site_popup(row, ordered, lang)
            popups.append(popup)
            titles.append(title)
        config["markers"].append(
            {
                "key": "sites",
                "container": group,
                "wgs84": wgs_ll,
                "gcj02": gcj_ll,
                "icons": [f'<span class="tuoyu-site">{esc(r)}</span>' for r in ordered["rank"]],
                "iconSize": [26, 26],
                "popups": popups,
                "titles": titles,
            }
        )
        counts["sites"] = len(ordered)
        rank_text = (
            "数字为排序：依次新增覆盖人数最多" if lang == "zh" else "number = rank by people added"
        )
        legend.append(
            f'<span class="tuoyu-site" style="display:inline-block">1</span> '
            f"{esc(ui('sites', lang))}<br><small>{esc(rank_text)}</small><br>"
        )

    if len(thematic) > 1:
        _ExclusiveLayers(thematic).add_to(m)
    if legend:
        config["controls"].append(
            {"position": "bottomright", "cls": "tuoyu-legend", "html": "".join(legend)}
        )
    config["counts"] = counts
    return finish_map(m, config, layer_data)
