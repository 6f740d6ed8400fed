"""The roll-up map of a batch (``rollup.html``): every district against its target profile.

One shape per district of a ``tuoyu batch``: its outline (or its 街道 united) shaded by
pass/fail of the district-level targets of its profile, a numbered marker with its rank
(worst first by people outside the 15-minute walk), and a popup with the people outside
the circle, the slot shortfall, coverage and the targets it fails. A district without a
polygon is drawn as its marker alone at a representative point; one without any place,
and every area whose run failed, is listed in the ranked panel with the reason, so no
area of the batch is left out silently.

The rows come from :func:`tuoyu.workflow.batch.rollup_table`; the places from the
per-area files the batch writes (``places/<area>.geojson``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from tuoyu.labels import Language, label
from tuoyu.outputs.maps.basemaps import add_basemaps
from tuoyu.outputs.maps.common import (
    base_config,
    check_language,
    colon,
    dual_geojson,
    dual_latlng,
    esc,
    finish_map,
    fmt_number,
    is_missing,
    new_map,
    require_columns,
    require_crs,
    table_html,
    title_control,
    ui,
    wgs84_bounds,
)
from tuoyu.outputs.maps.dashboard_map import BOOL_COLORS, FAIL_OUTLINE

ROLLUP_SIMPLIFY_M: Final = 30.0
"""Display simplification of district outlines (metres): a province has thousands."""

_TEXT: Final[dict[str, tuple[str, str]]] = {
    "title": ("15分钟托育服务圈：区县汇总", "15-minute childcare circle: districts"),
    "districts": ("区县（按目标达标情况着色）", "Districts (shaded by targets)"),
    "ranks": ("名次标记", "Rank markers"),
    "rank": ("排名", "Rank"),
    "district_pass": ("区县目标", "District targets"),
    "failed_targets": ("未达标目标", "Targets failed"),
    "failing_units": ("未达标街道", "街道 failing a target"),
    "status": ("运行状态", "Run"),
    "done": ("本次计算", "computed now"),
    "skipped": ("未变化（沿用上次结果）", "unchanged (earlier result)"),
    "failed": ("运行失败", "failed"),
    "profile": ("目标口径", "Target profile"),
    "surplus": ("无缺口（富余 {n} 个）", "none (surplus {n})"),
    "legend_rank": (
        "数字为名次：15分钟步行圈外人口从多到少",
        "Numbers rank districts by people outside the 15-minute walk",
    ),
    "legend_pass": ("全部可判定目标达标", "meets every target it can be judged on"),
    "legend_fail": ("至少一项目标未达标", "fails at least one target"),
    "legend_unknown": ("无法判定", "cannot be judged"),
    "list": ("区县排名", "Districts ranked"),
    "at_point": (
        "无边界数据，标于代表点（路网/人口范围中心）",
        "no outline: drawn at a representative point (centre of its network/population)",
    ),
    "no_place": ("无位置信息，未上图", "no location: not on the map"),
    "n_at_point": ("{n} 个区县无边界，标于代表点", "{n} districts without outline, at a point"),
    "n_no_place": ("{n} 个区县无位置信息，仅列于表中", "{n} districts without location, listed"),
    "n_failed": ("{n} 个研究区运行失败，列于表末", "{n} areas failed, listed last"),
    "people_outside": ("圈外人口", "Outside"),
    "people_outside_long": ("15分钟步行圈外人口", "People outside the 15-min walk"),
    "coverage": ("15分钟覆盖率（全部/普惠）", "15-min coverage (all / 普惠)"),
    "population": ("常住人口", "Population"),
    "shortfall": ("托位缺口", "Shortfall"),
}
"""Labels of this map: key → (Chinese, English)."""


def _t(key: str, language: Language, **values: object) -> str:
    zh, en = _TEXT[key]
    return (zh if language == "zh" else en).format(**values)


def district_status(value: object) -> bool | None:
    """``district_pass`` of a roll-up row as ``True``/``False``/``None`` (unknown).

    Examples
    --------
    >>> district_status(True), district_status(pd.NA), district_status(0.0)
    (True, None, False)
    """
    if is_missing(value):
        return None
    return bool(value)


def _status_text(ok: bool | None, language: Language) -> str:
    if ok is None:
        return f'<span class="tuoyu-unknown">{ui("unknown", language)}</span>'
    if ok:
        return f'<span class="tuoyu-pass">✓ {ui("pass", language)}</span>'
    return f'<span class="tuoyu-fail">✗ {ui("fail", language)}</span>'


def _fill(ok: bool | None) -> str:
    return BOOL_COLORS["na" if ok is None else ("true" if ok else "false")]


def _shortfall_text(value: object, language: Language) -> str:
    if is_missing(value):
        return ui("unknown", language)
    number = float(value)  # type: ignore[arg-type]
    if number <= 0:
        return _t("surplus", language, n=fmt_number(-number, language))
    return fmt_number(number, language)


def _rank_text(rank: object) -> str:
    return "—" if is_missing(rank) else str(int(float(rank)))  # type: ignore[arg-type]


def _run_text(status: object, language: Language) -> str:
    key = str(status)
    return _t(key, language) if key in ("done", "skipped", "failed") else key


def _name(row: Mapping[Any, Any]) -> str:
    name = row.get("name")
    return str(row["area"]) if is_missing(name) or not str(name) else str(name)


def _popup(row: Mapping[Any, Any], language: Language, where: str | None) -> str:
    ok = district_status(row.get("district_pass"))
    code = row.get("code")
    head = esc(_name(row)) + (
        f"（{esc(code)}）" if language == "zh" and not is_missing(code) and str(code) else ""
    )
    if language == "en" and not is_missing(code) and str(code):
        head += f" ({esc(code)})"
    rows = [
        (_t("rank", language), _rank_text(row.get("rank"))),
        (_t("district_pass", language), _status_text(ok, language)),
    ]
    failed = row.get("failed_targets")
    english = row.get("failed_targets_en")
    if language == "en" and not is_missing(english) and str(english):
        failed = english  # (a roll-up written before the English column keeps the Chinese)
    if not is_missing(failed) and str(failed):
        rows.append((_t("failed_targets", language), esc(failed)))
    rows += [
        (
            _t("people_outside_long", language),
            fmt_number(row.get("uncovered_population"), language),
        ),
        (_t("shortfall", language), _shortfall_text(row.get("slot_shortfall"), language)),
        (
            _t("coverage", language),
            f"{fmt_number(row.get('coverage_pct'), language, 1, '%')} / "
            f"{fmt_number(row.get('puhui_coverage_pct'), language, 1, '%')}",
        ),
        (
            _t("failing_units", language),
            f"{fmt_number(row.get('failing_units'), language)} / "
            f"{fmt_number(row.get('units'), language)}",
        ),
        (_t("population", language), fmt_number(row.get("population"), language)),
        (_t("profile", language), esc(row.get("profile") or ui("unknown", language))),
        (_t("status", language), esc(_run_text(row.get("status"), language))),
    ]
    if where:
        rows.append(("", f'<span class="tuoyu-source">{esc(where)}</span>'))
    return table_html(rows, title=head, cls="tuoyu-popup")


def _list_html(
    ranked: pd.DataFrame,
    failed: pd.DataFrame,
    where: Mapping[str, str],
    language: Language,
) -> str:
    """The ranked table of every area (failed ones last, with their error)."""
    c = colon(language)
    head = (
        f"<tr><th>{_t('rank', language)}</th><th>{esc(label('name', language))}</th>"
        f"<th>{_t('district_pass', language)}</th><th>{_t('people_outside', language)}</th>"
        f"<th>{_t('shortfall', language)}</th></tr>"
    )
    body = []
    for row in ranked.to_dict("records"):
        area = str(row["area"])
        note = where.get(area)
        mark = f' <span class="tuoyu-source" title="{esc(note)}">*</span>' if note else ""
        body.append(
            f"<tr><td>{_rank_text(row.get('rank'))}</td>"
            f"<td>{esc(_name(row))}{mark}</td>"
            f"<td>{_status_text(district_status(row.get('district_pass')), language)}</td>"
            f"<td>{fmt_number(row.get('uncovered_population'), language)}</td>"
            f"<td>{_shortfall_text(row.get('slot_shortfall'), language)}</td></tr>"
        )
    for row in failed.to_dict("records"):
        error = "" if is_missing(row.get("error")) else str(row.get("error"))
        body.append(
            f'<tr><td>—</td><td>{esc(row["area"])}</td><td colspan="3">'
            f'<span class="tuoyu-fail">{_t("failed", language)}</span>{c}{esc(error)}</td></tr>'
        )
    notes = "".join(
        f'<div class="tuoyu-source">* {esc(_name(r))}{c}{esc(where[str(r["area"])])}</div>'
        for r in ranked.to_dict("records")
        if str(r["area"]) in where
    )
    return (
        f'<details open class="tuoyu-summary"><summary><b>{_t("list", language)}</b></summary>'
        f"<table>{head}{''.join(body)}</table>{notes}</details>"
    )


def build_rollup_map(
    rollup: pd.DataFrame,
    places: gpd.GeoDataFrame | None = None,
    *,
    language: str = "zh",
    tianditu_key: str | None = None,
    title: str | None = None,
    attribution: str | None = None,
    simplify_m: float = ROLLUP_SIMPLIFY_M,
    basemap: str = "osm",
) -> folium.Map:
    """The roll-up map of a batch: districts shaded by pass/fail, ranked, with popups.

    Parameters
    ----------
    rollup
        :func:`tuoyu.workflow.batch.rollup_table`: ``area``, ``status`` and, for areas
        with results, ``rank``, ``name``, ``code``, ``district_pass``,
        ``failed_targets``, ``uncovered_population``, ``slot_shortfall`` …; failed
        areas carry ``error``.
    places
        One row per area (``area`` column, any CRS): a polygon (outline or 街道) or a
        representative point. Areas missing here are listed in the panel as having no
        location.
    language, tianditu_key, basemap
        As for the other maps (:func:`tuoyu.outputs.maps.build_dashboard_map`).
    title
        Title of the page (default: the map's name).
    attribution
        Data credits added to "© OpenStreetMap contributors" (``;``-separated).
    simplify_m
        Display simplification of the outlines, metres.

    Returns
    -------
    folium.Map

    Raises
    ------
    InputValidationError
        ``rollup`` without ``area``/``status``, ``places`` without ``area``, a bad
        language.
    CRSError
        ``places`` without CRS.
    """
    lang = check_language(language)
    require_columns(rollup, ("area", "status"), "rollup")
    table = rollup.reset_index(drop=True)
    has_results = table["status"].astype(str) != "failed"
    ranked, failed = table[has_results], table[~has_results]

    geoms: dict[str, Any] = {}
    if places is not None and len(places):
        require_crs(places, "places")
        require_columns(places, ("area",), "places")
        wgs = places.to_crs(4326)
        for area, geom in zip(wgs["area"].astype(str), wgs.geometry, strict=True):
            if geom is not None and not geom.is_empty:
                geoms[area] = geom
    polygons = [
        a for a in ranked["area"].astype(str) if a in geoms and geoms[a].geom_type != "Point"
    ]
    placed = [a for a in ranked["area"].astype(str) if a in geoms]
    where = {
        a: _t("at_point", lang) if a in geoms else _t("no_place", lang)
        for a in ranked["area"].astype(str)
        if a not in polygons
    }
    rows = {str(r["area"]): r for r in ranked.to_dict("records")}

    poly_frame = gpd.GeoDataFrame(
        {"area": polygons}, geometry=[geoms[a] for a in polygons], crs=4326
    )
    point_frame = gpd.GeoDataFrame(
        {"area": placed},
        geometry=[
            geoms[a]
            if geoms[a].geom_type == "Point"
            else shapely.Point(geoms[a].representative_point())
            for a in placed
        ],
        crs=4326,
    )
    bounds = wgs84_bounds(poly_frame, point_frame)
    full_title = title or _t("title", lang)
    m = new_map(bounds, title=full_title)
    base_datums, initial = add_basemaps(m, lang, tianditu_key, basemap)
    shapes = folium.FeatureGroup(name=_t("districts", lang), show=True).add_to(m)
    marks = folium.FeatureGroup(name=_t("ranks", lang), show=True).add_to(m)
    config = base_config(
        kind="rollup",
        language=lang,
        base_datums=base_datums,
        initial_datum=initial,
        bounds=bounds,
        attribution=attribution,
    )
    n_failed_targets = int(
        sum(district_status(rows[a].get("district_pass")) is False for a in rows)
    )
    subtitle = (
        f"{len(ranked)} 个区县，{n_failed_targets} 个未达标"
        if lang == "zh"
        else f"{len(ranked)} districts, {n_failed_targets} failing a target"
    )
    config["controls"].append(title_control(full_title, subtitle))
    if polygons:
        props = []
        for area in polygons:
            row = rows[area]
            ok = district_status(row.get("district_pass"))
            style: dict[str, Any] = {"fillColor": _fill(ok), "fillOpacity": 0.55}
            if ok is False:
                style.update(color=FAIL_OUTLINE, weight=2.5, opacity=1.0)
            else:
                style.update(color="#333333", weight=1.0, opacity=0.9)
            props.append(
                {
                    "_s": style,
                    "_t": esc(_name(row)),
                    "_p": _popup(row, lang, None),
                    "area": area,
                    "pass": ok,
                }
            )
        wgs84, gcj02 = dual_geojson(poly_frame, simplify_m)
        config["geojson"].append(
            {"key": "districts", "container": shapes, "props": props, "wgs84": wgs84,
             "gcj02": gcj02}
        )  # fmt: skip
    if placed:
        wgs_ll, gcj_ll = dual_latlng(point_frame)
        icons, popups, titles = [], [], []
        for area in placed:
            row = rows[area]
            ok = district_status(row.get("district_pass"))
            text = _rank_text(row.get("rank"))
            icons.append(f'<span class="tuoyu-site" style="background:{_fill(ok)};color:#111">'
                         f"{esc(text)}</span>")  # fmt: skip
            popups.append(_popup(row, lang, where.get(area)))
            titles.append(f"{text}. {_name(row)}")
        config["markers"].append(
            {"key": "ranks", "container": marks, "wgs84": wgs_ll, "gcj02": gcj_ll,
             "icons": icons, "iconSize": [26, 26], "popups": popups, "titles": titles}
        )  # fmt: skip
    legend = [
        f'<span class="tuoyu-swatch" style="background:{BOOL_COLORS["true"]}"></span>'
        f"{ui('pass', lang)}{colon(lang)}{_t('legend_pass', lang)}<br>",
        f'<span class="tuoyu-swatch" style="background:{BOOL_COLORS["false"]};'
        f'border:2px solid {FAIL_OUTLINE}"></span>'
        f"{ui('fail', lang)}{colon(lang)}{_t('legend_fail', lang)}<br>",
        f'<span class="tuoyu-swatch" style="background:{BOOL_COLORS["na"]}"></span>'
        f"{_t('legend_unknown', lang)}<br>",
        f'<div class="tuoyu-source">{_t("legend_rank", lang)}</div>',
    ]
    n_point = sum(1 for a in where if a in geoms)
    n_none = len(where) - n_point
    for key, n in (("n_at_point", n_point), ("n_no_place", n_none), ("n_failed", len(failed))):
        if n:
            legend.append(f'<div class="tuoyu-source">{_t(key, lang, n=n)}</div>')
    config["controls"].append(
        {"position": "bottomright", "cls": "tuoyu-legend", "html": "".join(legend)}
    )
    config["controls"].append(
        {
            "position": "bottomleft",
            "cls": "tuoyu-summary-panel",
            "html": _list_html(ranked, failed, where, lang),
        }
    )
    config["areas"] = {
        "ranked": [str(a) for a in ranked["area"]],
        "polygons": polygons,
        "points": [a for a in placed if a not in polygons],
        "unplaced": [a for a in where if a not in geoms],
        "failed": [str(a) for a in failed["area"]],
        "failing_targets": [
            a for a in rows if district_status(rows[a].get("district_pass")) is False
        ],
    }
    return finish_map(m, config)


def places_frame(features: Sequence[Mapping[str, Any]]) -> gpd.GeoDataFrame:
    """Places of areas from GeoJSON features (``properties.area``), in WGS84.

    Examples
    --------
    >>> f = {"type": "Feature", "properties": {"area": "a", "kind": "point"},
    ...      "geometry": {"type": "Point", "coordinates": [106.5, 29.5]}}
    >>> places_frame([f])[["area", "kind"]].values.tolist()
    [['a', 'point']]
    """
    if not features:
        return gpd.GeoDataFrame(
            {"area": pd.Series(dtype=str), "kind": pd.Series(dtype=str)},
            geometry=gpd.GeoSeries([], crs=4326),
            crs=4326,
        )
    frame = gpd.GeoDataFrame.from_features(list(features), crs=4326)
    keep = np.array([a is not None for a in frame["area"]], dtype=bool)
    return frame[keep].reset_index(drop=True)
