"""``tuoyu demo`` (the README's main command): the whole product on the shared data.

Dongcheng's 街道 indicators against the Beijing core profile, and on Yuzhong the first
recommended 普惠 sites with their coverage; writes the tables and the three maps of each
area and prints a short summary of what it found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuoyu.config.settings import get_settings
from tuoyu.progress import Progress
from tuoyu.siting.plan import run_site
from tuoyu.workflow.run import analyse_area


def _value(summary: dict[str, Any], key: str) -> Any:
    indicators: dict[str, Any] = summary.get("indicators", {})
    return indicators.get(key, {}).get("value")


def _fmt_pct(value: object) -> str:
    return "—" if value is None else f"{float(value):.1f} %"  # type: ignore[arg-type]


def run_demo(out_root: Path | None = None, *, p: int = 5) -> list[str]:
    """Run both shared areas; return (and print) the summary lines."""
    settings = get_settings()
    progress = Progress()
    root = Path(out_root) if out_root is not None else Path("out")

    progress.info("=== 北京市东城区 / Dongcheng: 街道 indicators ===")
    dongcheng = analyse_area("beijing-dongcheng", root / "beijing-dongcheng", settings, progress)
    table = dongcheng.results.table
    summary = dongcheng.results.summary
    lacking = table.loc[table["has_puhui"].fillna(False) == False, "name"].tolist()  # noqa: E712
    indicators: dict[str, Any] = summary["indicators"]  # type: ignore[assignment]
    target = indicators["puhui_jiedao_coverage"].get("target") or {}

    progress.info("")
    progress.info(f"=== 重庆市渝中区 / Yuzhong: the first {p} recommended 普惠 sites ===")
    yuzhong, plan = run_site("chongqing-yuzhong", p, root / "chongqing-yuzhong", progress=progress)
    yz_summary = yuzhong.results.summary
    after = _value(plan.after.summary, "coverage_pct")

    lines = [
        "",
        "Summary / 结论",
        f"东城区 Dongcheng: {len(table)} 街道; 有普惠托育机构的街道占比 "
        f"{_fmt_pct(_value(summary, 'puhui_jiedao_coverage'))} (target {target.get('text', '—')}, "
        f"{target.get('source_file', '')}); without one: {', '.join(lacking) or 'none'}. "
        "托位 per 1,000: unknown (the kindergarten layer has no 托位 counts); 15-minute coverage "
        "not computed (no walking network in the shared data).",
        f"渝中区 Yuzhong: no registered facilities → 15-minute coverage "
        f"{_fmt_pct(_value(yz_summary, 'coverage_pct'))}; {len(plan.sites)} recommended 普惠 sites "
        f"({plan.result.solver}, {'optimal' if plan.result.optimal else 'not proven optimal'}) bring "
        f"{plan.sites['added_population'].sum():,.0f} residents "
        f"({plan.sites['added_under3'].sum():,.0f} under 3) within 15 minutes → coverage "
        f"{_fmt_pct(after)}.",
        f"Tables: {dongcheng.out_dir} and {yuzhong.out_dir}",
        f"Maps: {dongcheng.maps_dir} and {yuzhong.maps_dir} (facilities.html, dashboard.html, "
        "gaps.html)",
        "Walking 4 km/h, 15 min = 1,000 m. Maps and exports: © OpenStreetMap contributors.",
    ]
    for line in lines:
        progress.info(line)
    return lines
