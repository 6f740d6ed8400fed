"""``tuoyu demo`` (the README's main command): the whole product on the shared data.

北京市东城区 (Dongcheng) is the flagship: its road-centreline walking network, 17 街道,
64 kindergartens and a land-use population give per-街道 15-minute coverage (all and
普惠), administrative coverage, slots where known, gaps, the next recommended 普惠
sites and the three maps. 重庆市渝中区 (Yuzhong) is the OpenStreetMap example: no
registered facilities, so the demo shows where the first sites would go. Each number
printed is followed by the assumption it rests on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from tuoyu.progress import Progress
from tuoyu.siting.plan import SitingPlan, run_site
from tuoyu.workflow.run import AreaRun

FLAGSHIP = "beijing-dongcheng"
OSM_EXAMPLE = "chongqing-yuzhong"


def _value(summary: Mapping[str, Any], key: str) -> Any:
    indicators: Mapping[str, Any] = summary.get("indicators", {})
    return indicators.get(key, {}).get("value")


def _pct(value: Any) -> str:
    if value is None:
        return "—"
    number = float(value)
    return "—" if number != number else f"{number:.1f} %"  # NaN: unknown


def _target_text(summary: Mapping[str, Any], key: str) -> str:
    entry = summary.get("indicators", {}).get(key, {})
    target = entry.get("target") or {}
    verdict = {True: "达标 pass", False: "未达标 fail"}.get(entry.get("pass"), "—")
    return f"target {target.get('text', '—')}: {verdict}" if target else verdict


def jiedao_lines(table: pd.DataFrame) -> list[str]:
    """One line per 街道: people, 15-minute coverage (all, 普惠), 普惠 facility, 托位."""
    lines = [
        f"{'街道':<10}{'人口 people':>12}{'15分钟覆盖 all':>16}{'普惠 puhui':>12}"
        f"{'有普惠 has':>11}{'托位 slots':>11}"
    ]
    ordered = table.sort_values("coverage_pct", na_position="first")
    for record in ordered.to_dict("records"):
        slots_value = record.get("slots")
        slots = "不详 unknown" if pd.isna(slots_value) else f"{float(slots_value):,.0f}"
        has = "是 yes" if bool(record.get("has_puhui")) else "否 no"
        lines.append(
            f"{record['name']!s:<10}{float(record['population']):>12,.0f}"
            f"{_pct(record['coverage_pct']):>16}{_pct(record['puhui_coverage_pct']):>12}"
            f"{has:>11}{slots:>11}"
        )
    return lines


def flagship_lines(run: AreaRun, plan: SitingPlan) -> list[str]:
    """What Dongcheng shows: coverage, targets, gaps and the next sites, with assumptions."""
    summary = run.results.summary
    table = run.results.table
    totals = summary.get("totals", {})
    data = summary.get("data", {})
    params = summary.get("parameters", {})
    outside = float(run.results.gaps["population"].sum()) if len(run.results.gaps) else 0.0
    lacking = table.loc[~table["has_puhui"].fillna(False).astype(bool), "name"].tolist()
    after = _value(plan.after.summary, "coverage_pct")
    lines = [
        "",
        "=== 北京市东城区 Dongcheng — 15分钟托育服务圈 / 15-minute childcare service circle ===",
        f"walking {params.get('walk_speed_kmh')} km/h, 15 min = {params.get('threshold_m'):.0f} m "
        "on the district's road-centreline layer (not OSM)",
        *jiedao_lines(table),
        f"district: {_pct(_value(summary, 'coverage_pct'))} of {totals.get('population', 0):,.0f} "
        f"residents within a 15-minute walk of a facility, {_pct(_value(summary, 'puhui_coverage_pct'))}"
        " of a 普惠 one",
        f"有普惠托育机构的街道占比 / 街道 with a 普惠 facility: "
        f"{_pct(_value(summary, 'puhui_jiedao_coverage'))} ({_target_text(summary, 'puhui_jiedao_coverage')}); "
        f"without one: {', '.join(lacking) or 'none'}",
        "托位 per 1,000 and 普惠 share: not computable — the kindergarten layer has no 托位 counts",
        f"gaps: {outside:,.0f} residents live outside the 15-minute circle "
        f"({len(run.results.gaps)} areas, see gaps.html)",
        f"next {len(plan.sites)} 普惠 sites ({plan.result.solver}, "
        f"{'optimal' if plan.result.optimal else 'not proven optimal'}): +"
        f"{plan.sites['added_population'].sum():,.0f} residents within 15 min → {_pct(after)}",
    ]
    for row in plan.sites.itertuples():
        name = row.label
        lines.append(
            f"  #{row.rank} {name} ({row.unit_code}): +{row.added_population:,.0f} residents "
            f"(+{row.added_under3:,.0f} under 3)"
        )
    lines.append("assumptions / 假定:")
    lines.extend(f"  - {item}" for item in data.get("assumptions", []))
    return lines


def osm_example_lines(run: AreaRun, plan: SitingPlan) -> list[str]:
    """What Yuzhong shows: an OSM network without registered facilities."""
    after = _value(plan.after.summary, "coverage_pct")
    return [
        "",
        "=== 重庆市渝中区 Yuzhong — the OpenStreetMap example ===",
        f"no registered facilities → 15-minute coverage {_pct(_value(run.results.summary, 'coverage_pct'))};"
        f" the first {len(plan.sites)} 普惠 sites bring "
        f"{plan.sites['added_population'].sum():,.0f} residents within 15 minutes → {_pct(after)}",
        "population: the 2020 census total spread over OSM residential buildings (floor area, "
        "at most one person per 15 m²)",
    ]


def run_demo(out_root: Path | None = None, *, p: int = 5) -> list[str]:
    """Run the flagship and the OSM example; return (and print) the summary lines."""
    progress = Progress()
    root = Path(out_root) if out_root is not None else Path("out")
    maps_root = root.parent / "maps" if out_root is not None else Path("maps")
    progress.info(f"=== {FLAGSHIP}: the flagship ===")
    flagship, flagship_plan = run_site(
        FLAGSHIP, p, root / FLAGSHIP, progress=progress, maps_dir=maps_root / FLAGSHIP
    )
    progress.info("")
    progress.info(f"=== {OSM_EXAMPLE}: the OSM example ===")
    example, example_plan = run_site(
        OSM_EXAMPLE, p, root / OSM_EXAMPLE, progress=progress, maps_dir=maps_root / OSM_EXAMPLE
    )
    lines = [
        *flagship_lines(flagship, flagship_plan),
        *osm_example_lines(example, example_plan),
        "",
        f"tables: {flagship.out_dir} and {example.out_dir}",
        f"maps: {flagship.maps_dir} and {example.maps_dir} (facilities.html, dashboard.html, "
        "gaps.html)",
        "credits: Dongcheng layers — 东城区城市体检 dashboard (harvestalot, demonstration use); "
        "Yuzhong — © OpenStreetMap contributors (ODbL)",
    ]
    for line in lines:
        progress.info(line)
    return lines
