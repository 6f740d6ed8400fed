"""The committee dashboard (``dashboard.html``): 街道 against the target profile.

A 街道 choropleth of 15-minute walking coverage, or — where there is no walking network —
of administrative coverage (a 普惠 facility inside the 街道). Each 街道 passes or fails
the profile's target (failing ones are outlined in red), the legend names the target and
the policy clause it comes from, tooltips carry the key columns of the unit table, and a
panel shows the district summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import folium
import geopandas as gpd
import numpy as np
import pandas as pd

from tuoyu.errors import InputValidationError
from tuoyu.indicators.citations import cite
from tuoyu.indicators.targets import INDICATORS, Profile, Target
from tuoyu.labels import Language, label
from tuoyu.outputs.maps.basemaps import add_basemaps
from tuoyu.outputs.maps.common import (
    DEFAULT_SIMPLIFY_M,
    base_config,
    check_language,
    colon,
    dual_geojson,
    esc,
    finish_map,
    fmt_bool,
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

PERCENT_BREAKS: Final[tuple[float, ...]] = (0.0, 20.0, 40.0, 60.0, 80.0, 90.0, 100.0)
"""Class breaks of per-cent indicators (coverage shares)."""
RAMP: Final[tuple[str, ...]] = ("#f0f9e8", "#ccebc5", "#a8ddb5", "#7bccc4", "#43a2ca", "#0868ac")
"""Sequential colours, low → high (ColorBrewer GnBu)."""
NO_DATA_COLOR: Final = "#d9d9d9"
BOOL_COLORS: Final[dict[str, str]] = {"true": "#1a9850", "false": "#fdae61", "na": NO_DATA_COLOR}
FAIL_OUTLINE: Final = "#d7191c"
TOOLTIP_COLUMNS: Final[tuple[str, ...]] = (
    "population",
    "facilities",
    "puhui_facilities",
    "slots",
    "slots_per_1000",
    "slot_shortfall",
    "coverage_pct",
    "puhui_coverage_pct",
    "median_walk_min",
    "has_puhui",
)
"""Unit-table columns shown in the tooltip when present (then every ``meets_*``)."""
_DIGITS: Final[dict[str, int]] = {
    "slots_per_1000": 2,
    "slot_shortfall": 0,
    "coverage_pct": 1,
    "puhui_coverage_pct": 1,
    "median_walk_min": 1,
    "puhui_slot_share": 1,
    "utilisation": 1,
    "access_2sfca": 3,
}


def choose_indicator(units: pd.DataFrame, indicator: str | None = None) -> str:
    """The indicator the choropleth shows.

    ``coverage_pct`` when the table has 15-minute values, else the administrative
    ``puhui_jiedao_coverage`` (``has_puhui``); an explicit ``indicator`` must be a key of
    :data:`tuoyu.indicators.targets.INDICATORS` with a per-unit column present in ``units``.

    Examples
    --------
    >>> import pandas as pd
    >>> choose_indicator(pd.DataFrame({"coverage_pct": [pd.NA], "has_puhui": [True]}))
    'puhui_jiedao_coverage'
    """
    if indicator is None:
        if "coverage_pct" in units and units["coverage_pct"].notna().any():
            return "coverage_pct"
        return "puhui_jiedao_coverage"
    if indicator not in INDICATORS or INDICATORS[indicator].unit_column is None:
        per_unit = [k for k, v in INDICATORS.items() if v.unit_column is not None]
        raise InputValidationError(
            f"indicator '{indicator}' has no per-unit column; choose one of {', '.join(per_unit)}",
            field="indicator",
        )
    return indicator


_PASS_FALLBACK: Final[tuple[str, ...]] = ("puhui_jiedao_coverage", "facility_jiedao_coverage")


def choose_pass_indicator(
    units: pd.DataFrame, key: str, profile: Profile | None, pass_indicator: str | None = None
) -> str | None:
    """The indicator whose target decides pass/fail (the red outline).

    The mapped indicator when the profile gives it a number; otherwise the profile's
    街道 coverage target (普惠, then any facility) when it has a number; ``None`` when
    nothing can pass or fail. An explicit ``pass_indicator`` wins.
    """
    if pass_indicator is not None:
        choose_indicator(units, pass_indicator)  # validates the key
        return pass_indicator
    if profile is None:
        return key if f"meets_{key}" in units else None
    for candidate in (key, *_PASS_FALLBACK):
        target = profile.target_for(candidate)
        column = INDICATORS[candidate].unit_column
        has_data = f"meets_{candidate}" in units or (column is not None and column in units)
        if target is not None and target.value is not None and has_data:
            return candidate
    return None


def _breaks(values: np.ndarray, unit: str, target: Target | None) -> list[float]:
    if unit == "%":
        return list(PERCENT_BREAKS)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 1.0
    if target is not None and target.value is not None:
        top = max(top, float(target.value) * 1.5)
    top = top if top > 0 else 1.0
    return [float(x) for x in np.linspace(0.0, top, len(RAMP) + 1)]


def _color(value: float, breaks: list[float]) -> str:
    if not np.isfinite(value):
        return NO_DATA_COLOR
    i = int(np.searchsorted(breaks, value, side="right")) - 1
    return RAMP[max(0, min(i, len(RAMP) - 1))]


def _passes(units: pd.DataFrame, key: str | None, profile: Profile | None) -> list[bool | None]:
    if key is None:
        return [None] * len(units)
    meets = f"meets_{key}"
    if meets in units:
        return [None if is_missing(v) else bool(v) for v in units[meets]]
    target = profile.target_for(key) if profile is not None else None
    column = INDICATORS[key].unit_column
    if target is None or column is None or column not in units:
        return [None] * len(units)
    if column in ("has_puhui", "has_facility"):
        # a 街道 meets a 街道-coverage target when it has such a facility itself
        return [None if is_missing(v) else bool(v) for v in units[column]]
    return [target.passes(None if is_missing(v) else float(v)) for v in units[column]]


def _pass_text(value: bool | None, language: Language) -> str:
    if value is None:
        return f'<span class="tuoyu-unknown">{ui("unknown", language)}</span>'
    if value:
        return f'<span class="tuoyu-pass">✓ {ui("pass", language)}</span>'
    return f'<span class="tuoyu-fail">✗ {ui("fail", language)}</span>'


def _cell(column: str, value: object, language: Language) -> str:
    if column.startswith("meets_") or column in ("has_puhui", "has_facility"):
        return fmt_bool(value, language)
    return fmt_number(value, language, _DIGITS.get(column, 0))


def _target_line(target: Target | None, profile: Profile | None, language: Language) -> str:
    if target is None:
        where = f"（{esc(profile.title)}）" if profile is not None else ""
        return f"{ui('no_target', language)}{where}"
    name = target.label_zh if language == "zh" else target.label_en
    # cited by document number and clause (京政办发〔2023〕6号 二、工作目标), not by file name
    source = esc(cite(target))
    return (
        f"<b>{esc(name)} {esc(target.text)}</b>"
        f'<div class="tuoyu-source">{ui("source", language)}{colon(language)}{source}'
        f"{colon(language)}“{esc(target.quote)}”</div>"
    )


def _legend_html(
    key: str,
    breaks: list[float] | None,
    pass_key: str | None,
    profile: Profile | None,
    language: Language,
    fell_back: bool,
) -> str:
    ind = INDICATORS[key]
    name = ind.label_zh if language == "zh" else ind.label_en
    parts = [f"<b>{esc(name)}</b><br>"]
    if breaks is None:
        words = {
            "true": ui("yes", language),
            "false": ui("no", language),
            "na": ui("unknown", language),
        }
        column = ind.unit_column or ""
        for k, color in BOOL_COLORS.items():
            parts.append(
                f'<span class="tuoyu-swatch" style="background:{color}"></span>'
                f"{esc(label(column, language))}{colon(language)}{words[k]}<br>"
            )
    else:
        unit = "%" if ind.unit == "%" else f" {ind.unit}"
        for lo, hi, color in zip(breaks[:-1], breaks[1:], RAMP, strict=True):
            parts.append(
                f'<span class="tuoyu-swatch" style="background:{color}"></span>'
                f"{lo:g}–{hi:g}{esc(unit)}<br>"
            )
        parts.append(
            f'<span class="tuoyu-swatch" style="background:{NO_DATA_COLOR}"></span>'
            f"{ui('unknown', language)}<br>"
        )
    if fell_back:
        parts.append(
            '<div class="tuoyu-source">'
            + (
                "无步行网络：显示行政覆盖（辖区内有普惠机构）"
                if language == "zh"
                else "No walking network: administrative coverage (a 普惠 facility inside)"
            )
            + "</div>"
        )
    if profile is not None:
        title = profile.title if language == "zh" or not profile.title_en else profile.title_en
        parts.append(f'<div class="tuoyu-source">{esc(title)}</div>')
    target = profile.target_for(key) if profile is not None else None
    if pass_key != key:
        parts.append(_target_line(target, profile, language))
    parts.append(
        f'<span class="tuoyu-swatch tuoyu-outline" style="border:2px solid {FAIL_OUTLINE}">'
        f"</span>{ui('fail', language)}"
        + (
            '<br><span class="tuoyu-swatch tuoyu-outline" style="border:1px dashed #555"></span>'
            + ui("unknown", language)
            if pass_key is not None
            else ""
        )
        + "<br>"
    )
    if pass_key is not None:
        pass_target = profile.target_for(pass_key) if profile is not None else None
        parts.append(_target_line(pass_target, profile, language))
    else:
        parts.append(f'<div class="tuoyu-source">{ui("no_target", language)}</div>')
    return "".join(parts)


def _summary_value(entry: Mapping[str, Any], language: Language) -> str:
    value = entry.get("value")
    if value is None:
        reason = esc(entry.get("reason", ""))
        return f'<span class="tuoyu-unknown" title="{reason}">—</span>'
    unit = str(entry.get("unit") or "")
    digits = 0 if unit in ("个",) else (1 if unit == "%" else 2)
    text = fmt_number(value, language, digits)
    return f"{text}{'%' if unit == '%' else ' ' + esc(unit)}"


def summary_html(summary: Mapping[str, Any], language: Language = "zh") -> str:
    """The district summary panel (HTML) from :func:`tuoyu.indicators.summary.district_summary`."""
    area = summary.get("area") or {}
    profile = summary.get("profile") or {}
    name = area.get("name") if language == "zh" else (area.get("name_en") or area.get("name"))
    head = f"{ui('summary', language)}" + (f"{colon(language)}{esc(name)}" if name else "")
    rows = []
    for key, entry in (summary.get("indicators") or {}).items():
        target = entry.get("target")
        if entry.get("value") is None and not target:
            continue
        ind_label = entry.get("label_zh") if language == "zh" else entry.get("label_en")
        target_text = esc(target.get("text", "")) if isinstance(target, Mapping) else "—"
        pass_value = entry.get("pass")
        rows.append(
            f"<tr><td>{esc(ind_label or key)}</td><td>{_summary_value(entry, language)}</td>"
            f"<td>{target_text}</td><td>{_pass_text(pass_value, language)}</td></tr>"
        )
    totals = summary.get("totals") or {}
    facts = []
    for column in ("population", "facilities", "slots"):
        if column in totals:
            value = fmt_number(totals[column], language)
            facts.append(f"{esc(label(column, language))}{colon(language)}{value}")
    notes = [esc(n) for n in (summary.get("data") or {}).get("assumptions", []) or []]
    if summary.get("approximate") and summary.get("approximate_note"):
        notes.append(esc(summary["approximate_note"]))
    title = (
        profile.get("title")
        if language == "zh"
        else (profile.get("title_en") or profile.get("title"))
    )
    cols = (
        "<tr><th>指标</th><th>现状</th><th>目标</th><th>是否达标</th></tr>"
        if language == "zh"
        else "<tr><th>Indicator</th><th>Value</th><th>Target</th><th>Result</th></tr>"
    )
    return (
        f'<details open class="tuoyu-summary"><summary><b>{head}</b></summary>'
        + (f'<div class="tuoyu-source">{esc(title)}</div>' if title else "")
        + ("<div>" + ("；" if language == "zh" else "; ").join(facts) + "</div>" if facts else "")
        + f"<table>{cols}{''.join(rows)}</table>"
        + "".join(f'<div class="tuoyu-source">{n}</div>' for n in notes)
        + "</details>"
    )


def build_dashboard_map(
    units: gpd.GeoDataFrame,
    profile: Profile | None = None,
    summary: Mapping[str, Any] | None = None,
    *,
    indicator: str | None = None,
    pass_indicator: str | None = None,
    language: str = "zh",
    tianditu_key: str | None = None,
    nearest_url: str | None = None,
    area_name: str | None = None,
    attribution: str | None = None,
    simplify_m: float = DEFAULT_SIMPLIFY_M,
    basemap: str = "osm",
) -> folium.Map:
    """The committee dashboard: 街道 choropleth with pass/fail against the profile.

    Parameters
    ----------
    units
        The unit table (:func:`tuoyu.indicators.summary.unit_table` columns, ``meets_*``
        included) with the 街道 polygons as geometry, any CRS.
    profile
        The target profile (legend: target, document, clause, quote). Without it there
        is no pass/fail unless ``meets_*`` columns are given.
    summary
        :func:`tuoyu.indicators.summary.district_summary` output for the summary panel.
    indicator
        Indicator to map (default: ``coverage_pct`` when present, else administrative
        coverage ``puhui_jiedao_coverage``); see :func:`choose_indicator`.
    pass_indicator
        Indicator whose target decides pass/fail and the red outline (default: see
        :func:`choose_pass_indicator`).
    language, tianditu_key, basemap
        As for :func:`tuoyu.outputs.maps.facility_map.build_facility_map`.
    nearest_url
        URL template of the service's nearest-facility search (recorded in the page).
    area_name
        Shown in the title.
    attribution
        Data attribution added to "© OpenStreetMap contributors".
    simplify_m
        Display simplification of the polygons, metres.

    Returns
    -------
    folium.Map

    Raises
    ------
    InputValidationError
        Missing ``code``/``name`` or the mapped column, unknown indicator, bad language.
    CRSError
        ``units`` without CRS.
    """
    lang = check_language(language)
    require_crs(units, "units")
    require_columns(units, ("code", "name"), "units")
    wanted = indicator
    key = choose_indicator(units, indicator)
    column = INDICATORS[key].unit_column or ""
    require_columns(units, (column,), "units")
    fell_back = wanted is None and key == "puhui_jiedao_coverage"
    target = profile.target_for(key) if profile is not None else None
    pass_key = choose_pass_indicator(units, key, profile, pass_indicator)
    pass_target = profile.target_for(pass_key) if profile is not None and pass_key else None
    categorical = column in ("has_puhui", "has_facility")
    values = (
        np.array([np.nan if is_missing(v) else float(v) for v in units[column]], dtype=float)
        if not categorical
        else np.empty(0)
    )
    breaks = None if categorical else _breaks(values, INDICATORS[key].unit, target)
    passes = _passes(units, pass_key, profile)

    bounds = wgs84_bounds(units)
    title = ui("dashboard_map", lang)
    full_title = f"{area_name or ''} {title}".strip()
    m = new_map(bounds, title=full_title)
    base_datums, initial = add_basemaps(m, lang, tianditu_key, basemap)
    group = folium.FeatureGroup(name=ui("units", lang), show=True).add_to(m)

    tip_columns = [c for c in TOOLTIP_COLUMNS if c in units.columns and c != column]
    tip_columns += [c for c in units.columns if str(c).startswith("meets_")]
    props = []
    for i, (_, row) in enumerate(units.iterrows()):
        ok = passes[i]
        if categorical:
            v = row[column]
            fill = BOOL_COLORS["na" if is_missing(v) else ("true" if bool(v) else "false")]
        else:
            fill = _color(values[i], breaks or [])
        style: dict[str, Any] = {"fillColor": fill, "fillOpacity": 0.7}
        if ok is False:
            style.update(color=FAIL_OUTLINE, weight=3.5, opacity=1.0)
        elif ok is None:
            style.update(color="#555555", weight=1.2, opacity=0.9, dashArray="4 3")
        else:
            style.update(color="#333333", weight=1.2, opacity=0.9)
        rows = [
            (esc(label(column, lang)), _cell(column, row[column], lang)),
            (
                esc(
                    f"{pass_target.label_zh if lang == 'zh' else pass_target.label_en} "
                    f"{pass_target.text}"
                )
                if pass_target is not None
                else ui("no_target", lang),
                _pass_text(ok, lang),
            ),
        ]
        rows += [(esc(label(c, lang)), _cell(c, row[c], lang)) for c in tip_columns]
        head = (
            f"{esc(row['name'])}（{esc(row['code'])}）"
            if lang == "zh"
            else f"{esc(row['name'])} ({esc(row['code'])})"
        )
        props.append(
            {
                "_s": style,
                "_t": table_html(rows, title=head, cls="tuoyu-tip"),
                "code": str(row["code"]),
                "pass": ok,
            }
        )
    wgs, gcj = dual_geojson(units, simplify_m)

    config = base_config(
        kind="dashboard",
        language=lang,
        base_datums=base_datums,
        initial_datum=initial,
        bounds=bounds,
        attribution=attribution,
        nearest_url=nearest_url,
    )
    subtitle = None
    if profile is not None:
        subtitle = profile.title if lang == "zh" or not profile.title_en else profile.title_en
    config["controls"].append(title_control(full_title, subtitle))
    config["controls"].append(
        {
            "position": "bottomright",
            "cls": "tuoyu-legend",
            "html": _legend_html(key, breaks, pass_key, profile, lang, fell_back),
        }
    )
    if summary is not None:
        config["controls"].append(
            {
                "position": "bottomleft",
                "cls": "tuoyu-summary-panel",
                "html": summary_html(summary, lang),
            }
        )
    config["geojson"].append(
        {"key": "units", "container": group, "props": props, "wgs84": wgs, "gcj02": gcj}
    )
    config["indicator"] = key
    config["passIndicator"] = pass_key
    config["failing"] = [p["code"] for p in props if p["pass"] is False]
    return finish_map(m, config)
