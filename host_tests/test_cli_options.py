"""The command line's own face: help that speaks to users, --version, options checked
before any work, and the registry of commands (issue 10, defect 17)."""

from __future__ import annotations

import pytest
from pedalboard.io import AudioFile

from host_tests.helpers import music
from host_tests.helpers import run_cli as run


def test_version(cli_here):
    import stemforge

    result = cli_here("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"stemforge {stemforge.__version__}"


def test_separate_help_speaks_to_users():
    text = run("separate", "--help").stdout
    assert "StemSplitter" not in text and ">>>" not in text
    for option in ("--format", "--bit-depth", "--threads", "--filename", "{index:02d}"):
        assert option in text
    assert "aiff" in text and "16 or 24" in text


def test_every_option_has_help():
    from stemforge.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.dest != "help":
                assert action.help, f"stemforge {name} {'/'.join(action.option_strings) or action.dest}"


def test_render_help_shows_the_plan_format(cli_here):
    text = cli_here("render", "--help").stdout
    assert "see the README" not in text and "[[chain]]" in text and "[output]" in text


def test_commands_come_from_one_registry():
    from stemforge.cli import COMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == [c.name for c in COMMANDS]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--threshold", "2"], "--threshold 2: a probability"),
        (["--smooth", "-5"], "--smooth -5: seconds"),
    ],
)
def test_sections_refuses_rules_out_of_range(tmp_path, args, message, cli_here):
    src = tmp_path / "stream.wav"
    with AudioFile(str(src), "w", 44100, 2) as f:
        f.write(music(0.5))
    result = cli_here("sections", src, "-o", tmp_path / "out", "--model", "fixture-stream", *args)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_sections_of_an_empty_file_is_an_error(tmp_path, cli_here):
    src = tmp_path / "empty.wav"
    with AudioFile(str(src), "w", 44100, 2):
        pass
    result = cli_here("sections", src, "-o", tmp_path / "out", "--model", "fixture-stream")
    assert result.returncode == 1 and "holds no audio" in result.stderr
    assert "0 song" not in result.stdout


@pytest.mark.parametrize(
    "code",
    [
        "import stemforge",
        "from stemforge.cli import main; main(['--help'])",
    ],
)
def test_start_up_loads_neither_torch_nor_the_apps(code):
    """`import stemforge` and `stemforge --help` import torch, pedalboard and the apps only
    when a name or a command needs them (bench/import_time.py measures how long they take)."""
    import subprocess
    import sys

    probe = (
        f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stderr.split())
    assert "stemforge" in loaded
    heavy = {
        "torch",
        "numpy",
        "pedalboard",
        "soxr",
        "stemforge.core.loading",
        "stemforge.apps.render",
        "stemforge.apps.separate",
        "stemforge.apps.sections",
    } & loaded
    assert not heavy, f"{code!r} imported {sorted(heavy)}"


def test_the_default_model_is_named_in_one_place(monkeypatch):
    """`stemforge separate` takes its default model from DEFAULT_MODEL, as load_model does."""
    import stemforge.core.lookup as lookup
    from stemforge.cli import build_parser, chosen_model

    monkeypatch.setattr(lookup, "DEFAULT_MODEL", "live")
    args = build_parser(only="separate").parse_args(["separate", "song.wav"])
    assert chosen_model(args) == "live"
    assert lookup.resolve(None) == lookup.resolve("live")
