"""The repository's Python outside the package imports as packages: `models.*`, `bench.*`,
`plugin.vst3.*` and `host_tests.*` from the repository's root, with no folder put on sys.path and no generic
top-level names (`train`, `real`, `corpus`, `signals`, ...). No import circle anywhere, and the package's
layers import downwards only (bench/module_graph.py prints the graph these tests read)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from host_tests.helpers import ROOT

# plugin/vst3's build and validation scripts (python build.py plugin|dist|validate) too
PACKAGES = ("models", "bench", "plugin/vst3")


def test_models_and_bench_import_as_packages_without_path_edits():
    names = sorted(
        f"{folder.replace('/', '.')}.{p.stem}"
        for folder in PACKAGES
        for p in (ROOT / folder).glob("*.py")
        if p.stem != "__init__"
    )
    probe = (
        "import importlib, sys\n"
        "before = list(sys.path)\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "assert sys.path == before, set(sys.path) ^ set(before)\n"
        "for m in sorted(m for m in sys.modules if '.' not in m):\n"
        "    print(m, getattr(sys.modules[m], '__file__', None))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # by file, not by name: `plugin` (the namespace of plugin.vst3) is also bench/plugin.py's name
    top_level = {name: file for name, file in (line.split(" ", 1) for line in done.stdout.splitlines())}
    ours = {
        str(p.resolve())
        for folder in (*PACKAGES, "host_tests")
        for p in (ROOT / folder).glob("*.py")
        if p.stem != "__init__"
    }
    wrong = sorted(name for name, file in top_level.items() if file in ours)
    assert not wrong, f"imported as top-level modules: {wrong}"


def test_one_registry_holds_every_training_source():
    """models/real.py's SOURCES is the one registry: it holds real_more's sources (an import
    that fails is an error, not four sources silently dropped)."""
    from models.real import SOURCES
    from models.real_more import SOURCES_MORE

    names = [s.name for s in SOURCES]
    assert len(set(names)) == len(names)
    assert all(s in SOURCES for s in SOURCES_MORE) and {"mir1k", "eif"} <= set(names)


def test_no_module_puts_a_folder_on_sys_path():
    """The tests and scripts find models/, bench/ and plugin/vst3/ as packages, never through a
    folder put on sys.path (which the import probe above cannot see: it runs no test module and
    no build.py command). build.py's one edit puts this checkout's stemforge first."""
    edits = re.compile(r"sys\.path\s*(\.\s*(insert|append|extend)\b|\[[^\]]*\]\s*=|\+=|=[^=])")
    found = {}
    for path in sorted(ROOT.glob("*.py")) + sorted(
        p for folder in (*PACKAGES, "host_tests", "plugin/stemforge") for p in (ROOT / folder).rglob("*.py")
    ):
        if path.name == "test_layout.py":  # this file names the edits it looks for
            continue
        lines = [line.strip() for line in path.read_text().splitlines() if edits.search(line)]
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    assert found == {"build.py": ['sys.path.insert(0, str(ROOT / "plugin"))']}, found


def test_tests_share_helpers_through_host_tests_helpers_not_conftest():
    """conftest.py holds fixtures, which pytest hands to the tests; a test module that imports
    from conftest (or from another test module) depends on conftest being a top-level name."""
    imports = re.compile(
        r"^\s*(from\s+(conftest|test_\w+|host_tests\.(conftest|test_\w+))\s+import|"
        r"import\s+(conftest|test_\w+)\b)"
    )
    found = {
        str(p.relative_to(ROOT)): line.strip()
        for p in sorted((ROOT / "host_tests").glob("*.py"))
        for line in p.read_text().splitlines()
        if imports.search(line)
    }
    assert not found, found


def test_no_import_anywhere_names_a_sibling_module_bare():
    """The import probe above runs module level only: an import inside a function (lazily, for
    speed) that names `band_validation` instead of `models.band_validation` fails only when that
    function runs (it stopped `build.py train` at its first validation). Every import statement,
    at any depth, in the repository's Python is checked against the packages' module names."""
    import ast

    bare = {p.stem for folder in PACKAGES for p in (ROOT / folder).glob("*.py") if p.stem != "__init__"}
    bare -= {"plugin"}  # bench/plugin.py shares its name with the `plugin` namespace (plugin.vst3)
    found = []
    for path in sorted(ROOT.glob("*.py")) + sorted(
        p for folder in (*PACKAGES, "host_tests", "plugin/stemforge") for p in (ROOT / folder).rglob("*.py")
    ):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            else:
                continue
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n in bare]
    assert not found, found


def test_no_import_circle_anywhere_in_the_repository():
    """The package, models/, bench/, host_tests/ and build.py, every import statement at any
    depth: a lazy import inside a function is an edge too (it runs when the function does)."""
    from bench.module_graph import circles, edges

    graph = edges(ROOT)
    assert {e.source.split(".")[0] for e in graph} >= {"stemforge", "models", "bench", "host_tests", "build"}
    assert circles(graph) == []


def test_core_imports_nothing_above_it_and_io_no_engine():
    """core (the data path) imports core, errors and version only; io imports from core only
    its torch-free modules (the contract, layouts, resampling, statistics, lookup, policy), never
    the engines or the loading seam; no module of the package imports a higher layer."""
    from bench.module_graph import IO_MAY_IMPORT, edges, wrong_way

    graph = [e for e in edges(ROOT) if e.source.startswith("stemforge")]
    core_up = [
        e
        for e in graph
        if e.source.startswith("stemforge.core")
        and not e.target.startswith("stemforge.core")
        and e.target not in {"stemforge.errors", "stemforge.version"}
    ]
    assert core_up == []
    io_to_core = {
        e.target for e in graph if e.source.startswith("stemforge.io") and e.target.startswith("stemforge.core")
    }
    assert io_to_core and io_to_core <= IO_MAY_IMPORT, io_to_core - IO_MAY_IMPORT
    assert not {"stemforge.core.engine", "stemforge.core.loading"} & IO_MAY_IMPORT
    assert wrong_way(graph) == []


def test_the_graph_checks_find_a_circle_and_imports_against_the_layers(tmp_path):
    """The checks above on a small package built to break them: core reaching up into io in a
    function, io importing an engine, and so a circle through both."""
    from bench.module_graph import circles, edges, wrong_way

    files = {
        "plugin/stemforge/__init__.py": "",
        "plugin/stemforge/core/__init__.py": "",
        "plugin/stemforge/core/engine.py": "from .loading import Model\n",
        "plugin/stemforge/core/loading.py": "def save():\n    from ..io.writing import atomic_path\n",
        "plugin/stemforge/io/__init__.py": "",
        "plugin/stemforge/io/writing.py": "from ..core import engine\n",
        "bench/__init__.py": "",
        "bench/x.py": "import stemforge.core.engine\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = edges(tmp_path)
    assert circles(graph) == [["stemforge.core.engine", "stemforge.core.loading", "stemforge.io.writing"]]
    assert sorted((e.source, e.target, e.lazy) for e, _ in wrong_way(graph)) == [
        ("stemforge.core.loading", "stemforge.io.writing", True),
        ("stemforge.io.writing", "stemforge.core.engine", False),
    ]
    assert ("bench.x", "stemforge.core.engine") in {(e.source, e.target) for e in graph}


@pytest.mark.parametrize(
    "module",
    [
        "stemforge.core.contract",
        "stemforge.core.stats",
        "stemforge.core.lookup",
        "stemforge.io.reading",
        "stemforge.io.model_files",
    ],
)
def test_the_contract_statistics_and_io_import_no_torch(module):
    """Reading a model's metadata, finding models and reading audio need no torch (seconds to
    import); only the engines and the loading seam bring it."""
    probe = f"import sys, {module}\nprint('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False", f"import {module} imported torch"
