"""The modules of ``training.data`` import each other without a circle: each imports on its own in a fresh
interpreter, and the graph of their imports (module level and inside functions) has no cycle."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "training" / "data"


def import_graph(folder: Path) -> dict[str, set[str]]:
    """``{module: modules of the same package it imports}`` for the ``.py`` files of ``folder`` (not ``__init__``)."""
    names = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    package = ".".join(folder.relative_to(REPO).parts)
    graph: dict[str, set[str]] = {}
    for name in sorted(names):
        found: set[str] = set()
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level == 1 or base.startswith(package):
                    base = base.removeprefix(package).lstrip(".")
                    found |= {base.split(".")[0]} if base else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name.removeprefix(package + ".").split(".")[0] for a in node.names
                          if a.name.startswith(package + ".")}
        graph[name] = (found & names) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or None (``graphlib`` finds it)."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        cycle = list(err.args[1])
        start = cycle.index(min(cycle[:-1]))  # the same cycle whichever module graphlib met first
        return cycle[start:-1] + cycle[:start + 1]
    return None


def test_find_cycle_sees_a_circle():
    assert find_cycle({"load": {"pack"}, "pack": {"load", "specs"}, "specs": set()}) == ["load", "pack", "load"]
    assert find_cycle({"load": {"pack", "readers"}, "pack": {"readers"}, "readers": set()}) is None


def test_training_data_imports_have_no_cycle():
    graph = import_graph(DATA)
    assert {"readers", "specs"} <= graph["pack"] and "load" not in graph["pack"]
    assert find_cycle(graph) is None


@pytest.mark.parametrize("module", ["training.data.pack", "training.data.load", "training.data.readers"])
def test_each_data_module_imports_in_a_fresh_interpreter(module):
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
