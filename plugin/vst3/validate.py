"""`python build.py validate`: run the industry's two VST3 validators on the bundle.

Steinberg's `validator` (VST SDK 3.7.14) and Tracktion's `pluginval` (1.0.3, JUCE 8.0.3) are
not packaged in Debian; this script builds both from their public git repositories into a cache
folder (once; later runs reuse the binaries) and runs them on build/vst3/stemforge.vst3:

    validator              bundle      Steinberg's normal test set
    validator -e           bundle      its extensive set
    pluginval --strictness-level 10 --skip-gui-tests                      its fixed test order
    pluginval --strictness-level 10 (under xvfb-run)                       with the editor tests
    pluginval --strictness-level 10 --skip-gui-tests --repeat 10 --randomise   order-dependent bugs

The sources are bare git repositories in a mirror folder (`--sources DIR` or the environment
variable STEMFORGE_VALIDATOR_SOURCES), one per repository as DIR/OWNER+NAME/repo, e.g.
DIR/steinbergmedia+vst3sdk/repo. When one is missing the script names the repository to clone
(`git clone --mirror https://github.com/OWNER/NAME DIR/OWNER+NAME/repo`). Nothing is downloaded here.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUNDLE = ROOT / "build" / "vst3" / "stemforge.vst3"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stemforge" / "plugin-validators"

# Tag "VST SDK 3.7.14" of the SDK and the submodule commits it pins.
VST3SDK = ("steinbergmedia/vst3sdk", "43b4e366ff84afc9b4247776acbf5e234683b77f")
VST3_PARTS = (
    ("base", "steinbergmedia/vst3_base", "823de87a7aa5752c1eca9c33e2015f160fb8642e"),
    ("pluginterfaces", "steinbergmedia/vst3_pluginterfaces", "dd77488d3dc329c484b5dfb47af9383356e4c0cc"),
    ("public.sdk", "steinbergmedia/vst3_public_sdk", "b8931a07a48c090e6c833bb36d65e4e878b8cc5f"),
    ("cmake", "steinbergmedia/vst3_cmake", "0d646538203721ab9d036f9ef1d650de19302d84"),
)
# pluginval 1.0.3 and the JUCE commit (8.0.3) its submodule pins.
PLUGINVAL = ("Tracktion/pluginval", "6b028fd2e77759eb5c6acdefea7b0e3c34429192")
JUCE8 = ("juce-framework/JUCE", "5179f4e720d8406ebd1b5401c86aea8da6cc83c9")
PLUGINVAL_APT = [
    "ninja-build",
    "ladspa-sdk",
    "libasound2-dev",
    "libfreetype-dev",
    "libfontconfig1-dev",
    "libx11-dev",
    "libxrandr-dev",
    "libxinerama-dev",
    "libxcursor-dev",
    "libxext-dev",
    "libxcomposite-dev",
    "libgtk-3-dev",
    "libcurl4-gnutls-dev",
    "xvfb",
    "xauth",
]


class Missing(SystemExit):
    """Something to install or fetch first; the message says what."""


def git_dir(sources: Optional[Path], repo: str) -> Path:
    return Path(sources or ".") / repo.replace("/", "+") / "repo"


def need_sources(sources: Optional[Path], pins: List[Tuple[str, str]]) -> None:
    """SystemExit naming every repository (and commit) to fetch, if any is missing."""
    missing = []
    for repo, commit in pins:
        path = git_dir(sources, repo)
        found = (
            subprocess.run(["git", "--git-dir", str(path), "cat-file", "-t", commit], capture_output=True, text=True)
            if sources and path.is_dir()
            else None
        )
        if found is None or found.stdout.strip() != "commit":
            missing.append((repo, commit))
    if not missing:
        return
    where = "DIR" if sources is None else str(sources)
    raise Missing(
        "build.py validate: the validators build from these repositories"
        + (" (no --sources DIR or STEMFORGE_VALIDATOR_SOURCES given)" if sources is None else "")
        + "; fetch them with\n"
        + "\n".join(
            f"  git clone --mirror https://github.com/{repo} {where}/{repo.replace('/', '+')}/repo"
            f"   # needs commit {commit}"
            for repo, commit in missing
        )
        + f"\nthen run: python build.py validate --sources {where}"
    )


def export(sources: Optional[Path], repo: str, commit: str, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    archive = subprocess.Popen(
        ["git", "--git-dir", str(git_dir(sources, repo)), "archive", commit], stdout=subprocess.PIPE
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"build.py validate: git archive of {repo} {commit} failed")


def need_tools(tools: List[str], apt: List[str]) -> None:
    """Every tool on PATH and, where dpkg can tell, every package in `apt` installed: a missing
    -dev package otherwise surfaces minutes into the build as a compiler error."""
    missing = [t for t in tools if shutil.which(t) is None]
    if shutil.which("dpkg-query"):
        listed = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *apt], capture_output=True, text=True
        ).stdout.split("\n")
        installed = {line.split()[0] for line in listed if line.endswith(" installed")}
        missing += [p for p in apt if p not in installed and p not in missing]
    if missing:
        prefix = "" if os.geteuid() == 0 else "sudo "
        raise Missing(
            f"build.py validate: missing {', '.join(missing)}; install with\n  {prefix}apt-get "
            f"install -y --no-install-recommends {' '.join(apt)}"
        )


def nice(cmd: List[str]) -> List[str]:
    return ["nice", "-n", "5", *cmd]


def build_steinberg(sources: Optional[Path], cache: Path, jobs: int) -> Path:
    binary = cache / "vst3build" / "bin" / "Release" / "validator"
    if binary.is_file():
        return binary
    need_sources(sources, [VST3SDK] + [(repo, commit) for _, repo, commit in VST3_PARTS])
    need_tools(["cmake", "ninja", "g++"], ["cmake", "ninja-build", "g++"])
    sdk = cache / "vst3sdk"
    print("build.py validate: building Steinberg's validator (about 1.5 minutes on 2 cores)", flush=True)
    export(sources, *VST3SDK, sdk)
    for folder, repo, commit in VST3_PARTS:
        export(sources, repo, commit, sdk / folder)
    # Only the validator of the hosting examples: the editor host needs gtkmm.
    (sdk / "public.sdk" / "samples" / "vst-hosting" / "CMakeLists.txt").write_text("add_subdirectory(validator)\n")
    build_dir = cache / "vst3build"
    build_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        nice(
            [
                "cmake",
                "-G",
                "Ninja",
                "-DCMAKE_BUILD_TYPE=Release",
                "-DSMTG_ENABLE_VST3_PLUGIN_EXAMPLES=OFF",
                "-DSMTG_ENABLE_VSTGUI_SUPPORT=OFF",
                "-DSMTG_ENABLE_VST3_HOSTING_EXAMPLES=ON",
                "-DSMTG_RUN_VST_VALIDATOR=OFF",
                "-DSMTG_CREATE_PLUGIN_LINK=OFF",
                str(sdk),
            ]
        ),
        cwd=build_dir,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(nice(["ninja", f"-j{jobs}", "validator"]), cwd=build_dir, check=True)
    return binary


def build_pluginval(sources: Optional[Path], cache: Path, jobs: int) -> Path:
    binary = cache / "pvbuild" / "pluginval_artefacts" / "Release" / "pluginval"
    if binary.is_file():
        return binary
    need_sources(sources, [PLUGINVAL, JUCE8])
    need_tools(["cmake", "ninja", "g++"], PLUGINVAL_APT)
    src = cache / "pluginval"
    print("build.py validate: building pluginval (about 25 minutes on 2 cores)", flush=True)
    export(sources, *PLUGINVAL, src)
    export(sources, *JUCE8, src / "modules" / "juce")
    build_dir = cache / "pvbuild"
    build_dir.mkdir(parents=True, exist_ok=True)
    configured = subprocess.run(
        nice(["cmake", "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", str(src)]),
        cwd=build_dir,
        capture_output=True,
        text=True,
    )
    if configured.returncode != 0:
        raise Missing(
            "build.py validate: configuring pluginval failed (usually a missing -dev package; "
            f"these are needed: {' '.join(PLUGINVAL_APT)}):\n" + configured.stderr[-3000:]
        )
    subprocess.run(nice(["ninja", f"-j{jobs}", "pluginval"]), cwd=build_dir, check=True)
    return binary


def run(name: str, cmd: List[str], log_dir: Path) -> Tuple[bool, str, str]:
    """Run one validation; (passed, summary line, log path)."""
    print(f"build.py validate: {name}: {' '.join(cmd)}", flush=True)
    done = subprocess.run(nice(cmd), capture_output=True, text=True, errors="replace")
    out = done.stdout + done.stderr
    log = log_dir / (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".log")
    log.write_text(out)
    passed = done.returncode == 0
    m = re.search(r"Result: (\d+) tests passed, (\d+) tests failed", out)
    if m:  # Steinberg's validator
        passed = passed and m.group(2) == "0"
        summary = m.group(0)
    else:  # pluginval: one "Starting tests in:" per test, "!!! Test N failed" per failure
        tests = len(re.findall(r"^Starting tests? in", out, re.M)) or len(re.findall(r"^Starting test", out, re.M))
        failures = re.findall(r"^!!! (.*)$", out, re.M)
        passed = passed and not failures and "FAILED" not in out
        summary = (
            f"{'SUCCESS' if passed else 'FAILED'}: exit code {done.returncode}, "
            f"{tests} test groups run, {len(failures)} failure lines"
        )
        if failures:
            summary += "; first: " + failures[0][:300]
    return passed, summary, str(log)


def validate(bundle: Path, sources: Optional[Path], cache: Path, jobs: int, which: List[str], repeat: int) -> bool:
    if not (bundle / "Contents" / "x86_64-linux").is_dir():
        raise SystemExit(f"build.py validate: no bundle at {bundle}; build it with `python build.py plugin`")
    cache.mkdir(parents=True, exist_ok=True)
    log_dir = cache / "logs"
    log_dir.mkdir(exist_ok=True)
    results: Dict[str, Tuple[bool, str, str]] = {}
    if "steinberg" in which:
        v = str(build_steinberg(sources, cache, jobs))
        results["Steinberg validator"] = run("steinberg", [v, str(bundle)], log_dir)
        results["Steinberg validator -e"] = run("steinberg-extensive", [v, "-e", str(bundle)], log_dir)
    if "pluginval" in which:
        p = str(build_pluginval(sources, cache, jobs))
        base = [p, "--strictness-level", "10", "--timeout-ms", "600000"]
        results["pluginval 10"] = run("pluginval", [*base, "--skip-gui-tests", "--validate", str(bundle)], log_dir)
        need_tools(["xvfb-run"], ["xvfb", "xauth"])
        results["pluginval 10, editor (xvfb)"] = run(
            "pluginval-editor",
            ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", *base, "--validate", str(bundle)],
            log_dir,
        )
        results[f"pluginval 10 --repeat {repeat} --randomise"] = run(
            "pluginval-randomise",
            [*base, "--skip-gui-tests", "--repeat", str(repeat), "--randomise", "--validate", str(bundle)],
            log_dir,
        )
    print("\nbuild.py validate: summary")
    for name, (passed, summary, log) in results.items():
        print(f"  {'PASS' if passed else 'FAIL'}  {name}: {summary}\n        log: {log}")
    return all(passed for passed, _, _ in results.values())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="build.py validate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sources",
        type=Path,
        default=os.environ.get("STEMFORGE_VALIDATOR_SOURCES"),
        help="folder of the validators' git mirrors (or STEMFORGE_VALIDATOR_SOURCES)",
    )
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"build folder (default {CACHE})")
    parser.add_argument("--bundle", type=Path, default=BUNDLE, help=f"the VST3 bundle (default {BUNDLE})")
    parser.add_argument("--only", choices=("steinberg", "pluginval"), help="run one validator")
    parser.add_argument("--build-only", action="store_true", help="build the validators, run nothing")
    parser.add_argument("--repeat", type=int, default=10, help="pluginval --repeat for the randomised run")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    args = parser.parse_args(argv)
    which = [args.only] if args.only else ["steinberg", "pluginval"]
    sources = Path(args.sources) if args.sources else None
    if args.build_only:
        if "steinberg" in which:
            print(build_steinberg(sources, args.cache, args.jobs))
        if "pluginval" in which:
            print(build_pluginval(sources, args.cache, args.jobs))
        return
    ok = validate(args.bundle.resolve(), sources, args.cache, args.jobs, which, args.repeat)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
