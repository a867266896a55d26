"""Who may import whom (DESIGN.md, "Packages and who may import whom"), checked on the AST.

Every .py under flows/, validation/ and generators/ is parsed; imports inside functions
count (they run too), imports under `if TYPE_CHECKING:` do not (they never run). A module
`from a.b import c` imports `a.b`, and `a.b.c` too when that is a module of the project.
Each rule is its own test, so a failure names the rule; the message lists the offending
imports as `file:line: module`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "validation", "generators")
MODALITIES = ("generators.table", "generators.image", "generators.text", "generators.sequence")
SDV_ADAPTERS = {"generators.table.sdv", "generators.sequence.par"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def project_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


@cache
def imports() -> dict[str, list[tuple[int, str]]]:
    """module -> [(line, imported module)], function-level imports included."""
    known = project_modules()
    found: dict[str, list[tuple[int, str]]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges = []
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.Import):
                edges += [(node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against the importing package
                    package = _package_of(module, path).split(".")
                    package = package[: len(package) - node.level + 1]
                    base = ".".join([*package, *([base] if base else [])])
                if base != module:  # a package importing its own submodule
                    edges.append((node.lineno, base))
                for alias in node.names:
                    if f"{base}.{alias.name}" in known:
                        edges.append((node.lineno, f"{base}.{alias.name}"))
        found[module] = edges
    return found


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(importer_in, imported_in, allow=lambda importer, imported: False) -> list[str]:
    out = []
    for importer, edges in imports().items():
        if not importer_in(importer):
            continue
        path = project_modules()[importer].relative_to(ROOT)
        for line, imported in edges:
            if imported_in(importer, imported) and not allow(importer, imported):
                out.append(f"{path}:{line}: {imported}")
    return out


def test_generators_import_no_orchestration_tracking_gx_validation_or_flows():
    banned = ("prefect", "mlflow", "great_expectations", "validation", "flows")
    bad = _violations(
        lambda m: _under(m, "generators"),
        lambda _, imported: any(_under(imported, b) for b in banned),
    )
    assert not bad, "generators/ must not import Prefect, MLflow, GX, validation or flows:\n" + (
        "\n".join(bad)
    )


def test_validation_does_not_import_flows():
    bad = _violations(lambda m: _under(m, "validation"), lambda _, i: _under(i, "flows"))
    assert not bad, "validation/ must not import flows:\n" + "\n".join(bad)


def test_modality_packages_do_not_import_each_other():
    def other_modality(importer: str, imported: str) -> bool:
        mine = next(p for p in MODALITIES if _under(importer, p))
        return any(_under(imported, p) for p in MODALITIES if p != mine)

    bad = _violations(lambda m: any(_under(m, p) for p in MODALITIES), other_modality)
    assert not bad, (
        "generators.table/image/text/sequence must not import each other (shared code "
        "belongs in generators.models, .data or .sampling):\n" + "\n".join(bad)
    )


def test_sdv_is_imported_only_by_its_two_adapters():
    bad = _violations(
        lambda m: _under(m, "generators") and m not in SDV_ADAPTERS,
        lambda _, imported: _under(imported, "sdv"),
    )
    assert not bad, (
        "sdv (BSL-licensed) may be imported only in generators/table/sdv.py and "
        "generators/sequence/par.py:\n" + "\n".join(bad)
    )


def test_generators_data_does_not_import_torch():
    bad = _violations(
        lambda m: _under(m, "generators.data"), lambda _, imported: _under(imported, "torch")
    )
    assert not bad, "generators/data/ must not import torch:\n" + "\n".join(bad)


def _cycles(packages: tuple[str, ...]) -> list[list[str]]:
    """Strongly connected components (Tarjan) of more than one module, or a module that
    imports itself, among the modules of `packages`."""
    inside = lambda m: any(_under(m, p) for p in packages)  # noqa: E731
    graph = {
        m: sorted({i for _, i in edges if inside(i) and i in project_modules()})
        for m, edges in imports().items()
        if inside(m)
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, []):
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _describe(components: list[list[str]]) -> str:
    lines = []
    for component in components:
        members = set(component)
        lines.append(f"cycle among {len(component)} modules: {', '.join(component)}")
        for module in component:
            path = project_modules()[module].relative_to(ROOT)
            for line, imported in imports()[module]:
                if imported in members and imported != module or imported == module:
                    lines.append(f"  {path}:{line}: {module} -> {imported}")
    return "\n".join(lines)


def test_no_import_cycle_anywhere():
    components = _cycles(PACKAGES)
    assert not components, "import cycles (function-level imports count):\n" + _describe(components)


# flows.config is not here: its validators import the registry, hence every model and torch.
TORCH_FREE = (
    "generators",
    "generators.errors",
    "generators.seeds",
    "generators.data.schema",
    "generators.data.values",
    "generators.data.remote",
    "generators.data.tables",
    "generators.data.split",
    "generators.data.parquet",
    "generators.data.streaming",
    "generators.sampling.conditions",
    "generators.sampling.augment",
    "generators.sampling.constraints",
    "generators.image.data",
    "generators.text.data",
    "generators.sequence.data",
    "flows.cli",
)


def test_light_modules_do_not_import_torch():
    code = (
        f"import {', '.join(TORCH_FREE)}; import sys; "
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')); "
        "assert not loaded, loaded"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (
        f"one of {TORCH_FREE} imports torch (python -X importtime shows which):\n"
        f"{result.stderr[-2000:]}"
    )


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["sample", "--help"]])
def test_synthpipe_help_does_not_import_torch(argv):
    # A user waits for --help: it must not pay for torch (seconds on a small machine).
    code = (
        "import sys; from flows.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not loaded, loaded[:3]"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
