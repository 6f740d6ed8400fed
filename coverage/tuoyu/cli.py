"""The ``tuoyu`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tuoyu import __version__
from tuoyu.errors import TuoyuError
from tuoyu.register.cli import add_register_parser
from tuoyu.workflow.batch_cli import add_batch_parser, add_tiling_arguments

DEFAULT_AREA = "beijing-dongcheng"


def _cmd_areas(args: argparse.Namespace) -> int:
    from tuoyu.config.study_area import list_areas, load_area

    for name in list_areas():
        area = load_area(name)
        print(f"{name}\t{area.area.name}\t{area.area.name_en or ''}\t{area.area.target_profile}")
    return 0


def _cmd_data_verify(args: argparse.Namespace) -> int:
    from tuoyu.config.data_registry import resolve_data_dir, verify_all
    from tuoyu.config.settings import get_settings

    settings = get_settings()
    print(f"data directory: {resolve_data_dir(settings)}")
    bad = 0
    for rel, ok, message in verify_all(settings):
        print(f"{'ok ' if ok else 'BAD'}  {rel}  {message}")
        bad += not ok
    return 1 if bad else 0


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from tuoyu.config.data_registry import resolve_data_dir
    from tuoyu.config.settings import get_settings
    from tuoyu.layers._fetch import fetch_place
    from tuoyu.progress import Progress

    fetch_place(args.place, args.name, resolve_data_dir(get_settings()), Progress())
    return 0


SERVICE_EXTRA_HINT = 'the web service is not installed: pip install "tuoyu-coverage[service]"'


class ServiceNotInstalledError(TuoyuError):
    """``tuoyu serve``/``tuoyu token`` without the ``service`` extra."""


def _require_service() -> None:
    """Check that the service (``tuoyu_api`` and its extra) imports, naming how to get it.

    The library never imports the web stack itself: the service package does.
    """
    try:
        import tuoyu_api.app  # noqa: F401  # the service and everything it needs
    except ImportError as exc:
        raise ServiceNotInstalledError(f"{SERVICE_EXTRA_HINT}; missing: {exc.name}") from exc


def _cmd_token(args: argparse.Namespace) -> int:
    _require_service()
    from tuoyu_api.tokens import create_token_cli, revoke_token_cli

    from tuoyu.config.settings import get_settings

    if args.token_command == "create":
        token = create_token_cli(args.name, get_settings())
        print(token)
        print(
            f"token '{args.name}' created; it is shown once — keep it (only its hash is stored)",
            file=sys.stderr,
        )
    else:
        revoke_token_cli(args.name, get_settings())
        print(f"token '{args.name}' revoked", file=sys.stderr)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    _require_service()
    from tuoyu_api.serve import serve

    # Prints "serving on …" once /healthz answers (tuoyu_api.serve).
    serve(args.host, args.port, workers=args.workers)
    return 0


def _cmd_site(args: argparse.Namespace) -> int:
    if args.capacitated:
        return _cmd_site_capacitated(args)
    from tuoyu.progress import Progress
    from tuoyu.siting.plan import run_site
    from tuoyu.workflow.run import report_written

    progress = Progress()
    run, _plan = run_site(
        args.area,
        args.p,
        args.out,
        progress=progress,
        solver=args.solver,
        weight=args.weight,
        candidates_file=args.candidates,
        candidates_crs=args.candidates_crs,
        spacing_m=args.spacing_m,
        require_puhui_per_jiedao=args.require_jiedao,
        min_spacing_m=args.min_spacing_m,
        time_limit_s=args.time_limit_s,
        goal_share=args.goal,
        month=args.month,
        maps_dir=args.maps,
    )
    report_written(run, progress)
    return 0


def _cmd_site_capacitated(args: argparse.Namespace) -> int:
    from tuoyu.errors import InputValidationError
    from tuoyu.progress import Progress
    from tuoyu.siting.capacitated_run import run_capacitated_site
    from tuoyu.workflow.run import report_written

    try:
        menu = [float(x) for x in str(args.sizes).split(",") if x.strip()]
    except ValueError as exc:
        raise InputValidationError(f"--sizes must be numbers like 30,60,90,120: {exc}") from exc
    progress = Progress()
    run, _plan = run_capacitated_site(
        args.area,
        args.p,
        args.out,
        size_menu=menu,
        max_total_slots=args.slot_budget,
        unknown_slots=args.unknown_slots,
        solver=args.solver,
        weight=args.weight,
        time_limit_s=args.time_limit_s,
        progress=progress,
        month=args.month,
        maps_dir=args.maps,
    )
    report_written(run, progress)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tuoyu.workflow.demo import run_demo

    run_demo(args.out, p=args.p)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from tuoyu.workflow.run import run_area

    run_area(
        args.area,
        out_dir=args.out,
        month=args.month,
        maps_dir=args.maps,
        baseline=args.baseline,
        tile_size_m=args.tile_size_m,
        tile_above_nodes=args.tile_above_nodes,
    )
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from tuoyu.indicators.targets import list_profiles, load_profile

    for name in list_profiles():
        profile = load_profile(name)
        print(f"{name}")
        for target in profile.targets:
            print(f"  {target.text:<24} {target.label_zh} — {target.citation}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tuoyu`` (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="tuoyu",
        description="15分钟托育服务圈 analyzer: walking coverage of childcare facilities.",
    )
    parser.add_argument("--version", action="version", version=f"tuoyu-coverage {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the analysis of a study area")
    run.add_argument(
        "area",
        nargs="?",
        default=DEFAULT_AREA,
        help=f"study-area name under data/areas/ or path to a .toml (default {DEFAULT_AREA})",
    )
    run.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="PREVIOUS_REGISTRY",
        help="previous registry file (same format as the area's facilities): 新增托位 and "
        "新增普惠机构 per 街道; evaluates targets such as ≥ 40 new 托位 per 镇街",
    )
    run.add_argument("--out", type=Path, default=None, help="output folder (default out/<area>)")
    run.add_argument(
        "--maps", type=Path, default=None, help="folder of the HTML maps (default maps/<area>)"
    )
    run.add_argument(
        "--month",
        default=None,
        help="reporting month YYYY-MM of the progress sheet (default: the current month)",
    )
    add_tiling_arguments(run)
    run.set_defaults(func=_cmd_run)

    site = sub.add_parser(
        "site", help="recommend sites for the next N 普惠 facilities (maximal covering)"
    )
    site.add_argument("area", help="study-area name under data/areas/ or path to a .toml")
    site.add_argument("--p", type=int, default=10, help="number of new sites (default 10)")
    site.add_argument("--out", type=Path, default=None, help="output folder (default out/<area>)")
    site.add_argument("--maps", type=Path, default=None, help="maps folder (default maps/<area>)")
    site.add_argument(
        "--solver",
        choices=["exact", "greedy"],
        default="exact",
        help="exact HiGHS MILP (default) or lazy greedy with 1-swap improvement",
    )
    site.add_argument(
        "--weight",
        choices=["under3", "population"],
        default="under3",
        help="maximise under-3 children (default) or all residents",
    )
    site.add_argument("--candidates", type=Path, default=None, help="candidate places file")
    site.add_argument("--candidates-crs", default="wgs84", help="crs of the candidates file")
    site.add_argument(
        "--spacing-m", type=float, default=150.0, help="spacing of network-sampled candidates"
    )
    site.add_argument(
        "--require-jiedao",
        action="store_true",
        help="every 街道 without a 普惠 facility must receive a site",
    )
    site.add_argument("--min-spacing-m", type=float, default=None, help="minimum site spacing")
    site.add_argument("--time-limit-s", type=float, default=60.0, help="exact solver limit")
    site.add_argument(
        "--goal",
        type=float,
        default=None,
        help="inverse question: fewest sites so this share (e.g. 0.9) is within 15 min",
    )
    site.add_argument(
        "--capacitated",
        action="store_true",
        help="capacity-aware siting: count children served within each site's 托位 "
        "(existing facilities' 托位 included) instead of everyone within 15 minutes",
    )
    site.add_argument(
        "--sizes", default="30,60,90,120", help="托位 sizes a new site may have (capacitated)"
    )
    site.add_argument(
        "--slot-budget", type=float, default=None, help="most new 托位 in all (capacitated)"
    )
    site.add_argument(
        "--unknown-slots",
        type=float,
        default=None,
        help="托位 assumed for existing facilities whose 托位 is unknown (capacitated; "
        "default: they are left out, and the notes say so)",
    )
    site.add_argument("--month", default=None, help="reporting month YYYY-MM")
    site.set_defaults(func=_cmd_site)

    demo = sub.add_parser(
        "demo", help="the whole product on the shared data: Dongcheng 街道 + Yuzhong sites"
    )
    demo.add_argument("--out", type=Path, default=None, help="output root (default out/)")
    demo.add_argument("--p", type=int, default=5, help="sites to recommend in Yuzhong")
    demo.set_defaults(func=_cmd_demo)

    profiles = sub.add_parser("profiles", help="list the target profiles with their sources")
    profiles.set_defaults(func=_cmd_profiles)

    areas = sub.add_parser("areas", help="list the shipped study areas")
    areas.set_defaults(func=_cmd_areas)

    data = sub.add_parser("data", help="external data: verify checksums, fetch OSM layers")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    verify = data_sub.add_parser("verify", help="check every registered file's sha256")
    verify.set_defaults(func=_cmd_data_verify)
    fetch = data_sub.add_parser(
        "fetch", help="download OSM walk network and outline for a place (osmnx, Overpass)"
    )
    fetch.add_argument("place", help='Nominatim query, e.g. "渝中区, 重庆市, 中国"')
    fetch.add_argument("--name", required=True, help="folder / study-area name to create")
    fetch.set_defaults(func=_cmd_data_fetch)
    token = sub.add_parser("token", help="API write tokens: create or revoke")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    for verb, text in (
        ("create", "create a token and print it once"),
        ("revoke", "revoke a token"),
    ):
        cmd = token_sub.add_parser(verb, help=text)
        cmd.add_argument("name", help="who holds the token (recorded in the audit log)")
        cmd.set_defaults(func=_cmd_token)

    add_batch_parser(sub)
    add_register_parser(sub)

    serve = sub.add_parser("serve", help="start the FastAPI service with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (each follows the registry's change sequence, so any "
        "number is consistent)",
    )
    serve.set_defaults(func=_cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tuoyu``: exits non-zero with a one-line reason on any error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except TuoyuError as exc:
        print(f"tuoyu: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tuoyu: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
