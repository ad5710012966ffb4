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


def _module_level(tree):
    """Every statement that runs when the module is imported: not the bodies of functions, nor
    imports for type checkers only."""
    import ast

    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo.extend(child for child in ast.iter_child_nodes(node)
                        if isinstance(child, ast.stmt | ast.excepthandler))


def _module_imports() -> dict[str, set[str]]:
    """Each montpipe module's imports of other montpipe modules, at module level (an import
    inside a function runs only when called)."""
    import ast
    import os

    graph: dict[str, set[str]] = {}
    sources = []
    # build/ is pruned before the walk enters it: the wheel test builds in it meanwhile, on
    # another make-test worker, and a folder removed under a walk is an error
    for top, dirs, files in os.walk(ROOT):
        if Path(top) == ROOT:
            dirs[:] = [d for d in dirs if d not in ("tests", "build") and not d.startswith(".")]
        sources += [Path(top) / f for f in files if f.endswith(".py")]
    for path in sorted(sources):
        rel = path.relative_to(ROOT)
        parts = ["montpipe", *rel.with_suffix("").parts]
        package = parts if parts[-1] == "__init__" else parts[:-1]
        package = [p for p in package if p != "__init__"]
        name = ".".join(p for p in parts if p != "__init__")
        found = set()
        for node in _module_level(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[name] = {t for t in found if t.startswith("montpipe.")}
    modules = set(graph)
    return {k: {t for t in v if t in modules} for k, v in graph.items()}


def test_layers_point_one_way():
    """device imports no other montpipe code; hdl no host code; driver neither hdl nor sim."""
    graph = _module_imports()
    # the walk must see imports at all, relative and absolute, or the rules below pass vacuously
    assert "montpipe.device.model" in graph["montpipe.device.config"]
    assert "montpipe.device.wire" in graph["montpipe.hdl.link"]
    rules = {"montpipe.device": ("montpipe.hdl", "montpipe.driver", "montpipe.sim",
                                 "montpipe.bench", "montpipe.fl_demo", "montpipe._provenance"),
             "montpipe.hdl": ("montpipe.driver", "montpipe.sim", "montpipe.bench",
                              "montpipe.fl_demo"),
             "montpipe.driver": ("montpipe.hdl", "montpipe.sim", "montpipe.bench",
                                 "montpipe.fl_demo")}
    wrong = [f"{m} imports {t}" for m, targets in graph.items() for layer, banned in rules.items()
             if m.startswith(layer) for t in targets if t.startswith(banned)]
    assert not wrong, wrong


def test_no_import_circles():
    graph = _module_imports()
    state: dict[str, int] = {}
    circles = []

    def visit(module, path):
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target == module or target.startswith(module + "."):
                continue                      # a package importing its own submodules
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, circles
