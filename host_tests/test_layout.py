"""The repository's Python outside the package imports as packages: `models.*`, `bench.*` and
`host_tests.*` from the repository's root, with no folder put on sys.path and no generic
top-level names (`train`, `real`, `corpus`, `signals`, ...)."""
from __future__ import annotations

import subprocess
import sys

from host_tests.helpers import ROOT


def test_models_and_bench_import_as_packages_without_path_edits():
    names = sorted(f"{folder}.{p.stem}" for folder in ("models", "bench")
                   for p in (ROOT / folder).glob("*.py") if p.stem != "__init__")
    probe = ("import importlib, sys\n"
             "before = list(sys.path)\n"
             f"for name in {names!r}:\n"
             "    importlib.import_module(name)\n"
             "assert sys.path == before, set(sys.path) ^ set(before)\n"
             "print(' '.join(sorted(m for m in sys.modules if '.' not in m)))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    top_level = set(done.stdout.split())
    ours = {p.stem for folder in ("models", "bench", "host_tests") for p in (ROOT / folder).glob("*.py")}
    assert not top_level & ours, f"imported as top-level modules: {sorted(top_level & ours)}"


def test_one_registry_holds_every_training_source():
    """models/real.py's SOURCES is the one registry: it holds real_more's sources (an import
    that fails is an error, not four sources silently dropped)."""
    from models.real import SOURCES
    from models.real_more import SOURCES_MORE
    names = [s.name for s in SOURCES]
    assert len(set(names)) == len(names)
    assert all(s in SOURCES for s in SOURCES_MORE) and {"mir1k", "eif"} <= set(names)
