"""No two modules of the project import each other, directly or around a longer loop.

Every import counts: at module level, inside a function (a lazy import is still a dependency), and under
`if TYPE_CHECKING:` (a type-only import is a dependency of the code's meaning, and mypy follows it). A
circle is what the schema had between stacks/config.py and its platform sections (config_aws.py,
config_gcp.py) and stacks/egress.py: a section could not be read, tested or added without the whole core.
The platform sections now import only stacks/config_base.py; the rules that read the whole stack live in
modules that import the core and register with it (stacks/config.py register_platform_rules).

A package's __init__ is its own node: `import stacks.config` also runs stacks/__init__.py, but that is
Python's package loading, not a dependency of stacks.config's code, so it makes no edge.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import stacks
from stacks.config import _PLATFORM_RULES, _STACK_RULES, PLATFORM_SECTIONS
from stacks.egress import model_store_egress_problems

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stacks", "components", "inferstack", "model_image", "guardrail")


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of PACKAGES (a package is its __init__.py)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_modules(path: Path, own_name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports anywhere in its code (each name resolved to the longest module
    prefix that is one: `from stacks.config import X` -> stacks.config; `from stacks import egress` ->
    stacks.egress)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    edges: set[str] = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != own_name:
            edges.add(name)
    return edges


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def test_no_module_of_the_project_imports_itself_back() -> None:
    graph = import_graph()
    assert {"stacks.config", "stacks.config_aws", "stacks.rules_aws", "inferstack.planning.plan"} <= set(
        graph
    )
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        cycle = err.args[1]
        pytest.fail(
            "these modules import each other in a circle (every import counts, TYPE_CHECKING and "
            f"function-level ones too): {' -> '.join(cycle)}. Move what both need to a module both read, "
            "or have the lower one register with the core instead of being imported by it"
        )


def test_the_cycle_check_sees_type_only_and_lazy_imports(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n")
    b.write_text("def f():\n    from pkg.a import A\n")
    modules = {"pkg.a": a, "pkg.b": b}
    graph = {name: imported_modules(path, name, modules) for name, path in modules.items()}
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()


def test_platform_sections_import_nothing_of_the_core_schema() -> None:
    graph = import_graph()
    for platform in PLATFORM_SECTIONS:
        section_module = f"stacks.config_{platform.value}"
        core = {m for m in graph[section_module] if m.startswith("stacks.") and m != "stacks.config_base"}
        assert not {"stacks.config", f"stacks.rules_{platform.value}"} & core, (section_module, core)


def test_every_cloud_platform_has_its_rules_registered_when_stacks_loads() -> None:
    assert stacks.__name__ == "stacks"  # imported: its __init__ imported every rules module
    assert set(_PLATFORM_RULES) == set(PLATFORM_SECTIONS)
    for platform, rules in _PLATFORM_RULES.items():
        assert rules.__module__ == f"stacks.rules_{platform.value}"
    # And the rules of every stack (the model server's egress to its store).
    assert model_store_egress_problems in _STACK_RULES
