"""The repository's Python outside the package imports as packages: `models.*`, `bench.*`,
`plugin.vst3.*` and `host_tests.*` from the repository's root, with no folder put on sys.path and no generic
top-level names (`train`, `real`, `corpus`, `signals`, ...)."""
from __future__ import annotations

import re
import subprocess
import sys

from host_tests.helpers import ROOT

# plugin/vst3's build and validation scripts (python build.py plugin|dist|validate) too
PACKAGES = ("models", "bench", "plugin/vst3")


def test_models_and_bench_import_as_packages_without_path_edits():
    names = sorted(f"{folder.replace('/', '.')}.{p.stem}" for folder in PACKAGES
                   for p in (ROOT / folder).glob("*.py") if p.stem != "__init__")
    probe = ("import importlib, sys\n"
             "before = list(sys.path)\n"
             f"for name in {names!r}:\n"
             "    importlib.import_module(name)\n"
             "assert sys.path == before, set(sys.path) ^ set(before)\n"
             "for m in sorted(m for m in sys.modules if '.' not in m):\n"
             "    print(m, getattr(sys.modules[m], '__file__', None))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    # by file, not by name: `plugin` (the namespace of plugin.vst3) is also bench/plugin.py's name
    top_level = {name: file for name, file in (line.split(" ", 1) for line in done.stdout.splitlines())}
    ours = {str(p.resolve()) for folder in (*PACKAGES, "host_tests") for p in (ROOT / folder).glob("*.py")
            if p.stem != "__init__"}
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
    for path in sorted(ROOT.glob("*.py")) + sorted(p for folder in (*PACKAGES, "host_tests", "plugin/stemforge")
                                                    for p in (ROOT / folder).rglob("*.py")):
        if path.name == "test_layout.py":  # this file names the edits it looks for
            continue
        lines = [line.strip() for line in path.read_text().splitlines() if edits.search(line)]
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    assert found == {"build.py": ['sys.path.insert(0, str(ROOT / "plugin"))']}, found


def test_tests_share_helpers_through_host_tests_helpers_not_conftest():
    """conftest.py holds fixtures, which pytest hands to the tests; a test module that imports
    from conftest (or from another test module) depends on conftest being a top-level name."""
    imports = re.compile(r"^\s*(from\s+(conftest|test_\w+|host_tests\.(conftest|test_\w+))\s+import|"
                         r"import\s+(conftest|test_\w+)\b)")
    found = {str(p.relative_to(ROOT)): line.strip() for p in sorted((ROOT / "host_tests").glob("*.py"))
             for line in p.read_text().splitlines() if imports.search(line)}
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
    for path in sorted(ROOT.glob("*.py")) + sorted(p for folder in (*PACKAGES, "host_tests", "plugin/stemforge")
                                                    for p in (ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            else:
                continue
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n in bare]
    assert not found, found
