"""The library's shape: layered subpackages (import-linter contracts), no import cycles, every module
importable on its own in a fresh process, and nothing but packages at ``gross/``'s top level."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gross"
LAYERS = ["bench", "pipeline", "report", "runs", "training", "search", "data", "method", "models", "utils"]


def _modules() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue  # running it is the point of a __main__ module
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


MODULES = _modules()


def test_top_level_holds_only_packages():
    files = sorted(p.name for p in PACKAGE.iterdir() if p.is_file() and p.suffix == ".py")
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert files == ["__init__.py"], f"gross/ must hold only __init__.py and subpackages, found {files}"
    assert packages == sorted(LAYERS), packages


def test_import_linter_contracts_are_kept():
    """The contracts in pyproject.toml's ``[tool.importlinter]`` (layers, no sibling cycles)."""
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.is_file(), f"{lint} not found: import-linter is part of the pinned environment (make env)"
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout, result.stdout[-2000:]


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_cycle_finder_finds_a_cycle():
    class Graph:  # a -> b -> c -> a, c -> d
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
        modules = set(edges)

        def find_modules_directly_imported_by(self, m):
            return self.edges[m]

    assert _cycles(Graph()) == [["a", "b", "c"]]


def test_no_module_level_import_cycles():
    """Every import counts, including ones inside functions: a lazy import is no way out of a cycle."""
    assert _cycles(grimp.build_graph("gross")) == []


#: Run in a fresh interpreter that has imported the third-party packages but no gross module; each
#: gross module is then imported in a forked child of it, so every import starts from no gross module
#: loaded (as ``python -c "import gross.x.y"`` would) without paying torch's import once per module.
_IMPORT_EACH = """
import json, os, sys, traceback
import numpy, pandas, scipy, torch, torchvision, matplotlib, tensorly  # noqa: F401
assert not [m for m in sys.modules if m == "gross" or m.startswith("gross.")]
failed = {}
for module in json.loads(sys.argv[1]):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            __import__(module)
            code = 0
        except BaseException:
            os.write(w, traceback.format_exc()[-3000:].encode())
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        message = f.read()
    if os.waitpid(pid, 0)[1] != 0:
        failed[module] = message or "child died"
print(json.dumps(failed))
"""


def test_every_module_imports_alone_in_a_fresh_process():
    import json

    result = subprocess.run([sys.executable, "-c", _IMPORT_EACH, json.dumps(MODULES)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    failed = json.loads(result.stdout.strip().splitlines()[-1])
    assert not failed, "\n\n".join(f"import {m} failed:\n{msg}" for m, msg in failed.items())
    assert len(MODULES) > 50  # the walk found the package
