"""The distributions a user installs hold the whole provider: every module, py.typed, the license
files and the provider metadata Airflow discovers it by.

Checks the sdist and wheel in ``$DPC_DIST_DIR`` when set (``make dist`` sets it), else builds both
with uv into a temporary directory. ``make test-wheel`` then runs the quickstart from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from airflow_provider_dpc import __version__

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_dpc"
LICENSE_FILES = ("LICENSE", "NOTICE")


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if given := os.environ.get("DPC_DIST_DIR"):
        return Path(given).resolve()
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("building the distributions needs uv, which `make install` puts in .venv")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([uv, "build", "--quiet", "--out-dir", str(out), str(ROOT)], check=True, timeout=300)
    return out


def source_files() -> set[str]:
    """Every file of the package in the source tree, as a path from the repository root."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def only(dist_dir: Path, pattern: str) -> Path:
    (found,) = dist_dir.glob(pattern)
    return found


def test_the_wheel_holds_every_module_and_py_typed(dist_dir: Path) -> None:
    with zipfile.ZipFile(only(dist_dir, f"{PACKAGE}-{__version__}-py3-none-any.whl")) as wheel:
        names = set(wheel.namelist())
    packaged = {name for name in names if name.startswith(f"{PACKAGE}/")}
    expected = source_files()
    assert f"{PACKAGE}/py.typed" in expected
    assert f"{PACKAGE}/emulator/__main__.py" in expected
    assert packaged == expected, f"missing: {sorted(expected - packaged)}; unexpected: {sorted(packaged - expected)}"


def test_the_wheel_carries_the_license_and_the_provider_metadata(dist_dir: Path) -> None:
    with zipfile.ZipFile(only(dist_dir, "*.whl")) as wheel:
        info = f"{PACKAGE}-{__version__}.dist-info"
        names = set(wheel.namelist())
        metadata = Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    for name in LICENSE_FILES:
        assert f"{info}/licenses/{name}" in names
    assert metadata["License-Expression"] == "Apache-2.0"
    assert sorted(metadata.get_all("License-File") or []) == sorted(LICENSE_FILES)
    classifiers = set(metadata.get_all("Classifier") or [])
    assert {"Typing :: Typed", "Framework :: Apache Airflow :: Provider"} <= classifiers
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in (11, 12, 13)} <= classifiers
    assert metadata["Requires-Python"] == ">=3.11"
    assert "[apache_airflow_provider]" in entry_points
    assert "provider_info = airflow_provider_dpc.get_provider_info:get_provider_info" in entry_points


def test_the_sdist_builds_the_same_package_and_holds_what_a_packager_reads(dist_dir: Path) -> None:
    sdist = only(dist_dir, f"{PACKAGE}-{__version__}.tar.gz")
    top = f"{PACKAGE}-{__version__}"
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(f"{top}/") for name in archive.getnames()}
    assert source_files() <= names, sorted(source_files() - names)
    for name in (*LICENSE_FILES, "README.md", "CHANGELOG.md", "pyproject.toml", "Makefile"):
        assert name in names
    assert not [name for name in names if name.startswith((".venv", ".git/", ".ci/"))]
