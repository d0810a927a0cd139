"""DAW sessions that open with the exported stems on aligned tracks.

Two formats: DAWproject (the open exchange format read by Bitwig Studio,
Studio One and Cubase: a zip with project.xml and metadata.xml) and REAPER's
.rpp. Every track holds one clip at time 0 that spans the file, so the stems
line up with each other and with the original mix, which sits on a muted
track beside them. Clips are placed in seconds, so the session's tempo does
not move them (it is left at the DAW's neutral 120 BPM, 4/4).

Audio files are referenced, not copied, by paths relative to the session
file (absolute where no relative path exists, e.g. another drive). REAPER
cannot write a path holding all three of its quotes (", ' and `), nor one
holding a line break or another control character (it reads a project line
by line): such a file is reached through a hard link (else a symbolic link,
else a copy) beside the session, with the backticks and control characters
replaced.

Every DAWproject written is first checked against the official schema,
carried with its MIT licence in ``io/schemas/dawproject/`` (from
github.com/bitwig/dawproject).

>>> tracks = [SessionTrack("mix", Path("song.wav"), muted=True),
...           SessionTrack("vocals", Path("stems/song/vocals.wav"))]   # doctest: +SKIP
>>> write_session("dawproject", Path("stems/song/song.dawproject"), tracks, 44100, 2, 882000)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple
from xml.sax.saxutils import escape, quoteattr

from ..errors import ExportError

FORMATS = {"dawproject": ".dawproject", "reaper": ".rpp"}
DAWPROJECT_SCHEMAS = Path(__file__).resolve().parent / "schemas" / "dawproject"


@functools.lru_cache(maxsize=None)
def _schema(name: str):
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(DAWPROJECT_SCHEMAS / name)))


def check_dawproject_xml(text: str, schema: str) -> str:
    """`text` (a project.xml or metadata.xml) if it validates against the official
    DAWproject schema `schema` ("Project.xsd" or "MetaData.xsd"); else ExportError."""
    from lxml import etree

    try:
        doc = etree.fromstring(text.encode("utf-8"))
        valid = _schema(schema)
        if valid.validate(doc):
            return text
        problem = str(valid.error_log.last_error)
    except etree.XMLSyntaxError as e:
        problem = str(e)
    raise ExportError(
        f"the DAWproject session would not follow the DAWproject schema ({schema}: "
        f"{problem}); a track or file name holding control characters cannot go "
        "into XML: rename the file, or write --session reaper only. Otherwise this "
        "is a stemforge bug: please report it with this message"
    )


@dataclass(frozen=True)
class SessionTrack:
    name: str
    path: Path
    muted: bool = False


def _reference(audio: Path, session: Path) -> str:
    try:
        return Path(os.path.relpath(audio.resolve(), session.resolve().parent)).as_posix()
    except ValueError:  # no relative path between them (another drive)
        return audio.resolve().as_posix()


Region = Tuple[float, float, str]  # start and end in seconds, name


def _dawproject_markers(regions: Sequence[Region]) -> str:
    """DAWproject has point markers only: one at each region's start and end."""
    if not regions:
        return ""
    marks = []
    for start, end, name in regions:
        marks.append(f'      <Marker time="{start!r}" name={quoteattr(name)}/>')
        marks.append(f'      <Marker time="{end!r}" name={quoteattr(name + " end")}/>')
    return '\n    <Markers timeUnit="seconds" id="markers">\n' + "\n".join(marks) + "\n    </Markers>"


def _dawproject_xml(
    tracks: List[SessionTrack], session: Path, rate: int, channels: int, seconds: float, regions: Sequence[Region] = ()
) -> str:
    structure, lanes = [], []
    for i, t in enumerate(tracks):
        name = quoteattr(t.name)
        structure.append(f'''    <Track contentType="audio" loaded="true" id="track{i}" name={name}>
      <Channel audioChannels="{channels}" destination="master" role="regular" solo="false" id="channel{i}">
        <Mute value="{str(t.muted).lower()}" id="mute{i}" name="Mute"/>
        <Pan max="1.0" min="0.0" unit="normalized" value="0.5" id="pan{i}" name="Pan"/>
        <Volume max="2.0" min="0.0" unit="linear" value="1.0" id="volume{i}" name="Volume"/>
      </Channel>
    </Track>''')
        lanes.append(f'''      <Lanes track="track{i}" id="lanes{i}">
        <Clips id="clips{i}">
          <Clip time="0.0" duration="{seconds!r}" playStart="0.0" contentTimeUnit="seconds" name={name}>
            <Audio channels="{channels}" sampleRate="{rate}" duration="{seconds!r}" timeUnit="seconds" id="audio{i}">
              <File path={quoteattr(_reference(t.path, session))} external="true"/>
            </Audio>
          </Clip>
        </Clips>
      </Lanes>''')
    return check_dawproject_xml(
        f'''<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Project version="1.0">
  <Application name="stemforge" version="{escape(_package_version())}"/>
  <Transport>
    <Tempo max="666.0" min="20.0" unit="bpm" value="120.0" id="tempo" name="Tempo"/>
    <TimeSignature denominator="4" numerator="4" id="signature"/>
  </Transport>
  <Structure>
{chr(10).join(structure)}
    <Track contentType="audio" loaded="true" id="masterTrack" name="Master">
      <Channel audioChannels="{channels}" role="master" solo="false" id="master">
        <Volume max="2.0" min="0.0" unit="linear" value="1.0" id="masterVolume" name="Volume"/>
      </Channel>
    </Track>
  </Structure>
  <Arrangement id="arrangement">
    <Lanes timeUnit="seconds" id="arrangementLanes">
{chr(10).join(lanes)}
    </Lanes>{_dawproject_markers(regions)}
  </Arrangement>
</Project>
''',
        "Project.xsd",
    )


def _package_version() -> str:
    from ..version import __version__

    return __version__


def _metadata_xml(title: str) -> str:
    return check_dawproject_xml(
        f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<MetaData>
  <Title>{escape(title)}</Title>
  <Comment>Stems exported by stemforge {escape(_package_version())}</Comment>
</MetaData>
""",
        "MetaData.xsd",
    )


RPP_QUOTES = ('"', "'", "`")
RPP_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # a line break would end the line mid-string


def _rpp_string(text: str) -> str:
    """REAPER quotes strings with whichever quote the text does not contain; it has no
    escape, so a text holding all three loses its backticks (as REAPER itself writes it),
    and control characters (a newline in a file name) become spaces."""
    text = RPP_CONTROL.sub(" ", text)
    for q in RPP_QUOTES:
        if q not in text:
            return f"{q}{text}{q}"
    return "`" + text.replace("`", "'") + "`"


def _rpp_file(audio: Path, session: Path) -> str:
    """The quoted FILE of `audio` in the REAPER session `session`. A path holding all three
    quotes or a control character cannot be written: the file is then reached through a
    link beside the session, named like it with ' for ` and spaces for control characters
    (a hard link, else a symbolic link, else a copy)."""
    ref = _reference(audio, session)
    if not all(q in ref for q in RPP_QUOTES) and not RPP_CONTROL.search(ref):
        return _rpp_string(ref)
    folder = session.resolve().parent
    name = RPP_CONTROL.sub(" ", audio.name.replace("`", "'"))
    stem, suffix = Path(name).stem, Path(name).suffix
    candidates = [name] + [f"{stem} (mix{f' {k}' if k > 1 else ''}){suffix}" for k in range(1, 100)]
    for candidate in candidates:
        link = folder / candidate
        if link.exists() and os.path.samefile(link, audio):
            return _rpp_string(candidate)
        if link.exists() or link.is_symlink():
            continue
        try:
            os.link(audio, link)
        except OSError:
            try:
                os.symlink(audio.resolve(), link)
            except OSError:
                shutil.copy2(audio, link)
        return _rpp_string(candidate)
    raise ExportError(
        f"{audio}: REAPER cannot name a file holding \", ' and ` together or a line "
        f"break, and {folder} has no free name for a link to it; rename the file"
    )


REAPER_SOURCES = {".wav": "WAVE", ".aiff": "WAVE", ".aif": "WAVE", ".flac": "FLAC", ".ogg": "VORBIS", ".mp3": "MP3"}


def _reaper_text(
    tracks: List[SessionTrack], session: Path, rate: int, seconds: float, regions: Sequence[Region] = ()
) -> str:
    lines = ['<REAPER_PROJECT 0.1 "7.0/stemforge" 0', f"  SAMPLERATE {rate} 0 0", "  TEMPO 120 4 4"]
    for i, (start, end, name) in enumerate(regions, 1):
        # A region is a pair of MARKER lines with the region flag (1): start with its
        # name, end with an empty one.
        lines += [f"  MARKER {i} {start!r} {_rpp_string(name)} 1", f'  MARKER {i} {end!r} "" 1']
    for t in tracks:
        lines += [
            "  <TRACK",
            f"    NAME {_rpp_string(t.name)}",
            f"    MUTESOLO {int(t.muted)} 0 0",
            "    <ITEM",
            "      POSITION 0",
            f"      LENGTH {seconds!r}",
            f"      NAME {_rpp_string(t.name)}",
            f"      <SOURCE {REAPER_SOURCES.get(t.path.suffix.lower(), 'WAVE')}",
            f"        FILE {_rpp_file(t.path, session)}",
            "      >",
            "    >",
            "  >",
        ]
    lines.append(">")
    return "\n".join(lines) + "\n"


def _member(name: str) -> zipfile.ZipInfo:
    """A zip entry with a fixed date: the same export gives the same bytes, whenever and on
    whichever machine it runs (a cluster's output is compared with the local one's)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o600 << 16  # what writestr gives a member named by a string
    return info


def write_session(
    kind: str,
    path: Path,
    tracks: List[SessionTrack],
    sample_rate: int,
    channels: int,
    frames: int,
    title: str = "",
    regions: Sequence[Region] = (),
) -> Path:
    """Write a `kind` ("dawproject" or "reaper") session to `path`, atomically; `regions`
    (start s, end s, name) become REAPER regions or DAWproject markers."""
    if kind not in FORMATS:
        raise ValueError(f"unknown session format {kind!r}; choose one of {', '.join(FORMATS)}")
    seconds = frames / sample_rate
    from .writing import atomic_path

    with atomic_path(path) as tmp:
        if kind == "dawproject":
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr(
                    _member("project.xml"), _dawproject_xml(tracks, path, sample_rate, channels, seconds, regions)
                )
                z.writestr(_member("metadata.xml"), _metadata_xml(title or path.stem))
        else:
            tmp.write_text(_reaper_text(tracks, path, sample_rate, seconds, regions))
    return path
