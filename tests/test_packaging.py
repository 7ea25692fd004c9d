"""A regular (non-editable) `pip install .` gives a working `pqc`: the package_dir mapping of
compiler/, passes/, backends/ and the templates' package data are what users get."""
from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(out)],
        check=True,
    )
    return next(out.glob("pqc-*.whl"))


def test_wheel_contains_every_package_and_templates(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, package in (("compiler", "pqc"), ("passes", "pqc/passes"), ("backends", "pqc/backends")):
        for source in (ROOT / folder).rglob("*.py"):  # every module of every (sub)package
            module = f"{package}/{source.relative_to(ROOT / folder).as_posix()}"
            assert module in names, module
    sources = {p.relative_to(ROOT / "codegen_templates").as_posix() for p in (ROOT / "codegen_templates").glob("*.j2")}
    for template in sources:
        assert f"pqc/codegen_templates/{template}" in names, template
    assert "pqc/backends/kernel_costs.json" in names  # the cost model's calibration table


@pytest.mark.slow
def test_regular_install_into_clean_venv_runs_cli(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # Dependencies come from the test environment (a path entry, so its editable pqc finder is
    # not activated); pqc itself only from the wheel.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import pqc, pqc.passes, pqc.backends, pqc.frontend; print(pqc.__file__)"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout
    assert str(venv) in probe, probe
    help_text = subprocess.run([str(venv / "bin" / "pqc"), "--help"], check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert "inspect" in help_text
