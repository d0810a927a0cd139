"""`python build.py plugin [--install]`: build the stemforge VST3 against the installed torch.

Checks the prerequisites first and says exactly what to install when one is missing; builds
with CMake into build/vst3/cmake and puts the bundle at build/vst3/stemforge.vst3 (what
`stemforge.plugin_path()` returns), with the shipped presets (models/studio.ts, live.ts)
inside it; `--install` copies the bundle to ~/.vst3, where Linux hosts look for VST3s.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import List, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUILD = ROOT / "build" / "vst3"
BUNDLE = BUILD / "stemforge.vst3"
MIXER = "stemforge_mixer" + sysconfig.get_config_var("EXT_SUFFIX")
APT = ["juce-modules-source", "libsoxr-dev", "pkg-config", "cmake", "g++"]


def apt_line(packages) -> str:
    prefix = "" if os.geteuid() == 0 else "sudo "
    return f"{prefix}apt-get update && {prefix}apt-get install -y --no-install-recommends " + " ".join(packages)


def missing_prerequisites() -> list:
    """[(what, how to get it)] for everything the build needs and this machine lacks."""
    missing, apt = [], []
    for tool, package in (("cmake", "cmake"), ("g++", "g++"), ("pkg-config", "pkg-config")):
        if shutil.which(tool) is None:
            apt.append(package)
            missing.append(tool)
    if not glob.glob("/usr/lib/*/cmake/JUCE-*/JUCEConfig.cmake") + glob.glob("/usr/lib/cmake/JUCE-*/JUCEConfig.cmake"):
        apt.append("juce-modules-source")
        missing.append("JUCE (its CMake config)")
    if not (Path("/usr/include/soxr.h").is_file() or glob.glob("/usr/lib/*/pkgconfig/soxr.pc")):
        apt.append("libsoxr-dev")
        missing.append("libsoxr (headers)")
    other = []
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        # StemSeparator's per-block call is an extension module of this Python (PythonMixer.cpp)
        missing.append(f"the headers of this Python ({sys.base_prefix})")
        if sys.base_prefix == "/usr":  # Debian's own Python
            apt.append(f"python{sys.version_info.major}.{sys.version_info.minor}-dev")
        else:
            other.append(f"a build of Python {sys.version.split()[0]} with its headers (Python.h)")
    how = ([apt_line(apt)] if apt else []) + other
    try:
        import torch.utils  # noqa: F401
    except ImportError:
        missing.append("torch in this Python")
        how.append(f"{sys.executable} -m pip install torch==2.13.0")
    return [(", ".join(missing), how)] if missing else []


def torch_cmake_dir() -> Path:
    import torch.utils

    return Path(torch.utils.cmake_prefix_path) / "Torch"


def build(jobs: int = 2, build_type: str = "Release") -> Path:
    problems = missing_prerequisites()
    if problems:
        what, how = problems[0]
        raise SystemExit(f"build.py plugin: missing {what}. Install with:\n  " + "\n  ".join(how))
    cmake_dir = BUILD / "cmake"
    cmake_dir.mkdir(parents=True, exist_ok=True)
    configure = [
        "cmake",
        "-S",
        str(HERE),
        "-B",
        str(cmake_dir),
        f"-DCMAKE_BUILD_TYPE={build_type}",
        f"-DTorch_DIR={torch_cmake_dir()}",
        f"-DSTEMFORGE_MODELS_DIR={ROOT / 'models'}",
        f"-DPython3_EXECUTABLE={sys.executable}",
        "-Wno-dev",
    ]
    print("build.py plugin: configuring (cmake)", flush=True)
    subprocess.run(configure, check=True, stdout=subprocess.DEVNULL)
    print(f"build.py plugin: compiling with {jobs} jobs (a first build takes 3-4 minutes on 2 cores)", flush=True)
    subprocess.run(["cmake", "--build", str(cmake_dir), "-j", str(jobs)], check=True)
    built = cmake_dir / "stemforge_artefacts" / build_type / "VST3" / "stemforge.vst3"
    if not (built / "Contents" / "x86_64-linux" / "libstemforge_engine.so").is_file():
        raise SystemExit(f"build.py plugin: the build did not produce {built} with its engine")
    # the engine beside the plugin binary: CMake copies it only when the plugin itself relinks
    shutil.copy2(cmake_dir / "libstemforge_engine.so", built / "Contents" / "x86_64-linux")
    # and Python's per-block call into it, for this Python (core/native.py loads it from there)
    shutil.copy2(cmake_dir / MIXER, built / "Contents" / "x86_64-linux")
    shutil.copytree(built, BUNDLE, dirs_exist_ok=True)
    carry_libraries(BUNDLE, torch_lib_dir())
    sync_presets(BUNDLE)
    print(f"build.py plugin: built {BUNDLE}")
    return BUNDLE


def torch_lib_dir() -> Path:
    import torch

    return Path(torch.__file__).parent / "lib"


# What the engine needs that a machine without this Python environment lacks: libtorch's
# libraries (with the OpenMP runtime torch ships) and libsoxr. They go into the bundle beside
# the engine, whose RUNPATH is $ORIGIN (CMakeLists.txt), so that copying the bundle is the
# whole installation. The C and C++ runtimes are the system's, as for any Linux plugin.
CARRIED = ("libtorch", "libc10", "libsoxr", "libgomp")


def carried_libraries(engine: Path, torch_lib: Path) -> List[Tuple[str, Path]]:
    """[(soname, file)] of the libraries the engine loads that the bundle carries, resolved as
    the dynamic linker resolves them here, with torch's lib folder first."""
    env = dict(os.environ, LD_LIBRARY_PATH=str(torch_lib))
    listed = subprocess.run(["ldd", str(engine)], env=env, capture_output=True, text=True, check=True).stdout
    found = []
    for line in listed.splitlines():
        name, arrow, rest = line.strip().partition(" => ")
        if not arrow or not name.startswith(CARRIED):
            continue
        where = rest.split(" (")[0].strip()
        if where == "not found":
            raise SystemExit(
                f"build.py plugin: the engine needs {name}, which is neither in {torch_lib} nor "
                "installed; reinstall torch or libsoxr0"
            )
        found.append((name, Path(where)))
    return found


def carry_libraries(bundle: Path, torch_lib: Path) -> None:
    binaries = bundle / "Contents" / "x86_64-linux"
    for name, src in carried_libraries(binaries / "libstemforge_engine.so", torch_lib):
        dest = binaries / name  # under its soname, the name the engine and torch ask for
        real = src.resolve()
        if (
            dest.is_file()
            and dest.stat().st_size == real.stat().st_size
            and dest.stat().st_mtime >= real.stat().st_mtime
        ):
            continue  # libtorch_cpu is 400 MB: copied once
        shutil.copy2(real, dest)


def sync_presets(bundle: Path) -> None:
    """The bundle carries the presets of this checkout (refreshed on every build, so that a
    retrained models/studio.ts reaches the plugin without recompiling)."""
    dest = bundle / "Contents" / "Resources" / "models"
    dest.mkdir(parents=True, exist_ok=True)
    for preset in ("studio", "live"):
        src = ROOT / "models" / f"{preset}.ts"
        if src.is_file() and (not (dest / src.name).is_file() or (dest / src.name).read_bytes() != src.read_bytes()):
            shutil.copy2(src, dest / src.name)


def install(bundle: Path, where: Path = Path.home() / ".vst3") -> Path:  # noqa: B008 (the builder's home)
    where.mkdir(parents=True, exist_ok=True)
    target = where / bundle.name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(bundle, target)
    print(f"build.py plugin: installed {target}")
    return target


def dist(bundle: Path = BUNDLE, out: Path = ROOT / "build" / "dist") -> Path:
    """`python build.py dist`: the built bundle and the licences of what it carries, in one
    archive for a release (stemforge-vst3-VERSION-linux-x86_64.tar.gz)."""
    import io
    import json
    import re
    import tarfile
    import zipfile

    if not (bundle / "Contents" / "x86_64-linux" / "libtorch_cpu.so").is_file():
        raise SystemExit(f"build.py dist: no self-contained bundle at {bundle}; build it with `python build.py plugin`")
    version = re.search(r"project\(stemforge_vst3 VERSION ([0-9.]+)", (HERE / "CMakeLists.txt").read_text()).group(1)
    top = f"stemforge-vst3-{version}-linux-x86_64"
    torch_licence = next(Path(torch_lib_dir().parent.parent).glob("torch-*.dist-info/licenses/LICENSE"), None) or next(
        Path(torch_lib_dir().parent.parent).glob("torch-*.dist-info/LICENSE"), None
    )
    soxr_licence = Path("/usr/share/doc/libsoxr0/copyright")
    presets = []
    for ts in sorted((bundle / "Contents" / "Resources" / "models").glob("*.ts")):
        with zipfile.ZipFile(ts) as z:
            meta = json.loads(z.read(next(n for n in z.namelist() if n.endswith("/extra/stemforge.json"))))
        presets.append(
            f"{ts.name}: {meta['name']} {meta['version']}, licence {meta['license']}; "
            f"trained on {meta['training_data']}"
        )
    licences = {
        "COPYING": (HERE / "COPYING").read_text(),  # the plugin: GPLv3 or later
        "LICENSE.md": (HERE / "LICENSE.md").read_text(),
        "libtorch-LICENSE": torch_licence.read_text() if torch_licence else "BSD-3-Clause (see pytorch.org)",
        "libsoxr-copyright": soxr_licence.read_text() if soxr_licence.is_file() else "LGPL-2.1-or-later",
        "PRESETS": "The shipped models (Contents/Resources/models):\n" + "\n".join(presets) + "\n",
        "INSTALL": (
            "Copy stemforge.vst3 to ~/.vst3 (or /usr/lib/vst3 for all users) and rescan plugins in "
            "your host. Nothing else is needed: the bundle carries libtorch and libsoxr.\n"
        ),
    }
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"{top}.tar.gz"
    partial = archive.with_name("." + archive.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(bundle, arcname=f"{top}/stemforge.vst3")
        for name, text in licences.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"{top}/licences/{name}" if name != "INSTALL" else f"{top}/INSTALL")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    partial.replace(archive)
    print(f"build.py dist: {archive} ({archive.stat().st_size / 1e6:.0f} MB)")
    return archive


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="build.py plugin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--install", action="store_true", help="copy the bundle to ~/.vst3")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    parser.add_argument("--debug", action="store_true", help="a Debug build")
    parser.add_argument("--check", action="store_true", help="only check the prerequisites")
    args = parser.parse_args(argv)
    if args.check:
        problems = missing_prerequisites()
        for what, how in problems:
            print(f"missing {what}; install with:\n  " + "\n  ".join(how))
        raise SystemExit(1 if problems else 0)
    bundle = build(args.jobs, "Debug" if args.debug else "Release")
    if args.install:
        install(bundle)


if __name__ == "__main__":
    main()
