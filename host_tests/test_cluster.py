"""A catalogue's stems exported on a real Ray cluster (issue 14): a head and two worker nodes,
each its own `ray start`, in a network namespace that holds only loopback
(bench/loopback_cluster.py); drivers join it with nsenter. Every output is compared byte
for byte with the local export of the same inputs; a worker is killed mid-file, a corrupt
input fails once, the driver is interrupted and resumes.

Needs root (or unprivileged user namespaces) and Ray: Ray is in the test extra, and a
missing Ray fails this module's import instead of skipping it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
import ray  # noqa: F401  (the cluster tests must fail, not skip, where Ray is missing)
from pedalboard.io import AudioFile

import stemforge
from bench.loopback_cluster import LoopbackCluster
from host_tests.helpers import MODELS, ROOT, music, run_cli
from stemforge.errors import ExportError

FIXTURE = str(MODELS / "fixture-stream.ts")
RUN_TIMEOUT = 600  # seconds: a guard against a hang, generous for a busy 2-core machine
# A driver whose workers the test kills waits for each killed worker's exit (up to 90 s a
# node when the machine is loaded) before it tries again: the test keeps killing for as long
# as the driver runs, and only this much longer than that is a hang.
HANG_GUARD = 6 * RUN_TIMEOUT
TRACKS = 6


@pytest.fixture(scope="module")
def cluster():
    # the workers import stemforge from this checkout, installed or not
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugin"), os.environ.get("PYTHONPATH")]))}
    with LoopbackCluster(workers=2, env=env) as running:  # stopped also when a test fails
        yield running


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    """Tracks long enough (20 s) that a worker can be caught mid-file; one mono 48 kHz
    16-bit file goes through the resampler and another writer path."""
    folder = tmp_path_factory.mktemp("catalogue")
    for i in range(TRACKS):
        rate, channels, depth = (48000, 1, 16) if i == 1 else (44100, 2, 32)
        with AudioFile(str(folder / f"track {i}.wav"), "w", rate, channels, bit_depth=depth) as f:
            f.write(music(20.0, rate, channels, seed=i))
    return folder


def tree(folder: Path) -> dict:
    """Every file under `folder` (relative name -> bytes), hidden partial files included."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def partials(folder: Path) -> list:
    return [p for p in folder.rglob("*") if ".partial" in p.name]


SEPARATE = [
    "separate",
    "--model",
    FIXTURE,
    "--session",
    "dawproject,reaper",
    "--filename",
    "{index:02d}-{track}/{stem}.{ext}",
]


@pytest.fixture(scope="module")
def local(catalogue, tmp_path_factory) -> dict:
    """The one-machine export of the catalogue: the bytes every cluster run must give."""
    # as deep below the catalogue's parent as the tests' tmp_path / "out": the sessions'
    # relative paths to the mix are then the same
    out = tmp_path_factory.mktemp("local") / "out"
    result = run_cli(*SEPARATE, catalogue, "-o", out)
    assert result.returncode == 0, result.stderr
    files = tree(out)
    assert len(files) == TRACKS * 6  # four stems and two sessions per track
    return files


def on_cluster(cluster: LoopbackCluster, *args, cwd=None) -> subprocess.CompletedProcess:
    """`stemforge ARGS... --cluster ADDRESS` run as a driver inside the cluster's namespace."""
    command = cluster.command([sys.executable, "-m", "stemforge", *args, "--cluster", cluster.address])
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=RUN_TIMEOUT, env=cluster.env)


@pytest.mark.slow
def test_every_node_of_the_test_cluster_is_on_loopback(cluster):
    code = (
        "import ray; ray.init(address='127.0.0.1:6379', logging_level='ERROR'); "
        "print(*sorted((n['NodeManagerAddress'], n['Resources'].get('CPU', 0)) "
        "for n in ray.nodes() if n['Alive']), sep='\\n')"
    )
    result = subprocess.run(
        cluster.command([sys.executable, "-c", code]),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=cluster.env,
    )
    assert result.returncode == 0, result.stderr
    nodes = result.stdout.split("\n")[:-1]
    assert nodes == ["('127.0.0.1', 0)", "('127.0.0.1', 1.0)", "('127.0.0.1', 1.0)"]


@pytest.mark.slow
def test_a_cluster_export_is_byte_identical_to_the_local_one(cluster, catalogue, local, tmp_path):
    result = on_cluster(cluster, *SEPARATE, catalogue, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert tree(tmp_path / "out") == local  # same names, same bytes, no partial file
    assert f"{TRACKS} of {TRACKS} file(s) exported" in result.stdout
    assert f"cluster: {TRACKS}/{TRACKS} files" in result.stdout  # the driver's progress


@pytest.mark.slow
def test_a_preset_on_the_cluster_through_ray_client_from_python_gives_the_local_bytes(cluster, catalogue, tmp_path):
    inputs = sorted(catalogue.glob("*.wav"))[:2]
    expected = stemforge.export(inputs, tmp_path / "local", model="live", two_stems="vocals", format="flac")
    assert expected.ok and len(expected.written) == 4
    code = (
        "import sys, stemforge; r = stemforge.export(sys.argv[2:], sys.argv[1], model='live', "
        f"two_stems='vocals', format='flac', cluster={cluster.client_address!r}); "
        "print(*[x.status for x in r.files])"
    )
    result = subprocess.run(
        cluster.command([sys.executable, "-c", code, tmp_path / "cluster", *inputs]),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=cluster.env,
    )
    assert result.returncode == 0, result.stderr + cluster.logs()
    assert result.stdout.split() == ["done", "done"]
    assert tree(tmp_path / "cluster") == tree(tmp_path / "local")


def kill_workers_in_files(cluster: LoopbackCluster, driver: subprocess.Popen, most: Optional[int] = None) -> set:
    """SIGKILL each worker seen inside a file (`ray::FileWorker.run`), up to `most`, for as long
    as the driver runs: however slow the machine, no try gets through unkilled. A driver still
    running after HANG_GUARD seconds has hung: the test fails."""
    kills: set = set()
    deadline = time.monotonic() + HANG_GUARD
    while driver.poll() is None and (most is None or len(kills) < most):
        if time.monotonic() > deadline:
            pytest.fail(f"the driver was still running after {HANG_GUARD} s")
        for pid in set(cluster.worker_processes("ray::FileWorker.run")) - kills:
            if most is not None and len(kills) >= most:
                break
            os.kill(pid, signal.SIGKILL)
            kills.add(pid)
        time.sleep(0.01)
    return kills


@pytest.mark.slow
def test_a_worker_killed_mid_file_gets_its_file_started_again_elsewhere(cluster, catalogue, local, tmp_path):
    command = cluster.command(
        [sys.executable, "-m", "stemforge", *SEPARATE, catalogue, "-o", tmp_path / "out", "--cluster", cluster.address]
    )
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:
        kills = kill_workers_in_files(cluster, driver, most=1)
        out, err = driver.communicate(timeout=HANG_GUARD)
    finally:
        driver.kill()
    assert len(kills) == 1, "no worker was caught running a file"
    assert driver.returncode == 0, err
    assert err.count("starting again on another worker") == 1, err
    assert f"{TRACKS} of {TRACKS} file(s) exported" in out
    assert tree(tmp_path / "out") == local  # no partial file, under any name


@pytest.mark.slow
def test_a_file_whose_worker_dies_on_every_try_is_reported_failed(cluster, catalogue, tmp_path):
    """As if the file itself killed its worker each time: a bounded number of tries, then
    a failure that says so, and nothing left behind."""
    command = cluster.command(
        [
            sys.executable,
            "-m",
            "stemforge",
            *SEPARATE,
            catalogue / "track 0.wav",
            "-o",
            tmp_path / "out",
            "--cluster",
            cluster.address,
        ]
    )
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:
        kills = kill_workers_in_files(cluster, driver)
        out, err = driver.communicate(timeout=HANG_GUARD)
    finally:
        driver.kill()
    assert driver.returncode == 1, err
    assert len(kills) == 3 and err.count("starting again on another worker") == 2, err
    assert "its worker died on each of 3 tries" in err
    assert "0 of 1 file(s) exported; 1 failed" in err
    assert not list((tmp_path / "out").glob("*"))  # no partial file, no folder made for one


@pytest.mark.slow
def test_a_corrupt_input_fails_once_and_is_not_retried(cluster, catalogue, local, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("track 0.wav", "track 1.wav"):
        (inputs / name).symlink_to(catalogue / name)
    (inputs / "zz-broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" * 100)  # 3rd
    result = on_cluster(cluster, *SEPARATE, inputs, "-o", tmp_path / "out")
    assert result.returncode == 1
    assert result.stderr.count("stemforge: skipped") == 1, result.stderr  # reported once
    assert "zz-broken.wav: cannot read it as audio" in result.stderr
    assert "starting again" not in result.stderr
    assert "2 of 3 file(s) exported; 1 failed" in result.stderr
    # the links resolve to the catalogue: the sessions too are the local ones
    assert tree(tmp_path / "out") == {k: v for k, v in local.items() if k.startswith(("01-", "02-"))}


def complete_tracks(folder: Path) -> int:
    return sum(
        1 for d in folder.iterdir() if d.is_dir() and len([p for p in d.iterdir() if not p.name.startswith(".")]) == 6
    )


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_driver_resumes_and_skips_finished_files(cluster, catalogue, local, tmp_path, how):
    out = tmp_path / "out"
    command = cluster.command(
        [sys.executable, "-m", "stemforge", *SEPARATE, catalogue, "-o", out, "--cluster", cluster.address]
    )
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:
        for line in driver.stdout:  # the first finished file
            if " -> " in line:
                break
        driver.send_signal(how)
        _, err = driver.communicate(timeout=RUN_TIMEOUT)
    finally:
        driver.kill()
    if how == signal.SIGINT:  # a clean stop: the workers are gone, no partial file is left
        assert driver.returncode == 130, err
        assert "interrupted" in err and not partials(out)
    else:  # Ray ends a dead driver's workers; they may leave partial files behind
        assert driver.returncode == -signal.SIGKILL
    deadline = time.monotonic() + RUN_TIMEOUT
    while cluster.worker_processes("ray::FileWorker") and time.monotonic() < deadline:
        time.sleep(0.1)
    done = complete_tracks(out)
    assert 1 <= done
    first = {k: v for k, v in tree(out).items() if ".partial" not in k}
    assert first == {k: v for k, v in local.items() if k in first}  # nothing half written
    rerun = on_cluster(cluster, *SEPARATE, catalogue, "-o", out)
    assert rerun.returncode == 0, rerun.stderr
    summary = f"{TRACKS - done} of {TRACKS} file(s) exported"
    assert (summary + (f", {done} already complete" if done else "")) in rerun.stdout
    assert tree(out) == local  # every file, and no partial file left


def test_a_killed_workers_partials_wait_until_its_process_has_exited():
    """ray.kill returns, and the killed worker's call fails, before its process has exited;
    one still writing would leave a partial file the driver had already removed. The driver
    asks the worker's node to wait for the process (wait_for_exit), which returns once it is
    gone (an exited child not yet reaped counts as gone) and names one still running."""
    from stemforge.apps.cluster import wait_for_exit

    ends = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    stays = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        assert wait_for_exit([ends.pid], 300) == []
        assert ends.poll() is not None  # it had exited when the wait returned
        assert wait_for_exit([stays.pid, ends.pid], 0.1) == [stays.pid]
    finally:
        stays.kill()
        stays.wait()


def test_without_ray_the_error_says_how_to_install_it(tmp_path):
    src = tmp_path / "song.wav"
    with AudioFile(str(src), "w", 44100, 2) as f:
        f.write(music(0.5))
    code = "import sys; sys.modules['ray'] = None; from stemforge.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", code, "separate", src, "-o", tmp_path / "out", "--model", FIXTURE, "--cluster", "auto"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert result.returncode == 2
    assert "pip install 'stemforge[cluster]'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_workers_without_a_cluster_is_refused(cli_here):
    result = cli_here("separate", "song.wav", "--workers", "2")
    assert result.returncode == 2 and "--cluster" in result.stderr


@pytest.mark.slow
def test_workers_that_cannot_start_end_the_run_with_an_error_not_a_loop(cluster, catalogue, tmp_path):
    """Workers whose model does not load die as they start: after a bounded number of
    replacements the run stops and says what to check."""
    not_a_model = tmp_path / "broken.ts"
    not_a_model.write_bytes(b"not a model")
    code = (
        "import sys, types; from pathlib import Path; "
        "from stemforge.apps.cluster import run_on_cluster; from stemforge.errors import ExportError\n"
        "model = types.SimpleNamespace(path=Path(sys.argv[1]), name='broken')\n"
        "try:\n"
        f"    run_on_cluster({cluster.address!r}, [1], [Path('x.wav')], model, print, print)\n"
        "except ExportError as e:\n"
        "    print(e)"
    )
    result = subprocess.run(
        cluster.command([sys.executable, "-c", code, not_a_model]),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=cluster.env,
    )
    assert result.returncode == 0, result.stderr
    assert "workers cannot start on the cluster" in result.stdout, result.stdout + result.stderr
    assert "is stemforge installed on every node" in result.stdout
    assert "ModelError" in result.stdout and "broken.ts: not a TorchScript model file" in result.stdout


class FlakyRayClient:
    """Ray as a driver sees it when the head's Ray Client proxy fails to start the
    per-client server `failures` times (it happens on a loaded head)."""

    def __init__(self, failures: int, why: str):
        self.failures, self.why, self.inits, self.shutdowns = failures, why, 0, 0

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs) -> None:
        self.inits += 1
        if self.inits <= self.failures:
            raise ConnectionAbortedError(f"Initialization failure from server:\n{self.why}")

    def shutdown(self) -> None:
        self.shutdowns += 1


# What Ray 2.60's proxy sends back when the client's server process fails to start: its own
# check, or psutil's, when the process died between the proxy's poll and its next look.
SERVER_START_FAILURES = [
    "RuntimeError: Starting Ray client server failed. See ray_client_server_23000.err",
    "psutil.ZombieProcess: PID still exists but it's a zombie (pid=30663)",
]


@pytest.mark.parametrize("why", SERVER_START_FAILURES)
@pytest.mark.parametrize("failures, joins", [(2, True), (3, False)])
def test_a_ray_client_server_that_fails_to_start_is_tried_again_a_bounded_number_of_times(
    monkeypatch, failures, joins, why
):
    from stemforge.apps import cluster as cluster_app

    ray_client = FlakyRayClient(failures, why)
    monkeypatch.setattr(cluster_app, "import_ray", lambda: ray_client)
    monkeypatch.setattr(cluster_app.time, "sleep", lambda seconds: None)
    if joins:
        assert cluster_app.connect("ray://127.0.0.1:10001") == (ray_client, True)
    else:
        with pytest.raises(ExportError, match="cannot join the Ray cluster at 'ray://127.0.0.1:10001'"):
            cluster_app.connect("ray://127.0.0.1:10001")
    assert ray_client.inits == min(failures + 1, cluster_app.CLIENT_ATTEMPTS)


def test_a_cluster_that_is_not_there_is_not_tried_again(monkeypatch):
    """Only the proxy's failure to start a client's server is retried, not a wrong address."""
    from stemforge.apps import cluster as cluster_app

    class NoCluster(FlakyRayClient):
        def init(self, **kwargs) -> None:
            self.inits += 1
            raise ConnectionError("ray client connection timeout")

    ray_client = NoCluster(0, "")
    monkeypatch.setattr(cluster_app, "import_ray", lambda: ray_client)
    monkeypatch.setattr(cluster_app.time, "sleep", lambda seconds: None)
    with pytest.raises(ExportError, match="start one with `ray start --head`"):
        cluster_app.connect("ray://127.0.0.1:10001")
    assert ray_client.inits == 1
