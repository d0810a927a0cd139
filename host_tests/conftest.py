"""Shared fixtures: the UNTRAINED fixture models built by build.py, the shipped presets,
the CLI run in this process, and the small Demucs and Open-Unmix models the import tests
build; the helpers the tests share are in host_tests/helpers.py.

The fixture models have random weights: their stems are not a separation,
but they run the whole contract (STFT, masks that sum to one, streaming
state, fixed windows, mono models, another sample rate), which is what these
tests are about.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from host_tests.helpers import FIXTURES, MODELS, STEMS, loaded_model, run_cli

# A non-interactive shell starts a background job (`pytest &`, `nohup pytest &` in a script)
# with SIGINT ignored, and every process the tests start would inherit that: Python then
# installs no Ctrl-C handler and Ray's workers ignore it, so the tests that press Ctrl-C would
# see nothing happen. A handler (unlike SIG_IGN) is reset to the default in a started process.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def models():
    return {name: loaded_model(str(MODELS / f"{name}.ts")) for name in FIXTURES}


@pytest.fixture(scope="session")
def stream_model(models):
    return models["fixture-stream"]


@pytest.fixture(scope="session")
def presets():
    """The shipped presets, loaded once for the whole run."""
    return {name: loaded_model(str(MODELS / f"{name}.ts")) for name in ("studio", "live")}


@pytest.fixture(scope="session")
def live(presets):
    return presets["live"]


def engine_tool(tmp_path_factory, name: str) -> Path:
    """plugin/vst3/tests/NAME.cpp, a program that drives the plugin's engine library, built."""
    import shutil

    if shutil.which("g++") is None:
        pytest.skip(f"g++ is needed to build {name}")
    exe = tmp_path_factory.mktemp(name) / name
    src = MODELS.parent / "plugin" / "vst3" / "tests" / f"{name}.cpp"
    subprocess.run(["g++", "-O1", "-std=c++17", str(src), "-ldl", "-lpthread", "-o", str(exe)], check=True)
    return exe


@pytest.fixture(scope="session")
def rt_check(tmp_path_factory) -> Path:
    """plugin/vst3/tests/rt_check.cpp, built once for the run: it drives the plugin's engine
    library block by block and counts every heap allocation (it replaces malloc)."""
    return engine_tool(tmp_path_factory, "rt_check")


@pytest.fixture(scope="session")
def refresh_race(tmp_path_factory) -> Path:
    """plugin/vst3/tests/refresh_race.cpp, built once for the run: resets while another thread
    prepares them."""
    return engine_tool(tmp_path_factory, "refresh_race")


@pytest.fixture(scope="session")
def rt_host() -> Path:
    """plugin/vst3/tests/rt_host.cpp, a JUCE host that plays the plugin in real-time mode,
    built once for the run in the plugin's CMake tree, unoptimised (about 1.5 minutes on 2 cores
    the first time; bench/plugin.py builds its own, optimised)."""
    cmake_dir = MODELS.parent / "build" / "vst3" / "cmake"
    if not (cmake_dir / "CMakeCache.txt").is_file():
        pytest.skip("the plugin's CMake tree is not here (build with python build.py plugin)")
    import fcntl

    # pytest -n: the modules that use it may run in two workers at once, and two builds in
    # one CMake tree would write the same files; the second waits and finds it built.
    with open(cmake_dir / "rt_host.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(
            ["cmake", "--build", str(cmake_dir), "--target", "stemforge_rt_host", "-j", "2"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return cmake_dir / "stemforge_rt_host_artefacts" / "Release" / "stemforge_rt_host"


@pytest.fixture
def cli_here(capfd, monkeypatch):
    """`stemforge ARGS...` run by main() in this process, as `python -m stemforge` runs it:
    the same exit status, stdout and stderr, without a new interpreter's start-up (importing
    torch: about 3 s of CPU each time). For the options, plans and inputs refused before any
    work; what does work runs as a subprocess (run_cli). An exception main() lets escape,
    which a user would see as a traceback, fails the test that called it."""
    from stemforge.cli import main

    def run(*args, cwd=None) -> subprocess.CompletedProcess:
        argv = [str(a) for a in args]
        with monkeypatch.context() as m:
            if cwd is not None:
                m.chdir(cwd)
            capfd.readouterr()
            try:
                code = main(argv)
            except SystemExit as e:  # argparse's errors, --help and --version
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            out, err = capfd.readouterr()
        return subprocess.CompletedProcess(["stemforge", *argv], code or 0, out, err)

    return run


# -- imported peers: small Demucs and Open-Unmix models with fixed random weights -------


@pytest.fixture(scope="module")
def demucs_checkpoint(tmp_path_factory) -> Path:
    """A small HTDemucs (1 s segment), saved as Demucs saves its released models: a
    package of class, arguments and half-precision state (demucs.states)."""
    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state

    torch.manual_seed(0)
    model = HTDemucs(sources=list(STEMS), channels=8, depth=2, t_layers=1, segment=1, bottom_channels=0, nfft=1024)
    args, kwargs = model._init_args_kwargs
    package = {
        "klass": HTDemucs,
        "args": args,
        "kwargs": kwargs,
        "state": get_state(model, None, half=True),
        "training_args": {},
    }
    path = tmp_path_factory.mktemp("demucs") / "small-htdemucs.th"
    torch.save(package, path)
    return path


@pytest.fixture(scope="module")
def demucs_model(demucs_checkpoint, tmp_path_factory):
    import stemforge

    out = tmp_path_factory.mktemp("imported") / "htdemucs-small.ts"
    done = run_cli("import-model", "demucs", demucs_checkpoint, "-o", out, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "latency 44099 samples" in done.stdout
    return stemforge.load_model(out)


@pytest.fixture(scope="module")
def umx_folder(tmp_path_factory) -> Path:
    """A small Open-Unmix model folder as its training writes one: separator.json and,
    per target, <target>.json (its arguments) and <target>.pth (its state)."""
    import torch

    from stemforge.importers.openunmix import openunmix_utils

    openunmix_utils()
    from openunmix.model import OpenUnmix

    folder = tmp_path_factory.mktemp("umx") / "umx-small"
    folder.mkdir()
    torch.manual_seed(1)
    n_fft, n_hop, max_bin = 1024, 256, 200
    for target in STEMS:
        model = OpenUnmix(nb_bins=n_fft // 2 + 1, nb_channels=2, hidden_size=16, max_bin=max_bin)
        state = model.state_dict()
        state["input_mean"] = 0.1 * torch.randn(max_bin)  # trained models are not at their init
        state["input_scale"] = 1 + torch.rand(max_bin)
        torch.save(state, folder / f"{target}.pth")
        (folder / f"{target}.json").write_text(
            json.dumps({"args": {"nfft": n_fft, "nhop": n_hop, "nb_channels": 2, "hidden_size": 16}})
        )
    (folder / "separator.json").write_text(
        json.dumps({"sample_rate": 44100, "nfft": n_fft, "nhop": n_hop, "nb_channels": 2})
    )
    return folder


@pytest.fixture(scope="module")
def umx_model(umx_folder, tmp_path_factory):
    import stemforge

    out = tmp_path_factory.mktemp("imported") / "umx-small.ts"
    done = run_cli("import-model", "openunmix", umx_folder, "-o", out, "--window", "1.5", timeout=600)
    assert done.returncode == 0, done.stderr
    return stemforge.load_model(out)
