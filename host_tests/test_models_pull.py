"""`stemforge models pull` and `models list` against a catalogue served on the loopback
interface: nothing here reaches the internet.

The checkpoints are the peers' own architectures with random weights in small
configurations, saved as the peers save them (Demucs's .th packages, Open-Unmix's
state dicts), named by the peers' convention (<name>-<first 8 hex digits of SHA-256>).
A bag of four HTDemucs with htdemucs_ft's one-stem-per-member weights stands for the
fine-tuned model. The reference is always the peer's own inference.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import stemforge
from host_tests.helpers import MODELS, STEMS, music, relative_error
from stemforge.apps.models import PullError, pull
from stemforge.io.download import DownloadError, download

RATE = 44100
FT_WEIGHTS = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
UMX_CONFIG = {"sample_rate": RATE, "nfft": 1024, "nhop": 256, "nb_channels": 2, "hidden_size": 16}


def cli(*args, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "STEMFORGE_HOME": str(home)}
    env.pop("STEMFORGE_MIRROR", None)
    return subprocess.run(
        [sys.executable, "-m", "stemforge", *map(str, args)], env=env, capture_output=True, text=True, timeout=300
    )


def peer_name(stem: str, data: bytes) -> str:
    """torch.hub's and the peers' convention: the SHA-256's first 8 hex digits in the name."""
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}"


# -- the loopback server ------------------------------------------------------------------


class Server:
    """Serves `files` by name (any folder in the URL), with Range requests unless
    `ranges` is off; a name in `cut` gets half its bytes once, then the connection closes."""

    def __init__(self):
        self.files: dict = {}
        self.cut: set = set()
        self.ranges = True
        self.log: list = []  # (file name, Range header)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.log.append((name, self.headers.get("Range")))
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                start, wanted = 0, self.headers.get("Range")
                if wanted and server.ranges:
                    start = int(wanted.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in server.cut:
                    server.cut.discard(name)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def served(self, name: str) -> int:
        return sum(1 for n, _ in self.log if n == name)


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.httpd.shutdown()


@pytest.fixture()
def fresh(server):
    server.cut.clear()
    server.ranges = True
    server.log.clear()
    return server


# -- the peers' checkpoints ---------------------------------------------------------------


def htdemucs_bytes(seed: int) -> bytes:
    """A small HTDemucs (1 s segment) saved as Demucs saves its released models."""
    import io

    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state

    torch.manual_seed(seed)
    model = HTDemucs(sources=list(STEMS), channels=8, depth=2, t_layers=1, segment=1, bottom_channels=0, nfft=1024)
    args, kwargs = model._init_args_kwargs
    buffer = io.BytesIO()
    torch.save(
        {
            "klass": HTDemucs,
            "args": args,
            "kwargs": kwargs,
            "state": get_state(model, None, half=True),
            "training_args": {},
        },
        buffer,
    )
    return buffer.getvalue()


def umx_bytes(seed: int) -> bytes:
    import io

    from stemforge.importers.openunmix import openunmix_utils

    openunmix_utils()
    from openunmix.model import OpenUnmix

    torch.manual_seed(seed)
    model = OpenUnmix(
        nb_bins=UMX_CONFIG["nfft"] // 2 + 1, nb_channels=2, hidden_size=UMX_CONFIG["hidden_size"], max_bin=200
    )
    state = model.state_dict()
    state["input_mean"] = 0.1 * torch.randn(200)
    state["input_scale"] = 1 + torch.rand(200)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict:
    """name -> bytes for every file the catalogue lists, and the entries' file lists."""
    files, entries = {}, {}
    single = htdemucs_bytes(0)
    files[peer_name("0000aaaa", single) + ".th"] = single
    entries["htdemucs"] = [peer_name("0000aaaa", single) + ".th"]
    bag = []
    for i in range(4):
        data = htdemucs_bytes(10 + i)
        name = peer_name(f"{i + 1:04d}bbbb", data) + ".th"
        files[name] = data
        bag.append(name)
    entries["htdemucs_ft"] = bag
    umx = []
    for i, stem in enumerate(STEMS):
        data = umx_bytes(20 + i)
        name = peer_name(stem, data) + ".pth"
        files[name] = data
        umx.append(name)
    entries["umxhq"] = umx
    return {"files": files, "entries": entries}


def catalogue_file(folder: Path, base: str, checkpoints: dict, break_checksum: str = "") -> Path:
    """A catalogue as the built-in one, its URLs on `base`, its checksums the peers' prefixes
    (the whole digest for the Open-Unmix files, which a catalogue may give)."""
    e, files = checkpoints["entries"], checkpoints["files"]

    def entry(file: str, target=None, whole=False) -> dict:
        digest = hashlib.sha256(files[file]).hexdigest() if whole else file.rsplit("-", 1)[1][:8]
        if file == break_checksum:
            digest = "0" * 8 if digest[0] != "0" else "1" * 8
        return {
            "file": file,
            "url": f"{base}/weights/{file}",
            "sha256": digest,
            **({"target": target} if target else {}),
        }

    common = {
        "importer": "demucs",
        "licence": "MIT",
        "source": "https://github.com/facebookresearch/demucs",
        "training_data": "random weights (a test)",
    }
    models = [
        {
            "name": "htdemucs",
            "title": "small HTDemucs",
            "quality": "9.00 dB SDR (a test figure)",
            **common,
            "files": [entry(e["htdemucs"][0])],
        },
        {
            "name": "htdemucs_ft",
            "title": "a bag of 4 small HTDemucs",
            **common,
            "quality": "9.0 dB overall SDR (a test figure)",
            "bag": {"models": [f.split("-")[0] for f in e["htdemucs_ft"]], "weights": FT_WEIGHTS},
            "files": [entry(f) for f in e["htdemucs_ft"]],
        },
        {
            "name": "umxhq",
            "title": "small Open-Unmix",
            "importer": "openunmix",
            "licence": "CC BY-NC-SA 4.0 (a test licence)",
            "source": "https://github.com/sigsep/open-unmix-pytorch",
            "openunmix": UMX_CONFIG,
            "files": [entry(f, target=s, whole=True) for f, s in zip(e["umxhq"], STEMS)],
        },
    ]
    path = folder / "catalogue.json"
    path.write_text(json.dumps({"format": "stemforge-catalogue/1", "models": models}))
    return path


@pytest.fixture()
def catalogue(fresh, checkpoints, tmp_path) -> Path:
    fresh.files = dict(checkpoints["files"])
    return catalogue_file(tmp_path, fresh.url, checkpoints)


def demucs_reference(checkpoints: dict, names, weights, x: np.ndarray) -> np.ndarray:
    """demucs.api's separation with shifts=0 of one model or a BagOfModels, from the files."""
    import io

    from demucs.apply import BagOfModels
    from demucs.states import load_model

    from bench.import_models import run_demucs

    models = [load_model(torch.load(io.BytesIO(checkpoints["files"][n]), weights_only=False)).eval() for n in names]
    return run_demucs(models[0] if weights is None else BagOfModels(models, weights), x)


def umx_reference(checkpoints: dict, folder: Path, x: np.ndarray) -> np.ndarray:
    """Open-Unmix's own Separator (niter=0) on a model folder laid out as its training writes one."""
    from stemforge.importers.openunmix import openunmix_utils

    folder.mkdir()
    for name, stem in zip(checkpoints["entries"]["umxhq"], STEMS):
        (folder / f"{stem}.pth").write_bytes(checkpoints["files"][name])
        (folder / f"{stem}.json").write_text(json.dumps({"args": UMX_CONFIG}))
    (folder / "separator.json").write_text(json.dumps(UMX_CONFIG))
    separator = openunmix_utils().load_separator(str(folder), targets=list(STEMS), niter=0)
    separator.freeze()
    with torch.no_grad():
        return separator(torch.from_numpy(x)[None])[0].numpy()


# -- tests ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_bag_pulled_equals_demucs_apply_model_on_the_bag(catalogue, checkpoints, fresh, tmp_path, monkeypatch, capsys):
    """htdemucs_ft's shape: four members, one stem each; one file, found by name, equal to
    Demucs's apply_model(shifts=0, split=True, overlap=0.25) on the BagOfModels; then
    `models list` shows it with its licence, quality and latency."""
    monkeypatch.setenv("STEMFORGE_HOME", str(tmp_path / "home"))
    result = pull("htdemucs_ft", catalogue=catalogue)
    assert result.path == tmp_path / "home" / "models" / "htdemucs_ft.ts" and not result.already
    assert result.info.license == "MIT" and result.info.stems == tuple(STEMS)
    assert [f["sha256"] for f in result.files] == [
        hashlib.sha256(checkpoints["files"][n]).hexdigest() for n in checkpoints["entries"]["htdemucs_ft"]
    ]
    assert not (tmp_path / "home" / "downloads" / "htdemucs_ft").exists()
    x = music(1.6, seed=11)  # two chunks, the second cut short by the end
    reference = demucs_reference(checkpoints, checkpoints["entries"]["htdemucs_ft"], FT_WEIGHTS, x)
    stems = stemforge.separate(x, RATE, "htdemucs_ft", residual=None)
    for i, name in enumerate(STEMS):
        assert relative_error(stems[name], reference[i]) < 1e-4, name
    # each stem is its member's: the first member alone gives the drums, not the vocals
    alone = demucs_reference(checkpoints, checkpoints["entries"]["htdemucs_ft"][:1], None, x)
    assert relative_error(stems["drums"], alone[0]) < 1e-4
    assert relative_error(stems["vocals"], alone[3]) > 0.1

    from stemforge.cli import main

    assert main(["models", "list", "--catalogue", str(catalogue)]) == 0
    out = capsys.readouterr().out
    block = re.search(r"^htdemucs_ft  \(pulled\)\n((?:    .*\n)+)", out, re.M).group(1)
    assert "window, drums/bass/other/vocals, 44100 Hz" in block
    assert f"latency {RATE - 1} / " in block and "licence: MIT" in block
    assert "quality: 9.0 dB overall SDR (a test figure)" in block
    assert f"{fresh.url}/weights/" in block
    assert "htdemucs  (not pulled)" in out and "studio  (preset)" in out


@pytest.mark.slow
def test_pull_and_separate_from_the_cli_resuming_a_cut_download(catalogue, checkpoints, fresh, tmp_path):
    """The command line: progress while downloading; the server cuts the file half way and
    the pull resumes it with a Range request; `separate --model htdemucs` finds it by name
    and gives Demucs's own separation."""
    from pedalboard.io import AudioFile

    name = checkpoints["entries"]["htdemucs"][0]
    fresh.cut.add(name)
    home = tmp_path / "home"
    done = cli("models", "pull", "htdemucs", "--catalogue", catalogue, home=home)
    assert done.returncode == 0, done.stderr
    size = len(checkpoints["files"][name])
    assert [r for n, r in fresh.log if n == name] == [None, f"bytes={(size // 2)}-"]
    assert f"{name}: 100% of" in done.stderr and "htdemucs pulled" in done.stdout
    x = music(2.5, seed=12)
    song = tmp_path / "song.wav"
    with AudioFile(str(song), "w", RATE, 2, bit_depth=32) as f:
        f.write(x)
    done = cli("separate", song, "-o", tmp_path / "stems", "--model", "htdemucs", "-q", home=home)
    assert done.returncode == 0, done.stderr
    reference = demucs_reference(checkpoints, [name], None, x)
    for i, stem in enumerate(STEMS):
        with AudioFile(str(tmp_path / "stems" / "song" / f"{stem}.wav")) as f:
            assert relative_error(f.read(f.frames), reference[i]) < 1e-4, stem
    again = cli("models", "pull", "htdemucs", "--catalogue", catalogue, home=home)
    assert again.returncode == 0 and "already pulled" in again.stdout and fresh.served(name) == 2


def test_openunmix_through_a_mirror_in_a_render_plan_and_a_chain(catalogue, checkpoints, fresh, tmp_path, monkeypatch):
    """$STEMFORGE_MIRROR replaces every URL (the catalogue's point at a closed port here);
    the model's licence is in its metadata; render plans and Chain find it by name."""
    entries = json.loads(catalogue.read_text())
    for m in entries["models"]:
        for f in m["files"]:
            f["url"] = f"http://127.0.0.1:{closed_port()}/{f['file']}"
    catalogue.write_text(json.dumps(entries))
    monkeypatch.setenv("STEMFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STEMFORGE_MIRROR", f"{fresh.url}/mirror/")
    result = pull("umxhq", catalogue=catalogue)
    assert result.info.license == "CC BY-NC-SA 4.0 (a test licence)"
    assert all(f["url"].startswith(f"{fresh.url}/mirror/") for f in result.files)
    x = music(1.2, seed=13)
    reference = umx_reference(checkpoints, tmp_path / "umx", x)
    chain = stemforge.Chain([stemforge.StemSeparator("umxhq", stem="vocals", residual=None)])
    assert relative_error(chain(x, RATE), reference[3]) < 1e-4
    from pedalboard.io import AudioFile

    with AudioFile(str(tmp_path / "song.wav"), "w", RATE, 2, bit_depth=32) as f:
        f.write(x)
    plan = tmp_path / "plan.toml"
    plan.write_text(
        'inputs = ["song.wav"]\n[[chain]]\nplugin = "stemforge"\nmodel = "umxhq"\n'
        'stem = "drums"\n[output]\nfolder = "out"\n'
        'bit_depth = 32\nfilename = "{track}-drums.{ext}"\n'
    )
    from stemforge.cli import main

    assert main(["render", str(plan), "-q"]) == 0
    with AudioFile(str(tmp_path / "out" / "song-drums.wav")) as f:
        assert relative_error(f.read(f.frames), reference[0]) < 1e-4


def test_wrong_checksum_is_refused_and_nothing_is_cached(fresh, checkpoints, tmp_path, monkeypatch):
    fresh.files = dict(checkpoints["files"])
    bad = checkpoints["entries"]["htdemucs"][0]
    catalogue = catalogue_file(tmp_path, fresh.url, checkpoints, break_checksum=bad)
    home = tmp_path / "home"
    monkeypatch.setenv("STEMFORGE_HOME", str(home))
    with pytest.raises(PullError, match=f"{bad}: SHA-256 .* does not match the published"):
        pull("htdemucs", catalogue=catalogue)
    assert fresh.served(bad) == 1
    assert not (home / "models").exists()
    assert [p.name for p in (home / "downloads" / "htdemucs").iterdir()] == []


def test_a_cut_download_restarts_without_range_and_resumes_after_a_failed_run(fresh, tmp_path):
    data = os.urandom(300_000)
    digest = hashlib.sha256(data).hexdigest()
    fresh.files = {"blob.bin": data}
    target = tmp_path / "blob.bin"
    fresh.ranges, fresh.cut = False, {"blob.bin"}  # a server that ignores Range: start again
    assert download(f"{fresh.url}/blob.bin", target, digest[:8]) == digest
    assert target.read_bytes() == data and fresh.served("blob.bin") == 2
    target.unlink()
    fresh.ranges, fresh.cut, fresh.log[:] = True, {"blob.bin"}, []
    with pytest.raises(DownloadError, match="closed after 150000 of 300000 bytes"):
        download(f"{fresh.url}/blob.bin", target, digest, retries=0)  # the run stops here
    assert not target.exists() and (tmp_path / ".blob.bin.partial").stat().st_size == 150_000
    assert download(f"{fresh.url}/blob.bin", target, digest) == digest  # the next run resumes
    assert target.read_bytes() == data and fresh.log[-1] == ("blob.bin", "bytes=150000-")
    assert not (tmp_path / ".blob.bin.partial").exists()


def test_two_concurrent_pulls_download_once(catalogue, checkpoints, fresh, tmp_path, monkeypatch):
    monkeypatch.setenv("STEMFORGE_HOME", str(tmp_path / "home"))
    results, errors, waited = [], [], []
    start, other_waits = threading.Barrier(2), threading.Event()

    def on_wait():
        waited.append(1)
        other_waits.set()

    def progress(name, done, total):
        # The pull that holds the lock goes on once the other waits for it: the two overlap
        # however the threads are scheduled (on a busy machine one could otherwise finish
        # before the other starts). Only pulls that never wait let the timeout run out, once.
        if not other_waits.wait(timeout=300):
            other_waits.set()

    def one():
        start.wait()
        try:
            results.append(pull("umxhq", catalogue=catalogue, on_wait=on_wait, progress=progress))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(r.already for r in results) == [False, True] and waited == [1]
    assert all(fresh.served(n) == 1 for n in checkpoints["entries"]["umxhq"])
    assert stemforge.load_model("umxhq").stems == tuple(STEMS)
    assert not list((tmp_path / "home" / "models").glob(".*"))  # no partial file left


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_no_network_names_the_files_checksums_and_import_model(checkpoints, tmp_path):
    """A closed port: the error names every file, its URL and checksum, the downloads
    folder and the `stemforge import-model` command; files put there by hand are then
    verified and imported without the network."""
    catalogue = catalogue_file(tmp_path, f"http://127.0.0.1:{closed_port()}", checkpoints)
    home = tmp_path / "home"
    done = cli("models", "pull", "umxhq", "--catalogue", catalogue, home=home)
    assert done.returncode == 1
    downloads = home / "downloads" / "umxhq"
    for name in checkpoints["entries"]["umxhq"]:
        assert name in done.stderr
        assert hashlib.sha256(checkpoints["files"][name]).hexdigest() in done.stderr
    assert "Connection refused" in done.stderr and str(downloads) in done.stderr
    command = (
        f"stemforge import-model openunmix {downloads} -o {home / 'models' / 'umxhq.ts'} "
        f"--name umxhq --targets {','.join(STEMS)}"
    )
    assert command in done.stderr and "CC BY-NC-SA 4.0" in done.stderr
    assert not (home / "models").exists()
    for name in checkpoints["entries"]["umxhq"]:  # fetched by hand
        (downloads / name).write_bytes(checkpoints["files"][name])
    by_hand = home / "by-hand.ts"
    from stemforge.cli import main

    assert main(shlex.split(command.replace("stemforge ", "", 1)) + ["-o", str(by_hand)]) == 0
    assert stemforge.load_model(by_hand).stems == tuple(STEMS)
    done = cli("models", "pull", "umxhq", "--catalogue", catalogue, home=home)
    assert done.returncode == 0, done.stderr
    assert stemforge.load_model(home / "models" / "umxhq.ts").info.license.startswith("CC BY-NC-SA")


def not_utf8_metadata(source: Path, target: Path) -> None:
    """`source` with its metadata saved as Latin-1 (a description holding an é)."""
    import zipfile

    with zipfile.ZipFile(source) as a, zipfile.ZipFile(target, "w") as b:
        for name in a.namelist():
            data = a.read(name)
            if name.endswith("/extra/stemforge.json"):
                data = data.decode().replace('"description": "', '"description": "caf\xe9 ').encode("latin-1")
            b.writestr(name, data)


@pytest.mark.parametrize(
    "damage, problem",
    [
        ("record", "htdemucs.pull.json: unreadable pull record"),
        ("model", "htdemucs.ts: not a readable model file"),
        ("metadata", "htdemucs.ts: stemforge.json is not UTF-8 text"),
    ],
)
def test_damaged_pulled_files_are_reported_by_pull_and_list(checkpoints, tmp_path, damage, problem):
    """A pulled model's files damaged on disk: `models list` shows the problem on its row,
    `models pull` says what it is and what to do; neither is a traceback."""
    catalogue = catalogue_file(tmp_path, f"http://127.0.0.1:{closed_port()}", checkpoints)
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    model, record = home / "models" / "htdemucs.ts", home / "models" / "htdemucs.pull.json"
    model.write_bytes((MODELS / "fixture-stream.ts").read_bytes())
    record.write_text(json.dumps({"source": "https://example.org", "files": [{"url": "https://example.org/x"}]}))
    if damage == "record":
        record.write_text("{not json")
    elif damage == "model":
        model.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        not_utf8_metadata(MODELS / "fixture-stream.ts", model)
    listed = cli("models", "list", "--catalogue", catalogue, home=home)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    row = re.search(r"^htdemucs  \(.*\)\n((?:    .*\n)+)", listed.stdout, re.M).group(1)
    assert f"problem: {home / 'models'}/{problem}" in row
    pulled = cli("models", "pull", "htdemucs", "--catalogue", catalogue, home=home)
    assert pulled.returncode == 1 and "Traceback" not in pulled.stderr, pulled.stderr
    assert f"htdemucs was pulled before, but its files are damaged: {home / 'models'}/{problem}" in pulled.stderr
    assert "`stemforge models pull htdemucs --force` pulls it again" in pulled.stderr


@pytest.mark.parametrize("rate", [22050, 44100, 48000])
def test_listed_latency_is_what_the_processor_reports(models, rate):
    """`models list` computes latency from the metadata alone; it is the processor's."""
    from stemforge.core.pipeline import latency_of

    for model in models.values():
        sep = stemforge.StemSeparator(model)
        sep.prepare(rate, 2)
        assert latency_of(model.info, rate) == sep.latency_samples, model.name
