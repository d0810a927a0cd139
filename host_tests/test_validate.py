"""`python build.py validate`: the industry's VST3 validators, built from their sources.

Building them takes minutes (pluginval about 25 on 2 cores), so the test suite never builds
them: it checks what the command says when their sources are missing, and runs Steinberg's
validator on the bundle when an earlier `python build.py validate` left it in the cache.
"""

from __future__ import annotations

import subprocess

import pytest

from host_tests.helpers import ROOT
from plugin.vst3 import validate


def fake_bundle(tmp_path):
    bundle = tmp_path / "stemforge.vst3"
    (bundle / "Contents" / "x86_64-linux").mkdir(parents=True)
    return bundle


@pytest.mark.parametrize("given", [False, True])
def test_missing_sources_are_named_with_what_to_fetch(tmp_path, given):
    args = ["--cache", str(tmp_path / "cache"), "--bundle", str(fake_bundle(tmp_path))]
    if given:
        args += ["--sources", str(tmp_path / "mirrors")]
    with pytest.raises(SystemExit) as e:
        validate.main(args)
    message = str(e.value)
    for repo in (
        "steinbergmedia/vst3sdk",
        "steinbergmedia/vst3_base",
        "steinbergmedia/vst3_pluginterfaces",
        "steinbergmedia/vst3_public_sdk",
        "steinbergmedia/vst3_cmake",
    ):
        assert f"git clone --mirror https://github.com/{repo} " in message
    assert "43b4e366ff84afc9b4247776acbf5e234683b77f" in message  # the SDK's tag 3.7.14
    assert ("--sources" in message) and not (tmp_path / "cache" / "vst3build").exists()


@pytest.mark.skipif(subprocess.run(["which", "dpkg-query"], capture_output=True).returncode != 0, reason="no dpkg")
def test_a_missing_build_package_is_named_before_the_build():
    """A -dev package pluginval needs (its headers) is refused with the apt line before the
    25-minute build starts, not reported as a compiler error in the middle of it."""
    with pytest.raises(validate.Missing) as e:
        validate.need_tools(["g++"], ["g++", "stemforge-no-such-package"])
    assert "missing stemforge-no-such-package;" in str(e.value) and "apt-get install" in str(e.value)
    validate.need_tools(["g++"], ["g++"])  # installed: no error


def test_no_bundle_says_how_to_build_it(tmp_path):
    with pytest.raises(SystemExit, match="python build.py plugin"):
        validate.main(["--bundle", str(tmp_path / "none.vst3")])


def test_summary_reads_both_validators_reports(tmp_path):
    passed, summary, _ = validate.run(
        "echo", ["sh", "-c", "echo '-> Result: 47 tests passed, 0 tests failed'"], tmp_path
    )
    assert passed and summary == "Result: 47 tests passed, 0 tests failed"
    passed, summary, _ = validate.run("echo", ["sh", "-c", "echo 'Result: 46 tests passed, 1 tests failed'"], tmp_path)
    assert not passed
    passed, summary, _ = validate.run(
        "pv", ["sh", "-c", "printf '!!! Test 1 failed: output not restored\\n'; echo FAILED; exit 1"], tmp_path
    )
    assert not passed and "output not restored" in summary


STEINBERG = validate.CACHE / "vst3build" / "bin" / "Release" / "validator"


@pytest.mark.skipif(
    not STEINBERG.is_file(),
    reason="Steinberg's validator is not built: python build.py "
    "validate --sources DIR builds it (see plugin/vst3/validate.py)",
)
@pytest.mark.parametrize("extensive", [False, True])
def test_steinberg_validator_passes_the_bundle(extensive):
    bundle = ROOT / "build" / "vst3" / "stemforge.vst3"
    if not bundle.is_dir():
        pytest.skip("no bundle: python build.py plugin")
    run = subprocess.run(
        [str(STEINBERG), *(["-e"] if extensive else []), str(bundle)], capture_output=True, text=True, timeout=900
    )
    tail = run.stdout[-3000:]
    assert run.returncode == 0 and " 0 tests failed" in run.stdout, tail
