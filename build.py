#!/usr/bin/env python3
"""Build the model files in models/ from source.

    python build.py            # every model file, deterministically
    python build.py --list     # what would be built
    python build.py --out DIR  # build elsewhere (the tests compare with models/)
    python build.py data [--train N] [--test N] [--jobs J]   # render the corpus (models/corpus.py)
    python build.py real [SOURCE...] [--skip-missing]   # decode the real recordings (models/real.py)
    python build.py train --preset live|studio [--minutes M]  # train (models/train.py), resumable
    python build.py demo       # the README's demo song, from held-out assets (models/demo/)
    python build.py tune --preset live|studio  # choose the mask sharpness on training clips
    python build.py calibrate --preset live|studio  # then per-stem exponents on the real-band validation songs
    python build.py import-model demucs|openunmix CHECKPOINT -o models/NAME.ts  # a peer's model
    python build.py plugin [--install]  # the VST3 at build/vst3/stemforge.vst3 (plugin/vst3/)
    python build.py dist  # build/dist/stemforge-vst3-*.tar.gz: the bundle and its licences
    python build.py validate --sources DIR  # Steinberg's validator and pluginval on the bundle
    python build.py lint [--fix]  # ruff (pyproject.toml) and clang-format (.clang-format) over the tree

The fixtures are MaskNet models (models/masknet.py) with fixed random weights:
UNTRAINED test fixtures that exercise the model contract and the engine. They
are not separators and are never loaded by default.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict

ROOT = Path(__file__).resolve().parent
MODELS = ROOT / "models"
# This checkout's stemforge, installed or not: the model files are built by its own save_model.
sys.path.insert(0, str(ROOT / "plugin"))

from models.fixtures import FIXTURES, STEMS, build_fixture  # noqa: E402
from stemforge.core.contract import ModelInfo  # noqa: E402
from stemforge.io.model_files import save_model  # noqa: E402

TRAINING_DATA = (
    "real recordings (MIR-1K singers, Everything is Free stems, the PJS corpus, UTAU voice banks, "
    "Debian game music and Frets on Fire songs; models/real.py) and stemforge's rendered corpus "
    "(models/corpus.py: SoundFont instruments, recorded drum kits, English speech sung with WORLD); "
    "every source, its licence and its minutes in models/README.md. Held out from training: "
    "3 MIR-1K singers, one song, one voice bank."
)
WEIGHTS_LICENSE = (
    "MIT (code and weights), with the conditions of their training data: MIR-1K is for research "
    "use, several sources are CC BY-SA or GPL; each source and its licence in models/README.md"
)


def build_preset(name: str) -> tuple:
    """A trained preset: its MaskNet with the weights in models/weights/<name>.pt, as it ships."""
    import json

    from models.presets import DESCRIPTIONS, PASSES, shipped_network

    training = json.loads((MODELS / "weights" / f"{name}.json").read_text())
    net = shipped_network(name, training, MODELS / "weights" / f"{name}.pt")
    masknet = net.net if PASSES[name] == 2 else net
    info = ModelInfo(
        name=name,
        version="2",
        kind="streaming",
        sample_rate=44100,
        stems=STEMS,
        channels=2,
        lookahead=net.lookahead_samples,
        context=net.context_samples,
        hop=net.hop,
        window=net.hop,
        sums_to_mix=True,
        untrained=False,
        description=(
            f"{DESCRIPTIONS[name]} MaskNet {masknet.n_fft}/{net.hop}"
            f"{' in two passes' if masknet is not net else ''}, trained "
            f"{training['train_minutes']} min ({training['steps']} steps) on 2 CPU cores, "
            f"mask sharpness {training.get('mask_sharpness', 1.0)}."
        ),
        training_data=TRAINING_DATA,
        license=WEIGHTS_LICENSE,
    )
    return net, info


BUILDERS: Dict[str, Callable[[], tuple]] = {f.name: (lambda f=f: build_fixture(f)) for f in FIXTURES}
for _preset in ("live", "studio"):
    if (MODELS / "weights" / f"{_preset}.pt").exists():
        BUILDERS[_preset] = lambda p=_preset: build_preset(p)


def build_one(name: str, out: Path = MODELS) -> None:
    module, info = BUILDERS[name]()
    path = out / f"{name}.ts"
    save_model(module, info, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    print(f"built {path}  {path.stat().st_size / 1e6:.2f} MB  sha256:{digest}")


def build(names=None, out: Path = MODELS) -> None:
    """Each file in a fresh interpreter: TorchScript names classes by what the process
    scripted before, so only then do the bytes depend on the source alone."""
    out.mkdir(parents=True, exist_ok=True)
    for name in BUILDERS:
        if not names or name in names:
            # Fixed hash seed: TorchScript writes class constants in set order.
            env = dict(os.environ, PYTHONHASHSEED="0")
            subprocess.run([sys.executable, __file__, "--one", name, "--out", str(out)], check=True, env=env)


def data_command(argv) -> None:
    parser = argparse.ArgumentParser(
        prog="build.py data", description="Render the training corpus (resumable: existing clips are kept)."
    )
    parser.add_argument("--train", type=int, default=3000, help="training clips (8 s each)")
    parser.add_argument("--test", type=int, default=120, help="held-out clips")
    parser.add_argument("--jobs", type=int, default=2, help="rendering processes")
    args = parser.parse_args(argv)
    from models import corpus

    corpus.render_corpus(args.train, args.test, args.jobs)


def lint(fix: bool = False, root: Path = ROOT) -> int:
    """ruff check, ruff format and clang-format over the tracked files; with `fix`, apply them.
    Returns the number of checks that failed (0: the tree is clean)."""

    def tracked(*patterns: str, folders=(".",)) -> list:
        try:
            return subprocess.run(
                ["git", "ls-files", "--", *patterns], cwd=root, check=True, capture_output=True, text=True
            ).stdout.split()
        except (OSError, subprocess.CalledProcessError):  # no git, or not a checkout: the same folders
            return sorted(str(p.relative_to(root)) for f in folders for pat in patterns for p in (root / f).rglob(pat))

    python = tracked("*.py")
    cpp = tracked("*.cpp", "*.h", folders=("plugin/vst3/Source", "plugin/vst3/tests"))
    ruff = [sys.executable, "-m", "ruff"]
    checks = [
        (
            "ruff check",
            ruff + ["check", *(["--fix"] if fix else []), *python],
            "ruff check --fix . (what it cannot fix, by hand)",
        ),
        ("ruff format", ruff + ["format", *([] if fix else ["--check"]), *python], "ruff format ."),
        (
            "clang-format",
            ["clang-format", *(["-i"] if fix else ["--dry-run", "--Werror"]), *cpp],
            "clang-format -i FILES",
        ),
    ]
    failed = 0
    for name, command, remedy in checks:
        try:
            done = subprocess.run(command, cwd=root)
        except FileNotFoundError:
            sys.exit(f"{command[0]} is not installed: apt-get install clang-format")
        if done.returncode:
            failed += 1
            print(f"lint: {name} failed. To fix: python build.py lint --fix, or {remedy}", file=sys.stderr)
    return failed


def main() -> None:
    if sys.argv[1:2] == ["lint"]:  # the linters and formatters, as .ci/run runs them
        parser = argparse.ArgumentParser(prog="build.py lint", description=lint.__doc__)
        parser.add_argument("--fix", action="store_true", help="reformat and fix in place")
        return sys.exit(1 if lint(parser.parse_args(sys.argv[2:]).fix) else 0)
    if sys.argv[1:2] == ["data"]:
        return data_command(sys.argv[2:])
    if sys.argv[1:2] == ["real"]:
        from models import real

        return real.main(sys.argv[2:])
    if sys.argv[1:2] == ["demo"]:
        from models import corpus

        return corpus.render_demo(MODELS / "demo")
    if sys.argv[1:2] == ["train"]:
        from models import train

        return train.main(sys.argv[2:])
    if sys.argv[1:2] == ["tune"]:
        from models import train

        return train.tune_main(sys.argv[2:])
    if sys.argv[1:2] == ["calibrate"]:
        from models import calibrate

        return calibrate.main(sys.argv[2:])
    if sys.argv[1:2] == ["plugin"]:  # the VST3 (plugin/vst3/build_plugin.py)
        from plugin.vst3 import build_plugin

        return build_plugin.main(sys.argv[2:])
    if sys.argv[1:2] == ["dist"]:  # the bundle and its licences, one archive for a release
        from plugin.vst3 import build_plugin

        build_plugin.dist()
        return None
    if sys.argv[1:2] == ["validate"]:  # the validators (plugin/vst3/validate.py)
        from plugin.vst3 import validate

        return validate.main(sys.argv[2:])
    if sys.argv[1:2] == ["import-model"]:
        # The same command as `stemforge import-model`, for those who build models/ here.
        from stemforge.cli import main as stemforge_main

        return sys.exit(stemforge_main(sys.argv[1:]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="build only these model files")
    parser.add_argument("--list", action="store_true", help="list the model files and exit")
    parser.add_argument("--out", type=Path, default=MODELS, help="folder to write to (default: models/)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        build_one(args.one, args.out)
        return
    if args.list:
        print("\n".join(BUILDERS))
        return
    unknown = set(args.names) - set(BUILDERS)
    if unknown:
        parser.error(f"unknown model(s): {', '.join(sorted(unknown))}; known: {', '.join(BUILDERS)}")
    build(args.names, args.out)


if __name__ == "__main__":
    main()
