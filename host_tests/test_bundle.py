"""The VST3 bundle is the whole installation: it carries the libraries its engine needs
(libtorch's, soxr's), found through $ORIGIN-relative paths, so a copy of it anywhere works in a
host that has no Python and no torch of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import stemforge
from host_tests.helpers import MODELS, db, music

try:
    BUNDLE = stemforge.plugin_path()
except FileNotFoundError as e:  # pragma: no cover - CI builds the bundle first
    pytestmark = pytest.mark.skip(reason=f"{e}")
    BUNDLE = None

pytest.importorskip("pedalboard")

# the libraries the engine needs beyond the C/C++ runtime: torch's and soxr's (and the OpenMP
# runtime they both use)
CARRIED = ("libtorch", "libc10", "libsoxr", "libgomp")


def test_the_engine_finds_its_libraries_beside_itself():
    engine = BUNDLE / "Contents" / "x86_64-linux" / "libstemforge_engine.so"
    dynamic = subprocess.run(["readelf", "-d", str(engine)], capture_output=True, text=True, check=True).stdout
    paths = [line.split("[", 1)[1].rstrip("]") for line in dynamic.splitlines() if "RUNPATH" in line or "RPATH" in line]
    assert paths == ["$ORIGIN"], paths
    needed = [line.split("[", 1)[1].rstrip("]") for line in dynamic.splitlines() if "(NEEDED)" in line]
    for lib in needed:
        if lib.startswith(CARRIED):
            assert (engine.parent / lib).is_file(), f"{lib} is not in the bundle"


def test_a_copied_bundle_runs_without_python_environment(tmp_path):
    """A copy of the bundle in a fresh folder, loaded by pedalboard in a process that never
    imports torch, separates as StemSeparator does; its memory map shows every libtorch and
    soxr library loaded from inside the copy, none from the Python environment."""
    copy = tmp_path / "plugins" / "stemforge.vst3"
    try:  # hard links where the file system allows (libtorch_cpu is 434 MB): other paths all the same
        shutil.copytree(BUNDLE, copy, copy_function=lambda src, dst: os.link(os.path.realpath(src), dst))
    except OSError:
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(BUNDLE, copy)
    rate = 44100
    x = music(1.0, rate, seed=31)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np, pedalboard
        plugin = pedalboard.load_plugin({str(copy)!r})
        plugin.model = "fixture-stream"
        plugin.stem = "vocals"
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "y.npy")!r}, plugin(x, {rate}, buffer_size=512))
        maps = [line.split()[-1] for line in open("/proc/self/maps") if "/" in line.split()[-1]]
        print(json.dumps({{"maps": sorted(set(maps)), "torch": "torch" in sys.modules}}))
    """)
    # no STEMFORGE_TORCH_LIB, nothing on the library path: only what the bundle carries
    env = {k: v for k, v in os.environ.items() if k not in ("STEMFORGE_TORCH_LIB", "LD_LIBRARY_PATH", "LD_PRELOAD")}
    env["STEMFORGE_MODELS"] = str(MODELS)
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    said = json.loads(run.stdout.strip().splitlines()[-1])
    assert said["torch"] is False
    libs = [Path(p) for p in said["maps"] if Path(p).name.startswith(CARRIED)]
    names = {p.name for p in libs}
    assert {"libtorch_cpu.so", "libc10.so", "libsoxr.so.0"} <= names, names
    outside = [str(p) for p in libs if copy.resolve() not in p.resolve().parents]
    assert not outside, f"loaded from outside the copied bundle: {outside}"
    torch_dir = Path(sys.prefix)
    assert not [p for p in said["maps"] if Path(p).name.startswith(CARRIED) and str(torch_dir) in p]
    y = np.load(tmp_path / "y.npy")
    ref = stemforge.StemSeparator(MODELS / "fixture-stream.ts", stem="vocals")(x, rate)
    assert y.shape == ref.shape and np.abs(ref).max() > 1e-3
    assert db(y - ref, ref) < -80  # float rounding only, as in test_vst3
