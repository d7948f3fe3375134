"""The package's layout: the simulator stays beside the product, never inside it.

- No product module imports the simulator (exporter/simulator/: the fake ARM and the demo estate) or the
  CLI (exporter/__main__.py); the CLI alone loads the simulator, lazily, for --demo.
- The wheel ships the simulator, so that --demo works from an installed exporter, but no test-only route:
  tests and the benchmark add theirs to the fake (tests/fake_stats.py, bench/fake_server.py).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .fake_stats import STATS_PATH

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "exporter"
SIMULATOR = PACKAGE / "simulator"
CLI = PACKAGE / "__main__.py"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module the source of `module` imports, anywhere in it (lazy imports too), as absolute names:
    for `from . import x` both the package and package.x, since x may be a module."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names.add(origin)
            names.update(f"{origin}.{alias.name}" for alias in node.names)
    return names


def imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py")


def _product_modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py")
                  if path != CLI and SIMULATOR not in path.parents and "__pycache__" not in path.parts)


def _is_within(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def test_the_import_scanner_resolves_relative_and_lazy_imports() -> None:
    assert _module_name(PACKAGE / "server.py") == "exporter.server"
    assert _module_name(SIMULATOR / "__init__.py") == "exporter.simulator"
    source = ("from . import simulator\nfrom .simulator.fakearm import FakeArm\n"
              "def f():\n    from .__main__ import main\n    import exporter.simulator.demo\n")
    assert imported_modules(source, "exporter.probe") >= {
        "exporter.simulator", "exporter.simulator.fakearm", "exporter.__main__", "exporter.simulator.demo"}
    assert imported_modules("from ..models import VaultRef\n", "exporter.simulator.demo") == {
        "exporter.models", "exporter.models.VaultRef"}
    assert imported_modules("from .fakearm import FakeArm\n", "exporter.simulator", is_package=True) == {
        "exporter.simulator.fakearm", "exporter.simulator.fakearm.FakeArm"}


def test_product_modules_never_import_the_simulator_or_the_cli() -> None:
    modules = _product_modules()
    assert PACKAGE / "server.py" in modules and PACKAGE / "wiring.py" in modules
    offenders = {
        path.relative_to(ROOT).as_posix(): sorted(name for name in imports_of(path)
                                                 if _is_within(name, "exporter.simulator")
                                                 or _is_within(name, "exporter.__main__"))
        for path in modules}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_only_the_cli_reaches_the_simulator_and_nothing_imports_the_cli() -> None:
    cli = imports_of(CLI)
    assert "exporter.simulator.demo" in cli  # --demo, lazily
    for path in sorted(SIMULATOR.rglob("*.py")):
        assert not any(_is_within(name, "exporter.__main__") for name in imports_of(path)), path


def test_server_takes_the_exporter_type_from_the_wiring() -> None:
    assert "exporter.wiring.Exporter" in imports_of(PACKAGE / "server.py")
    assert not any(_is_within(name, "exporter.server") for name in imports_of(PACKAGE / "wiring.py"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built the way the Dockerfile builds it, from a copy of what it is made of (so the
    working tree gets no build/ or egg-info)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "exporter", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(root / "dist"),
                             str(source)], cwd=root, env=env, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    (built,) = (root / "dist").glob("*.whl")
    return built


def test_the_wheel_ships_the_simulator_without_test_only_routes(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {"exporter/simulator/__init__.py", "exporter/simulator/fakearm.py", "exporter/simulator/demo.py",
                "exporter/wiring.py", "exporter/__main__.py"} <= names
        holding = sorted(name for name in names if STATS_PATH.encode() in archive.read(name))
    assert holding == [], f"{STATS_PATH} is a test-only route: it belongs in tests/ and bench/"
