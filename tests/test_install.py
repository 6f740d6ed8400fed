"""The project as people pick it up: a wheel installed into a fresh virtualenv.

Built with ``uv build``, installed with the lock file as constraints (so the packages
come from uv's cache when warm), then used from a folder outside the checkout:
``import spopt, numba`` work beside the library (the import name is ``tuoyu``, so
coverage.py installs too), the service commands explain the missing ``service`` extra,
and ``tuoyu demo`` finds its study areas, profiles and data registry inside the package
and the external data through ``TUOYU_DATA_DIR``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tuoyu.config.data_registry import resolve_data_dir
from tuoyu.config.locations import checkout_dir
from tuoyu.errors import DataNotFoundError

pytestmark = pytest.mark.slow

ROOT = checkout_dir()


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if ROOT is None:
        pytest.skip("needs the source checkout to build the wheel")
    base = tmp_path_factory.mktemp("install")
    uv = [sys.executable, "-m", "uv"]
    _run([*uv, "build", "--wheel", "-o", str(base / "dist"), str(ROOT)], cwd=base)
    wheel = next((base / "dist").glob("tuoyu_coverage-*.whl"))
    venv = base / "venv"
    _run([*uv, "venv", "--python", sys.executable, str(venv)], cwd=base)
    python = venv / "bin" / "python"
    lock = ROOT / "requirements.lock"
    _run(
        [*uv, "pip", "install", "--python", str(python), "-c", str(lock), str(wheel), "spopt"], base
    )
    return venv


def test_installed_library_lives_beside_numba_spopt_and_coverage(fresh_venv: Path) -> None:
    python = str(fresh_venv / "bin" / "python")
    outside = fresh_venv.parent
    _run([python, "-c", "import spopt, numba"], cwd=outside)
    lock = ROOT / "requirements.lock"  # type: ignore[operator]
    uv = [sys.executable, "-m", "uv"]
    _run([*uv, "pip", "install", "--python", python, "-c", str(lock), "coverage"], cwd=outside)
    out = _run(
        [
            python,
            "-c",
            "import coverage, tuoyu, spopt, numba; "
            "print(coverage.Coverage.__module__, tuoyu.__file__)",
        ],
        cwd=outside,
    )
    assert "coverage.control" in out and "site-packages/tuoyu/__init__.py" in out


def test_service_commands_name_the_extra(fresh_venv: Path) -> None:
    tuoyu = str(fresh_venv / "bin" / "tuoyu")
    done = subprocess.run(
        [tuoyu, "token", "create", "x"], cwd=fresh_venv.parent, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert 'pip install "tuoyu-coverage[service]"' in done.stderr
    assert "Traceback" not in done.stderr


def test_installed_demo_reads_packaged_areas_and_external_data(fresh_venv: Path) -> None:
    try:
        data_dir = resolve_data_dir()
    except DataNotFoundError as exc:
        pytest.skip(str(exc))
    tuoyu = str(fresh_venv / "bin" / "tuoyu")
    work = fresh_venv.parent / "work"
    work.mkdir()
    env = {
        **os.environ,
        "TUOYU_DATA_DIR": str(data_dir),
        "TUOYU_CACHE_DIR": str(work / "cache"),
    }
    env.pop("TUOYU_PROJECT_DATA_DIR", None)
    out = _run([tuoyu, "areas"], cwd=work, env=env)
    assert "beijing-dongcheng" in out and "chongqing-yuzhong" in out
    _run([tuoyu, "data", "verify"], cwd=work, env=env)
    out = _run([tuoyu, "demo"], cwd=work, env=env)
    assert "天坛街道" in out and "Yuzhong" in out
    assert (work / "out" / "beijing-dongcheng" / "jiedao.csv").is_file()
    assert (work / "maps" / "beijing-dongcheng" / "facilities.html").is_file()
    assert not (work / "cache").exists() or any((work / "cache").iterdir())
