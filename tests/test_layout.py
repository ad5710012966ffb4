"""The distribution's shape: one `montpipe` package, the repository's folders inside it."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_subpackages_import_under_montpipe():
    import montpipe
    import montpipe.driver
    import montpipe.fl_demo
    import montpipe.hdl
    import montpipe.sim

    assert Path(montpipe.driver.__file__).parent == ROOT / "driver"
    assert Path(montpipe.hdl.__file__).parent == ROOT / "hdl"
    assert montpipe.__version__


@pytest.mark.slow
def test_wheel_puts_nothing_generic_at_the_top(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path),
         str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("montpipe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"montpipe", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for must in ["montpipe/driver/paillier.py", "montpipe/driver/backends/cpu.py",
                 "montpipe/hdl/__init__.py", "montpipe/sim/__init__.py",
                 "montpipe/fl_demo/__init__.py", "montpipe/driver/backends/fpga.py",
                 "montpipe/device/wire.py", "montpipe/device/model.py",
                 # the model backend projects the reference board from its synthesis report
                 "montpipe/reports/synth/ulx3s-85f.json",
                 # the simulated board's harness, compiled where the sim backend is first used
                 "montpipe/sim/board_main.cpp"]:
        assert must in names
    assert not any(n.startswith("montpipe/tests/") for n in names)
    from montpipe.driver.backends.cpu import native_available

    if native_available():  # built here, so it must be in the wheel too
        assert any(n.startswith("montpipe/driver/_native") and n.endswith(".so") for n in names)


def test_ruff_is_clean():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--quiet", str(ROOT)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_the_paillier_modules_import_one_way():
    """encoding <- serialization <- paillier <- vector: no module imports one above it at
    module level (a circle makes import order matter and hides which layer owns what)."""
    import ast

    order = ["encoding", "serialization", "paillier", "vector"]
    for i, name in enumerate(order):
        tree = ast.parse((ROOT / "driver" / f"{name}.py").read_text())
        imported = set()
        for node in tree.body:          # module level only; TYPE_CHECKING blocks are not run
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported |= {node.module} if node.module else {a.name for a in node.names}
        assert not imported & set(order[i + 1:]), (name, imported)
