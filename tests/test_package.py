"""The house: one import root, imports that run one way, and a distribution without tests.

Layers, bottom to top (pyproject.toml maps each sub-package onto its top-level folder):
shared facts (simsiam_tfx.config, simsiam_tfx.features) < trainer < components < pipeline < kubeflow.
A module may import its own layer and those below it, never one above, and no import cycle exists.
"""
import ast
import os
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = {"simsiam_tfx": 0, "trainer": 1, "components": 2, "pipeline": 3, "kubeflow": 4}
FOLDER_OF = {"simsiam_tfx": "simsiam_tfx", **{f"simsiam_tfx.{name}": name for name in LAYERS if name != "simsiam_tfx"}}


def production_modules() -> dict[str, str]:
    """Dotted module name -> file, for every module of the installed distribution."""
    modules = {}
    for package, folder in FOLDER_OF.items():
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            if name.endswith(".py"):
                module = package if name == "__init__.py" else f"{package}.{name[:-3]}"
                modules[module] = os.path.join(ROOT, folder, name)
    return modules


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 and parts[1] in LAYERS else 0


def imports(path: str) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def internal_graph() -> dict[str, set[str]]:
    modules = production_modules()
    return {module: {name for name in imports(path) if name in modules and name != module}
            for module, path in modules.items()}


def test_every_module_is_under_the_one_import_root():
    modules = production_modules()
    assert len(modules) > 30 and all(m == "simsiam_tfx" or m.startswith("simsiam_tfx.") for m in modules)
    for module, path in modules.items():
        stray = {name for name in imports(path)
                 if name.split(".")[0] in {"trainer", "components", "pipeline", "kubeflow", "tests", "benchmarks"}}
        assert not stray, f"{module} imports {sorted(stray)}: outside the import root, or test/benchmark code"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                  if layer(target) > layer(module))


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path (first module repeated at the end), or [] if there is none."""
    state, path = {}, []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = "done"
        return []

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return []


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports(internal_graph()) == []


def test_the_import_graph_has_no_cycle():
    assert find_cycle(internal_graph()) == []


def test_the_checks_catch_an_upward_import_a_cycle_and_a_function_level_import(tmp_path):
    graph = {"simsiam_tfx.trainer.data": {"simsiam_tfx.pipeline.cli", "simsiam_tfx.features"},
             "simsiam_tfx.pipeline.cli": {"simsiam_tfx.pipeline.flags"},
             "simsiam_tfx.pipeline.flags": {"simsiam_tfx.pipeline.cli"}}
    assert upward_imports(graph) == ["simsiam_tfx.trainer.data -> simsiam_tfx.pipeline.cli"]
    assert find_cycle(graph) == ["simsiam_tfx.pipeline.cli", "simsiam_tfx.pipeline.flags", "simsiam_tfx.pipeline.cli"]
    hidden = tmp_path / "hidden.py"
    hidden.write_text("def f():\n    from simsiam_tfx.kubeflow import compile\n")
    assert "simsiam_tfx.kubeflow.compile" in imports(str(hidden))


def test_the_wheel_installs_one_import_root_and_no_tests(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), ROOT], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = [p for p in os.listdir(tmp_path) if p.endswith(".whl")]
    with zipfile.ZipFile(tmp_path / wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    roots = {name.split("/")[0] for name in names}
    assert roots == {"simsiam_tfx", next(r for r in roots if r.endswith(".dist-info"))}
    assert not any("/tests/" in name or name.startswith("tests/") for name in names)
    assert "simsiam_tfx/pipeline/cli.py" in names and "simsiam_tfx/kubeflow/Dockerfile" in names
    # The run report's page template ships in the wheel (package data), not only in the source tree.
    assert "simsiam_tfx/pipeline/templates/report.html" in names
    assert "simsiam-tfx = simsiam_tfx.pipeline.cli:main" in entry_points
    assert "kubeflow = simsiam_tfx.kubeflow.commands:register" in entry_points
