"""The project's module import graph, read from the sources: what imports what, the import
circles, and the imports that point the wrong way between the package's layers.

    python -m bench.module_graph              # this checkout: the stemforge package's graph
    python -m bench.module_graph OTHER_ROOT   # another checkout (nothing of it is imported)
    python -m bench.module_graph --all        # also models/, bench/, host_tests/, build.py

Every import statement counts, at any depth: one inside a function runs when the function
does (marked ``*``), and one under ``if TYPE_CHECKING`` is read by the type checkers. Circles
are searched over the whole repository. host_tests/test_layout.py asserts the same rules on
this checkout; this script shows the graph they are asserted on.

The layers of the package, lowest first (a module imports its own layer or lower ones):
``stemforge.errors`` and ``stemforge.version``; ``core`` (the data path); ``io`` (files in and
out), which imports from core only the torch-free modules in IO_MAY_IMPORT, never the engines
or the loading seam; ``importers``; ``apps`` and ``vst3``; ``cli``, ``__main__`` and the package
itself (its lazy public names). The package imports nothing from the rest of the repository.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
# (folder holding the top-level package or module, the folder or file): module names start there
SOURCES = (
    ("plugin", "plugin/stemforge"),
    ("", "models"),
    ("", "bench"),
    ("", "host_tests"),
    ("", "plugin/vst3"),
    ("", "build.py"),
)
PACKAGE = "stemforge"
# core's modules that io may import: torch-free (the engines and the loading seam bring torch)
IO_MAY_IMPORT = {f"stemforge.core.{m}" for m in ("contract", "layout", "resample", "stats", "lookup", "policy")}


class Edge(NamedTuple):
    source: str
    target: str
    line: int
    lazy: bool  # inside a function: imported when it runs


def module_files(root: Path) -> Dict[str, Path]:
    """Every Python module of the project under `root`, by its import name."""
    found: Dict[str, Path] = {}
    for base, place in SOURCES:
        path = root / place
        files = [path] if path.is_file() else sorted(path.rglob("*.py")) if path.is_dir() else []
        for file in files:
            parts = list(file.relative_to(root / base if base else root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = file
    return found


def _imports(tree: ast.AST) -> Iterator[Tuple[ast.AST, bool]]:
    """Every import statement of `tree`, and whether it sits inside a function."""

    def walk(node: ast.AST, lazy: bool) -> Iterator[Tuple[ast.AST, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, lazy
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from walk(child, inner)

    yield from walk(tree, False)


def edges(root: Path) -> List[Edge]:
    """Each import of a project module by a project module (a package's own __init__ that runs
    on the way is not counted: it is the target of an edge only when it is named)."""
    files = module_files(root)
    out: List[Edge] = []
    for name, file in files.items():
        is_package = file.name == "__init__.py"
        for node, lazy in _imports(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    longest = next(
                        (".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in files), None
                    )
                    targets += [longest] if longest else []
            else:
                if node.level:
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join(package + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    if f"{base}.{alias.name}" in files:  # `from . import writing`
                        targets.append(f"{base}.{alias.name}")
                    elif base in files:
                        targets.append(base)
            out += [Edge(name, t, node.lineno, lazy) for t in dict.fromkeys(targets) if t != name]
    return out


def circles(graph: List[Edge]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    succ: Dict[str, Set[str]] = {}
    for e in graph:
        succ.setdefault(e.source, set()).add(e.target)
        succ.setdefault(e.target, set())
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:  # iterative: no recursion limit on a long chain
        work = [(v, iter(sorted(succ[v])))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(succ[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return sorted(found)


def layer(module: str) -> int:
    """The package's layer of `module`, lowest first (see the module's docstring)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        raise ValueError(f"{module} is not in the {PACKAGE} package")
    sub = parts[1] if len(parts) > 1 else ""
    return {"errors": 0, "version": 0, "core": 1, "io": 2, "importers": 3, "apps": 4, "vst3": 4}.get(
        sub, 5
    )  # cli, __main__, the package's __init__


def wrong_way(graph: List[Edge]) -> List[Tuple[Edge, str]]:
    """The edges that break the package's layering, each with the rule it breaks."""
    found = []
    for e in graph:
        if e.source.split(".")[0] != PACKAGE:
            continue
        if e.target.split(".")[0] != PACKAGE:
            found.append((e, "the package imports nothing from the rest of the repository"))
        elif layer(e.target) > layer(e.source):
            found.append((e, "imports a higher layer"))
        elif (
            e.source.startswith(f"{PACKAGE}.io")
            and e.target.startswith(f"{PACKAGE}.core")
            and e.target not in IO_MAY_IMPORT
        ):
            found.append((e, "io imports from core only its torch-free modules"))
    return found


def report(root: Path, everything: bool) -> str:
    graph = edges(root)
    shown = (
        sorted(module_files(root))
        if everything
        else sorted(m for m in module_files(root) if m.split(".")[0] == PACKAGE)
    )
    lines = [
        f"module import graph of {root} ({'all modules' if everything else PACKAGE}); * = imported inside a function",
        "",
    ]
    for module in shown:
        targets: Dict[str, bool] = {}
        for e in graph:
            if e.source == module:
                targets[e.target] = targets.get(e.target, True) and e.lazy
        listed = ", ".join(f"{t}{'*' if lazy else ''}" for t, lazy in sorted(targets.items()))
        lines.append(f"{module} -> {listed or '(nothing of the project)'}")
    found = circles(graph)
    lines += ["", f"import circles (whole repository): {len(found) or 'none'}"]
    for component in found:
        inside = [e for e in graph if e.source in component and e.target in component]
        lines.append("  " + " <-> ".join(component))
        lines += [
            f"    {e.source}:{e.line} -> {e.target}{' (in a function)' if e.lazy else ''}" for e in sorted(inside)
        ]
    bad = wrong_way(graph)
    lines += ["", f"imports against the layers: {len(bad) or 'none'}"]
    lines += [
        f"  {e.source}:{e.line} -> {e.target}{' (in a function)' if e.lazy else ''}: {why}" for e, why in sorted(bad)
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=ROOT, help="the checkout to read (default: this one)")
    parser.add_argument(
        "--all", action="store_true", help="list every module of the repository, not only the package's"
    )
    args = parser.parse_args()
    print(report(args.root.resolve(), args.all))


if __name__ == "__main__":
    main()
