"""Published weights in one command: `stemforge models list` and `stemforge models pull NAME`.

The catalogue (apps/catalogue.json, or the file $STEMFORGE_CATALOGUE / --catalogue
names) lists each model's files with their official URLs, SHA-256 checksums,
licence and published quality. `pull` downloads the files into
``<home>/downloads/<name>/`` (resumable; verified before use; a file is renamed to
its final name only once verified), imports them with the Demucs or Open-Unmix
importer into ``<home>/models/<name>.ts`` and records where it came from in
``<home>/models/<name>.pull.json``. ``<home>`` is $STEMFORGE_HOME or the user's cache
folder (`stemforge.core.lookup.stemforge_home`); every face finds the model by name
there. A lock per model makes concurrent pulls of one model wait for each other;
$STEMFORGE_MIRROR / --mirror fetches every file as ``<mirror>/<file>`` instead.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

from ..core.contract import ModelError, ModelInfo
from ..core.loading import load_model, read_info
from ..core.lookup import PRESETS, model_dirs, pulled_models_dir, stemforge_home
from ..core.pipeline import latency_of
from ..io.download import ChecksumError, DownloadError, check_sha256, download, file_lock, url_for
from ..io.writing import write_text

CATALOGUE_FORMAT = "stemforge-catalogue/1"
CATALOGUE_ENV = "STEMFORGE_CATALOGUE"
MIRROR_ENV = "STEMFORGE_MIRROR"
BUILTIN_CATALOGUE = Path(__file__).with_name("catalogue.json")
IMPORTERS = ("demucs", "openunmix")
PEER_PACKAGES = {"demucs": 'pip install "stemforge[demucs]"', "openunmix": "pip install --no-deps openunmix tqdm"}
LIST_RATES = (44100, 48000)

# progress(file name, bytes done, bytes in total or None)
FileProgress = Callable[[str, int, Optional[int]], None]


class PullError(Exception):
    """A model that could not be pulled; the message says what to do instead."""


@dataclass(frozen=True)
class CatalogueFile:
    file: str  # the name it is saved under (and fetched as from a mirror)
    url: str
    sha256: str  # the whole digest, or the prefix the peers publish
    target: Optional[str] = None  # Open-Unmix: the stem this file separates


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    importer: str
    title: str
    licence: str
    source: str
    files: Tuple[CatalogueFile, ...]
    training_data: str = ""
    quality: str = ""
    bag: Optional[dict] = None  # demucs: {"models": [signatures], "weights": [[...]], "segment"}
    openunmix: Optional[dict] = None  # openunmix: separator.json's fields and hidden_size


def catalogue_path(catalogue: Union[str, os.PathLike, None] = None) -> Path:
    """The catalogue in use: `catalogue`, else $STEMFORGE_CATALOGUE, else the built-in one."""
    chosen = catalogue or os.environ.get(CATALOGUE_ENV)
    return Path(chosen).expanduser() if chosen else BUILTIN_CATALOGUE


def load_catalogue(catalogue: Union[str, os.PathLike, None] = None) -> Dict[str, CatalogueEntry]:
    """The catalogue's entries by name; an unusable file is a PullError naming the problem."""
    path = catalogue_path(catalogue)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PullError(f"catalogue {path}: cannot read it ({e})") from None
    if not isinstance(data, dict) or data.get("format") != CATALOGUE_FORMAT or not isinstance(data.get("models"), list):
        raise PullError(
            f'catalogue {path}: needs "format": "{CATALOGUE_FORMAT}" and a '
            '"models" list (see the built-in apps/catalogue.json)'
        )
    entries: Dict[str, CatalogueEntry] = {}
    for i, m in enumerate(data["models"]):
        where = f"catalogue {path}, model {i + 1}"
        try:
            files = tuple(CatalogueFile(**f) for f in m["files"])
            entry = CatalogueEntry(**{**m, "files": files})
        except (KeyError, TypeError) as e:
            raise PullError(
                f"{where}: {e}; each model needs name, importer, title, licence, source and files (file, url, sha256)"
            ) from None
        problem = _entry_problem(entry)
        if problem:
            raise PullError(f"{where} ({entry.name}): {problem}")
        entries[entry.name] = entry
    return entries


def _entry_problem(e: CatalogueEntry) -> Optional[str]:
    if not e.name or "/" in e.name or "\\" in e.name or e.name.startswith(".") or "." in e.name:
        return "a name is a plain word (it becomes <name>.ts)"
    if e.name in PRESETS:
        return f"{e.name} is a shipped preset's name"
    if e.importer not in IMPORTERS:
        return f"importer must be one of {', '.join(IMPORTERS)}"
    if not e.files:
        return "no files"
    for f in e.files:
        if not f.file or Path(f.file).name != f.file or f.file.startswith("."):
            return f"file {f.file!r} must be a plain file name"
        if len(f.sha256) < 8 or any(c not in "0123456789abcdef" for c in f.sha256.lower()):
            return f"{f.file}: sha256 must be at least 8 hex digits"
    if e.importer == "openunmix":
        needed = {"sample_rate", "nfft", "nhop", "nb_channels", "hidden_size"}
        if not isinstance(e.openunmix, dict) or needed - set(e.openunmix):
            return f'an openunmix model needs "openunmix": {{{", ".join(sorted(needed))}}}'
        if any(not f.target for f in e.files):
            return "every openunmix file needs its target (the stem it separates)"
    if e.importer == "demucs" and e.bag is None and len(e.files) != 1:
        return 'a demucs model is one file, or a bag ({"models": [...], "weights": ...})'
    return None


def home_paths(name: str) -> Dict[str, Path]:
    """Where a pull of `name` keeps things under the stemforge home."""
    home, models = stemforge_home(), pulled_models_dir()
    return {
        "model": models / f"{name}.ts",
        "record": models / f"{name}.pull.json",
        "downloads": home / "downloads" / name,
        "lock": home / "locks" / f"{name}.lock",
    }


def file_url(f: CatalogueFile, mirror: Optional[str] = None) -> str:
    """Where to fetch a file: <mirror>/<file> with a mirror ($STEMFORGE_MIRROR), else its URL."""
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if not mirror:
        return f.url
    return url_for(mirror).rstrip("/") + "/" + f.file


@dataclass
class PullResult:
    name: str
    path: Path
    info: ModelInfo
    files: List[dict] = field(default_factory=list)  # file, url, sha256 (whole digest)
    already: bool = False  # it was pulled before: nothing was downloaded


def pull(
    name: str,
    *,
    catalogue: Union[str, os.PathLike, None] = None,
    mirror: Optional[str] = None,
    force: bool = False,
    keep_downloads: bool = False,
    progress: Optional[FileProgress] = None,
    on_wait: Optional[Callable[[], None]] = None,
    retries: int = 5,
) -> PullResult:
    """Download, verify and import the catalogue's model `name` into the stemforge home.

    A model pulled before is not fetched again (unless `force`); files already in the
    downloads folder (an interrupted pull, or put there by hand) are verified and used.
    """
    entries = load_catalogue(catalogue)
    if name not in entries:
        raise PullError(
            f"no model {name!r} in catalogue {catalogue_path(catalogue)}; it has {', '.join(sorted(entries))}"
        )
    entry = entries[name]
    paths = home_paths(name)
    with file_lock(paths["lock"], on_wait):
        if not force and paths["model"].is_file() and paths["record"].is_file():
            return _already_pulled(name, paths)
        _check_peer(entry)
        folder = paths["downloads"]
        fetched = [_fetch_file(entry, f, folder, mirror, progress, retries) for f in entry.files]
        info = _import(entry, folder, paths["model"])
        record = {
            "name": name,
            "title": entry.title,
            "licence": entry.licence,
            "source": entry.source,
            "quality": entry.quality,
            "catalogue": str(catalogue_path(catalogue)),
            "files": fetched,
            "pulled": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_text(paths["record"], json.dumps(record, indent=1))
        if not keep_downloads:
            shutil.rmtree(folder, ignore_errors=True)
    return PullResult(name, paths["model"], info, fetched)


def _already_pulled(name: str, paths: Dict[str, Path]) -> PullResult:
    """The earlier pull's result, read as `models list` reads it; damaged files (a record
    that is not JSON, a model file that is not one) are a PullError saying what to do."""
    try:
        files = json.loads(paths["record"].read_text())["files"]
        info = read_info(paths["model"])
    except ModelError as e:
        problem = str(e)
    except (OSError, ValueError, KeyError, TypeError) as e:  # ValueError: JSON and UTF-8 too
        problem = f"{paths['record']}: unreadable pull record ({e})"
    else:
        return PullResult(name, paths["model"], info, files, True)
    raise PullError(
        f"{name} was pulled before, but its files are damaged: {problem}. "
        f"`stemforge models pull {name} --force` pulls it again"
    )


def _check_peer(entry: CatalogueEntry) -> None:
    """Fail before downloading if the importer's package is missing."""
    try:
        if entry.importer == "demucs":
            import demucs.states  # noqa: F401
        else:
            from ..importers.openunmix import openunmix_utils

            openunmix_utils()
    except ImportError:
        raise PullError(
            f"importing {entry.name} needs the {entry.importer} package: {PEER_PACKAGES[entry.importer]}"
        ) from None


def _fetch_file(
    entry: CatalogueEntry,
    f: CatalogueFile,
    folder: Path,
    mirror: Optional[str],
    progress: Optional[FileProgress],
    retries: int,
) -> dict:
    dest, url = folder / f.file, file_url(f, mirror)
    rejected = ""
    if dest.is_file():  # an earlier pull, or fetched by hand: verify it like a download
        try:
            return {"file": f.file, "url": url, "sha256": check_sha256(dest, f.sha256)}
        except ChecksumError as e:
            dest.unlink()
            rejected = f"\n(the {f.file} that was there was deleted: {e})"
    report = (lambda done, total: progress(f.file, done, total)) if progress else None
    try:
        digest = download(url, dest, f.sha256, progress=report, retries=retries)
    except DownloadError as e:
        raise PullError(offline_help(entry, folder, mirror, e) + rejected) from None
    except ChecksumError as e:
        raise PullError(
            f"{url}: {e}. The file was refused and deleted; nothing was cached. "
            "The server (or the mirror, or the catalogue's checksum) does not give "
            "the published file."
        ) from None
    return {"file": f.file, "url": url, "sha256": digest}


def offline_help(entry: CatalogueEntry, folder: Path, mirror: Optional[str], error: DownloadError) -> str:
    """What to do when the files cannot be downloaded: fetch them by hand, then import."""
    _write_import_files(entry, folder)
    lines = [
        f"cannot download {entry.name}: {error}",
        "To install it without this machine's network access, fetch these files by hand "
        "(on any machine) and check their SHA-256 (sha256sum FILE; it must start with the "
        "digits given):",
    ]
    lines += [f"  {f.url}\n      sha256 {f.sha256}" for f in entry.files]
    out = home_paths(entry.name)["model"]
    what = {
        "demucs": folder / f"{entry.name}.yaml" if entry.bag is not None else folder / entry.files[0].file,
        "openunmix": folder,
    }[entry.importer]
    targets = f" --targets {','.join(f.target for f in entry.files)}" if entry.openunmix else ""
    lines += [
        f"then put them in {folder}/ and run `stemforge models pull {entry.name}` again (it "
        "verifies them and imports them without the network), or import them yourself:",
        f"  stemforge import-model {entry.importer} {what} -o {out} --name {entry.name}{targets}",
        f"Licence of these weights: {entry.licence}.",
    ]
    if mirror or os.environ.get(MIRROR_ENV):
        lines.append(
            f"(this pull looked for them on the mirror {mirror or os.environ[MIRROR_ENV]}, as <mirror>/<file name>)"
        )
    return "\n".join(lines)


def _write_import_files(entry: CatalogueEntry, folder: Path) -> None:
    """What the importer reads beside the weights: a Demucs bag's .yaml (JSON is YAML), or
    Open-Unmix's separator.json and <target>.json."""
    folder.mkdir(parents=True, exist_ok=True)
    if entry.bag is not None:
        write_text(folder / f"{entry.name}.yaml", json.dumps(entry.bag))
    if entry.openunmix is not None:
        c = entry.openunmix
        write_text(
            folder / "separator.json", json.dumps({k: c[k] for k in ("sample_rate", "nfft", "nhop", "nb_channels")})
        )
        for f in entry.files:
            write_text(
                folder / f"{f.target}.json",
                json.dumps(
                    {
                        "args": {
                            "nfft": c["nfft"],
                            "nhop": c["nhop"],
                            "nb_channels": c["nb_channels"],
                            "hidden_size": c["hidden_size"],
                        }
                    }
                ),
            )


def _import(entry: CatalogueEntry, folder: Path, out: Path) -> ModelInfo:
    from ..importers.demucs import import_demucs
    from ..importers.openunmix import import_openunmix

    _write_import_files(entry, folder)
    meta = dict(name=entry.name, license=entry.licence, training_data=entry.training_data)
    try:
        if entry.importer == "demucs":
            source = folder / (f"{entry.name}.yaml" if entry.bag is not None else entry.files[0].file)
            import_demucs(source, out, **meta)
        else:
            import_openunmix(folder, out, targets=[f.target for f in entry.files], **meta)
        return load_model(out).info
    except (ImportError, OSError, ValueError, RuntimeError) as e:  # ModelError is a ValueError
        out.unlink(missing_ok=True)
        raise PullError(
            f"importing {entry.name} failed: {e}. The verified files stay in "
            f"{folder}/; `stemforge models pull {entry.name}` retries without "
            "downloading them again."
        ) from None


@dataclass
class ModelRow:
    """One line of `stemforge models list`."""

    name: str
    status: str  # "preset", "pulled", "file" or "not pulled"
    licence: str
    source: str
    quality: str = ""
    title: str = ""  # a catalogue model not pulled yet: what it is
    path: Optional[Path] = None
    info: Optional[ModelInfo] = None
    size: int = 0
    latency: Dict[int, int] = field(default_factory=dict)  # host rate -> samples
    problem: str = ""  # a file that cannot be read


def list_models(catalogue: Union[str, os.PathLike, None] = None) -> List[ModelRow]:
    """Every model a name finds (first folder wins, as `load_model` looks them up), then the
    catalogue's models not pulled yet. Reads metadata only: nothing is loaded or run."""
    rows: Dict[str, ModelRow] = {}
    pulled_dir = pulled_models_dir().resolve()
    for folder in model_dirs():
        for path in sorted(folder.glob("*.ts")) if folder.is_dir() else []:
            if path.name.startswith(".") or path.stem in rows:
                continue
            rows[path.stem] = _row(path, folder.resolve() == pulled_dir)
    try:
        entries = load_catalogue(catalogue)
    except PullError as e:
        rows["(catalogue)"] = ModelRow("(catalogue)", "error", "", "", problem=str(e))
        entries = {}
    for e in entries.values():
        if e.name not in rows:
            rows[e.name] = ModelRow(
                e.name, "not pulled", e.licence, e.source, e.quality, f"{e.title}; `stemforge models pull {e.name}`"
            )
    return list(rows.values())


def _row(path: Path, pulled: bool) -> ModelRow:
    name = path.stem
    try:
        info = read_info(path)
    except ModelError as e:
        return ModelRow(name, "file", "", str(path), path=path, problem=str(e))
    row = ModelRow(
        name,
        "file",
        info.license,
        str(path),
        path=path,
        info=info,
        size=path.stat().st_size,
        latency={rate: latency_of(info, rate) for rate in LIST_RATES},
    )
    record = path.with_name(f"{name}.pull.json")
    if name in PRESETS:
        row.status, row.source = "preset", f"shipped with stemforge ({path})"
    elif pulled and record.is_file():
        try:
            r = json.loads(record.read_text())
            urls = [f["url"] for f in r["files"]]
            row.status, row.quality = "pulled", r.get("quality", "")
            row.source = f"{r['source']}: {urls[0]}" + (f" and {len(urls) - 1} more" if len(urls) > 1 else "")
        except (OSError, ValueError, KeyError, TypeError) as e:
            row.problem = f"{record}: unreadable pull record ({e})"
    return row
