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
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUILD = ROOT / "build" / "vst3"
BUNDLE = BUILD / "stemforge.vst3"
APT = ["juce-modules-source", "libsoxr-dev", "pkg-config", "cmake", "g++"]


def apt_line(packages) -> str:
    prefix = "" if os.geteuid() == 0 else "sudo "
    return (f"{prefix}apt-get update && {prefix}apt-get install -y --no-install-recommends "
            + " ".join(packages))


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
    how = [apt_line(apt)] if apt else []
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
    configure = ["cmake", "-S", str(HERE), "-B", str(cmake_dir), f"-DCMAKE_BUILD_TYPE={build_type}",
                 f"-DTorch_DIR={torch_cmake_dir()}", f"-DSTEMFORGE_MODELS_DIR={ROOT / 'models'}",
                 "-Wno-dev"]
    print("build.py plugin: configuring (cmake)", flush=True)
    subprocess.run(configure, check=True, stdout=subprocess.DEVNULL)
    print(f"build.py plugin: compiling with {jobs} jobs (a first build takes 3-4 minutes on 2 cores)",
          flush=True)
    subprocess.run(["cmake", "--build", str(cmake_dir), "-j", str(jobs)], check=True)
    built = cmake_dir / "stemforge_artefacts" / build_type / "VST3" / "stemforge.vst3"
    if not (built / "Contents" / "x86_64-linux" / "libstemforge_engine.so").is_file():
        raise SystemExit(f"build.py plugin: the build did not produce {built} with its engine")
    # the engine beside the plugin binary: CMake copies it only when the plugin itself relinks
    shutil.copy2(cmake_dir / "libstemforge_engine.so", built / "Contents" / "x86_64-linux")
    shutil.copytree(built, BUNDLE, dirs_exist_ok=True)
    sync_presets(BUNDLE)
    print(f"build.py plugin: built {BUNDLE}")
    return BUNDLE


def sync_presets(bundle: Path) -> None:
    """The bundle carries the presets of this checkout (refreshed on every build, so that a
    retrained models/studio.ts reaches the plugin without recompiling)."""
    dest = bundle / "Contents" / "Resources" / "models"
    dest.mkdir(parents=True, exist_ok=True)
    for preset in ("studio", "live"):
        src = ROOT / "models" / f"{preset}.ts"
        if src.is_file() and (not (dest / src.name).is_file()
                              or (dest / src.name).read_bytes() != src.read_bytes()):
            shutil.copy2(src, dest / src.name)


def install(bundle: Path, where: Path = Path.home() / ".vst3") -> Path:
    where.mkdir(parents=True, exist_ok=True)
    target = where / bundle.name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(bundle, target)
    print(f"build.py plugin: installed {target}")
    return target


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="build.py plugin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
