"""``tuoyu site --capacitated``: capacity-aware siting on a study area, with its files.

Runs the area (:func:`tuoyu.workflow.run.analyse_area`), then the capacitated maximal
covering model on its core model (:func:`tuoyu.siting.capacitated_area.
plan_capacitated_sites`) and writes ``sites_capacitated.csv``/``.geojson`` (each site's
托位, the children it adds and serves within capacity), ``targets_capacitated.csv``
(per 街道: 托位, 托位 per 1,000 and 普惠 share before and after) and
``siting_capacitated.json`` (solver, optimal flag, gap, bound, notes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from tuoyu.config.settings import Settings
from tuoyu.progress import Progress
from tuoyu.siting.capacitated_area import CapacitatedPlan, plan_capacitated_sites
from tuoyu.workflow.run import AreaRun, analyse_area


def run_capacitated_site(
    name_or_path: str | Path,
    p: int,
    out_dir: Path | None = None,
    *,
    size_menu: Sequence[float] = (30.0, 60.0, 90.0, 120.0),
    max_total_slots: float | None = None,
    unknown_slots: float | None = None,
    solver: Literal["greedy", "exact"] = "exact",
    weight: Literal["under3", "population"] = "under3",
    time_limit_s: float = 60.0,
    settings: Settings | None = None,
    progress: Progress | None = None,
    month: str | None = None,
    maps_dir: Path | None = None,
) -> tuple[AreaRun, CapacitatedPlan]:
    """Analyse the area, recommend ``p`` capacity-aware 普惠 sites and write them."""
    from tuoyu.outputs.reports import write_csv, write_geojson, write_summary_json

    progress = progress or Progress()
    run = analyse_area(name_or_path, out_dir, settings, progress, month=month, maps_dir=maps_dir)
    with progress.step(f"capacity-aware siting: {p} sites, sizes {list(size_menu)} 托位"):
        plan = plan_capacitated_sites(
            run.model,
            p=p,
            size_menu=size_menu,
            max_total_slots=max_total_slots,
            unknown_slots=unknown_slots,
            weight=weight,
            solver=solver,
            time_limit_s=time_limit_s,
        )
    result = plan.result
    out = run.out_dir
    attribution = run.results.summary.get("attribution")
    run.written.update(
        {
            "sites_capacitated.csv": write_csv(plan.sites, out / "sites_capacitated.csv"),
            "sites_capacitated.geojson": write_geojson(
                plan.sites,
                out / "sites_capacitated.geojson",
                attribution=str(attribution) if attribution else None,
                name="sites_capacitated",
            ),
            "targets_capacitated.csv": write_csv(plan.targets, out / "targets_capacitated.csv"),
            "siting_capacitated.json": write_summary_json(
                {
                    "area": run.model.area.area.name,
                    "solver": result.solver,
                    "optimal": bool(result.optimal),
                    "mip_gap": result.mip_gap,
                    "children_served": float(result.served_total),
                    "children_served_by_existing_only": float(result.baseline_served),
                    "upper_bound": result.upper_bound,
                    "wall_time_s": round(float(result.wall_time_s), 3),
                    "maximised": plan.weight_column,
                    "size_menu": list(size_menu),
                    "sites": len(plan.sites),
                    "notes": list(plan.notes),
                },
                out / "siting_capacitated.json",
            ),
        }
    )
    run.seal()
    progress.info(
        f"solver {result.solver}: {'optimal' if result.optimal else 'not proven optimal'}"
        + (f", MIP gap {result.mip_gap:.2%}" if result.mip_gap is not None else "")
        + f"; {result.served_total:,.0f} children served within capacity inside 15 min "
        f"({result.baseline_served:,.0f} by the existing facilities alone)"
    )
    for note in plan.notes:
        progress.info(f"  note: {note}")
    return run, plan
