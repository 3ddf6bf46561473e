"""The package's layout: rooms named for the pipeline's stages, no import cycles, a results type that imports nothing
from its users, and `import edgeseg` without side effects on the process."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import edgeseg

PACKAGE = Path(edgeseg.__file__).parent
ROOMS = {"inputs", "model", "postprocess", "outputs", "tracking", "kernels", "app", "integrations", "assets", "configs"}
DATA_ROOMS = {"assets", "configs"}  # package data, not code: they need no __init__.py
TOP_MODULES = {"__init__", "__main__", "errors", "config", "results", "pipeline", "segmenter"}


def module_name(path: Path) -> str:
    parts = ("edgeseg", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str) -> list[tuple[str, bool]]:
    """(edgeseg module imported, at import time?) for every import statement of module `name`; imports under
    `if TYPE_CHECKING:` never run and are left out."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def target(base: str, names: list[str]) -> list[str]:
        # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
        return [f"{base}.{n}" if f"{base}.{n}" in MODULES else base for n in names] or [base]

    def visit(node: ast.AST, at_import: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other, at_import)
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, at_import) for a in child.names if a.name.startswith("edgeseg."))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    base = f"{base}.{child.module}" if child.module else base
                else:
                    base = child.module or ""
                if base == "edgeseg" or base.startswith("edgeseg."):
                    found.extend((t, at_import) for t in target(base, [a.name for a in child.names]))
            visit(child, at_import and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text(), str(path)), True)
    return [(t, when) for t, when in found if t in MODULES and t != name]


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph `edges`, as the list of its modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := walk(start)):
            return cycle
    return None


def graph(include_deferred: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name in MODULES:
        for target, at_import in imports(name):
            if at_import or (include_deferred and name != "edgeseg.results"):
                edges.setdefault(name, set()).add(target)
    return edges


def test_the_package_is_laid_out_by_stage():
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert rooms == ROOMS, "edgeseg/ holds one folder per pipeline stage (see README, Layout)"
    assert modules == TOP_MODULES, "new code goes into a room, not beside segmenter.py"
    for room in ROOMS - DATA_ROOMS:
        assert (PACKAGE / room / "__init__.py").exists()
    assert (PACKAGE / "py.typed").exists()


def test_the_walker_sees_every_kind_of_import():
    found = dict(imports("edgeseg.segmenter"))
    assert found["edgeseg.inputs.preprocess"] is True  # from .inputs.preprocess import Preprocessor
    assert found["edgeseg.postprocess.cuda"] is False  # imported inside a method
    assert "edgeseg.inputs.frames" not in found or found["edgeseg.inputs.frames"] is False  # TYPE_CHECKING only
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_import_cycle_at_import_time():
    assert find_cycle(graph(include_deferred=False)) is None


def test_no_import_cycle_even_through_imports_deferred_into_functions():
    # Results' output methods are the one sanctioned way up: one-line delegates into edgeseg.outputs, imported when
    # called. Every other deferred import must still point down the pipeline.
    assert find_cycle(graph(include_deferred=True)) is None


def test_results_is_a_leaf():
    at_import = {target for target, when in imports("edgeseg.results") if when}
    assert at_import <= {"edgeseg.errors"}
    deferred = {target for target, when in imports("edgeseg.results") if not when}
    assert all(t.startswith("edgeseg.outputs.") for t in deferred), deferred


def test_kernels_import_nothing_of_the_rest():
    # the install loads edgeseg/kernels on its own, without the rest of the package, to compile them
    for name in MODULES:
        if name.startswith("edgeseg.kernels"):
            at_import = {t for t, when in imports(name) if when}
            assert all(t.startswith("edgeseg.kernels") for t in at_import), (name, at_import)


def test_import_edgeseg_leaves_the_process_as_it_was():
    code = ("import os, logging; mask = os.umask(0o027); os.umask(mask); import edgeseg; now = os.umask(0o027); "
            "assert now == mask, (oct(now), oct(mask)); "
            "assert not logging.getLogger().handlers and not logging.getLogger('edgeseg').handlers; "
            "import edgeseg.outputs.files, edgeseg.outputs.video_writer, edgeseg.app.cli; "
            "assert os.umask(0o027) == 0o027")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_module_logs_under_its_own_name():
    for name, path in MODULES.items():
        text = path.read_text()
        assert 'getLogger("edgeseg")' not in text, name
        if "getLogger(" in text:
            assert "getLogger(__name__)" in text, name
