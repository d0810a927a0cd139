"""StemSeparator's public API from plain Python: layouts, dtypes, options, bad input, threads."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch

import stemforge
from host_tests.helpers import db, music
from stemforge import StemSeparator, separate


@pytest.fixture(scope="module")
def mix():
    return music(1.5)


@pytest.mark.parametrize("layout", ["channels-first", "channels-last", "mono-1d", "mono-2d"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_offline_output_has_the_input_shape_and_layout(stream_model, mix, layout, dtype):
    x = {"channels-first": mix, "channels-last": mix.T, "mono-1d": mix[0], "mono-2d": mix[:1]}[layout].astype(dtype)
    sep = StemSeparator(stream_model, stem="vocals")
    y = sep(x, 44100)
    assert y.shape == x.shape and y.dtype == np.float32
    reference = sep(np.ascontiguousarray(mix[:1] if "mono" in layout else mix), 44100)
    np.testing.assert_array_equal(
        y.reshape(reference.shape) if "mono" in layout else (y.T if layout == "channels-last" else y), reference
    )


def test_pedalboard_conventions(stream_model, mix):
    sep = StemSeparator(stream_model, stem="vocals")
    assert sep.is_effect and not sep.is_instrument
    np.testing.assert_array_equal(sep(mix, 44100), sep.process(mix, 44100, buffer_size=1000))
    with pytest.raises(TypeError, match="floating point"):
        sep((mix * 32767).astype(np.int16), 44100)
    with pytest.raises(RuntimeError, match="Unable to determine channel layout"):
        sep(np.zeros((2, 2), np.float32), 44100)
    with pytest.raises(RuntimeError, match="Number of input dimensions must be 1 or 2"):
        sep(np.zeros((1, 2, 100), np.float32), 44100)
    for empty in (np.zeros((2, 0), np.float32), np.zeros(0, np.float32)):
        assert sep(empty, 44100).shape == empty.shape


@pytest.mark.parametrize("bad, where", [(np.nan, "NaN"), (np.inf, "Inf"), (-np.inf, "Inf")])
def test_nan_and_inf_are_refused_with_a_clear_error(stream_model, mix, bad, where):
    x = mix.copy()
    x[1, 777] = bad
    sep = StemSeparator(stream_model, stem="vocals")
    with pytest.raises(ValueError, match="NaN or Inf.*sample 777, channel 1"):
        sep(x, 44100)
    sep.prepare(44100, 2)
    with pytest.raises(ValueError, match="NaN or Inf"):
        sep.process_block(x[:, 700:828], 44100)
    with pytest.raises(ValueError, match="NaN or Inf"):
        separate(x, 44100, stream_model)


def test_bad_arguments_say_what_to_do(stream_model, mix):
    with pytest.raises(ValueError, match="unknown stem 'voice'; this model has drums, bass"):
        StemSeparator(stream_model, stem="voice")
    with pytest.raises(ValueError, match="unknown stem.*guitar"):
        StemSeparator(stream_model, gains={"guitar": 0.0})
    with pytest.raises(ValueError, match="not both"):
        StemSeparator(stream_model, stem="vocals", gains={"vocals": 0.0})
    with pytest.raises(ValueError, match="threads"):
        StemSeparator(stream_model, threads=0)
    sep = StemSeparator(stream_model, stem="vocals")
    with pytest.raises(ValueError, match="mono or stereo audio, got 6 channels"):
        sep(np.zeros((6, 1000), np.float32), 44100)
    for rate in (4000, 384000, 44100.5):
        with pytest.raises(ValueError, match="sample_rate"):
            sep(mix, rate)
    with pytest.raises(RuntimeError, match="after prepare"):
        StemSeparator(stream_model).latency_samples  # noqa: B018 (the access raises)


def test_stem_gains_and_karaoke_are_consistent(stream_model, mix):
    stems = separate(mix, 44100, stream_model)
    acapella = StemSeparator(stream_model, stem="vocals")(mix, 44100)
    karaoke = StemSeparator(stream_model, gains={"vocals": 0.0})(mix, 44100)
    rebalance = StemSeparator(stream_model, gains={"drums": 1.41, "vocals": 0.5})(mix, 44100)
    np.testing.assert_allclose(acapella, stems["vocals"], atol=1e-6)
    np.testing.assert_allclose(karaoke, mix - stems["vocals"], atol=1e-6)
    expected = 1.41 * stems["drums"] + stems["bass"] + stems["other"] + 0.5 * stems["vocals"]
    np.testing.assert_allclose(rebalance, expected, atol=1e-6)
    unity = StemSeparator(stream_model, gains={})(mix, 44100)
    assert db(unity - mix, mix) < -80


@pytest.mark.parametrize("name", ["fixture-stream", "fixture-window", "fixture-mono-22k"])
@pytest.mark.parametrize("rate", [44100, 48000, 96000])
def test_separate_returns_aligned_stems_that_sum_to_the_input(models, name, rate):
    x = music(1.0, rate)
    stems = separate(x, rate, models[name])
    assert list(stems) == ["drums", "bass", "other", "vocals"]
    assert all(s.shape == x.shape and s.dtype == np.float32 for s in stems.values())
    assert db(sum(stems.values()) - x, x) < -80
    assert all(np.isfinite(s).all() for s in stems.values())


def test_residual_option(models):
    # At 96 kHz a 44.1 kHz model cannot see the top octave: without the residual the
    # stems miss it; by default it goes into `other`, which keeps the sum exact.
    x = music(1.0, 96000)
    x[:, ::2] += 0.05  # energy at 48 kHz, above the model's band
    model = models["fixture-stream"]
    raw = separate(x, 96000, model, residual=None)
    assert db(sum(raw.values()) - x, x) > -40
    auto = separate(x, 96000, model)
    assert db(sum(auto.values()) - x, x) < -80
    into_bass = separate(x, 96000, model, residual="bass")
    np.testing.assert_allclose(into_bass["other"], raw["other"], atol=1e-6)
    assert db(sum(into_bass.values()) - x, x) < -80
    with pytest.raises(ValueError, match="residual stem 'piano'"):
        separate(x, 96000, model, residual="piano")
    assert list(separate(x, 96000, model, stems=["vocals", "drums"])) == ["vocals", "drums"]


def test_stereo_model_on_mono_and_mono_model_on_stereo(models):
    stereo, mono = music(1.0), music(1.0, channels=1)
    y = separate(mono[0], 44100, models["fixture-stream"])
    assert y["vocals"].shape == mono[0].shape
    y = separate(stereo, 44100, models["fixture-mono-22k"])
    # a mono model runs each channel on its own: the left stem depends on the left only
    left_only = separate(stereo[:1], 44100, models["fixture-mono-22k"])
    np.testing.assert_allclose(y["vocals"][:1], left_only["vocals"], atol=1e-6)


def test_threads_option_restores_the_callers_setting(stream_model, mix):
    before = torch.get_num_threads()
    one = StemSeparator(stream_model, stem="vocals", threads=1)
    seen = []
    original = one.model._module

    class Spy:  # records torch's thread count while the model runs
        def __getattr__(self, name):
            return getattr(original, name)

        def __call__(self, *args):
            seen.append(torch.get_num_threads())
            return original(*args)

    one.model = stemforge.load_model(stream_model.path)
    one.model._module = Spy()
    one._pipeline = None
    one(mix, 44100)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before


def test_processors_in_several_threads_do_not_disturb_each_other(stream_model):
    inputs = [music(1.0, seed=i) for i in range(4)]
    jobs = [("vocals", 1), ("drums", None), ("bass", 2), ("other", None)]
    expected = [StemSeparator(stream_model, stem=s)(x, 44100) for (s, _), x in zip(jobs, inputs)]
    results = [None] * 4

    def work(i):
        stem, threads = jobs[i]
        sep = StemSeparator(stream_model, stem=stem, threads=threads)
        sep.prepare(44100, 2)
        outs = [sep.process(inputs[i][:, k : k + 777], 44100, reset=False) for k in range(0, inputs[i].shape[1], 777)]
        results[i] = np.concatenate(outs + [sep.flush()], axis=1)

    before = torch.get_num_threads()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("shared", [False, True], ids=["two-models", "one-shared-model"])
def test_processors_in_two_threads_run_their_models_at_the_same_time(stream_model, shared):
    """No process-wide lock around model calls: each thread's first model call waits inside
    the call until the other thread is inside one too (a lock held for every call would
    leave one thread waiting outside: the barrier breaks), and each sees its own torch
    thread count while both run; afterwards threads start with torch's count as before."""
    inside_both = threading.Barrier(2, timeout=60)
    first = threading.local()
    seen, errors, results = {}, [], {}

    def observed(model):
        held = copy.copy(model)

        def step(x, state):
            if not getattr(first, "done", False):
                first.done = True
                inside_both.wait()
                seen[threading.current_thread().name] = torch.get_num_threads()
            return model.step(x, state)

        held.step = step
        return held

    one = observed(stream_model)
    held = {1: one, 2: one if shared else observed(stemforge.load_model(stream_model.path))}
    x = music(0.5)

    def work(threads):
        try:
            results[threads] = StemSeparator(held[threads], stem="vocals", threads=threads)(x, 44100)
        except Exception as e:  # a broken barrier: the calls did not overlap
            errors.append(e)

    def fresh_thread_count() -> int:  # what a thread that starts now is given
        count = []
        t = threading.Thread(target=lambda: count.append(torch.get_num_threads()))
        t.start()
        t.join()
        return count[0]

    default = fresh_thread_count()
    workers = [threading.Thread(target=work, args=(n,), name=f"threads={n}") for n in (1, 2)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors, errors
    assert seen == {"threads=1": 1, "threads=2": 2}
    assert fresh_thread_count() == default  # the process-wide default is restored too
    expected = StemSeparator(stream_model, stem="vocals")(x, 44100)
    for y in results.values():
        np.testing.assert_allclose(y, expected, atol=1e-6)


def test_one_separator_refuses_a_second_thread_while_a_call_runs(stream_model, mix):
    """One processor holds one stream's state: a call from another thread while a call
    runs is refused with a message saying what to do, and the running call's audio is
    untouched (unguarded, the threads' samples interleaved: wrong lengths, no error)."""
    inside, release = threading.Event(), threading.Event()
    held = copy.copy(stream_model)

    def step(x, state):  # the first model call waits until the other thread has tried
        if not inside.is_set():
            inside.set()
            release.wait()
        return stream_model.step(x, state)

    held.step = step
    sep = StemSeparator(held, stem="vocals")
    expected = StemSeparator(stream_model, stem="vocals")(mix, 44100)
    result = {}

    def first_call():
        try:
            result["audio"] = sep(mix, 44100)
        finally:
            inside.set()

    first = threading.Thread(target=first_call)
    first.start()
    inside.wait()
    try:
        for call in (
            lambda: sep(mix, 44100),
            lambda: sep.process_block(mix[:, :256], 44100),
            lambda: sep.process(mix, 44100, reset=False),
            sep.flush,
            sep.reset,
            lambda: sep.prepare(44100, 2),
        ):
            with pytest.raises(RuntimeError, match="give each thread its own StemSeparator"):
                call()
    finally:
        release.set()
        first.join()
    np.testing.assert_array_equal(result["audio"], expected)
    np.testing.assert_array_equal(sep(mix, 44100), expected)  # free again once the call is over


def one_sample_blocks(proc, x: np.ndarray, shape: str) -> np.ndarray:
    """Stream (2, n) `x` in blocks of `shape`, returned as (2, n): "(2,1)" one stereo sample
    channels-first, "(1,2)" one stereo sample channels-last, "(2,2)" two samples channels-last."""
    outs = []
    if shape == "(2,1)":
        outs = [proc.process(x[:, i : i + 1], 44100, reset=False) for i in range(x.shape[1])]
        outs.append(proc.flush())
        return np.concatenate([o for o in outs if o.size], axis=1)
    step = 1 if shape == "(1,2)" else 2
    outs = [
        proc.process(np.ascontiguousarray(x[:, i : i + step].T), 44100, reset=False) for i in range(0, x.shape[1], step)
    ]
    outs.append(proc.flush())
    return np.concatenate([o for o in outs if o.size], axis=0).T


@pytest.mark.parametrize(
    "shape, layout", [("(2,1)", "channels-first"), ("(1,2)", "channels-first"), ("(2,2)", "channels-last")]
)
@pytest.mark.parametrize(
    "make", [lambda m: StemSeparator(m, stem="vocals"), lambda m: stemforge.Chain([StemSeparator(m, stem="vocals")])]
)
def test_prepare_fixes_the_layout_of_tiny_blocks(stream_model, shape, layout, make):
    x = music(0.05)
    proc = make(stream_model)
    expected = proc(x, 44100)
    proc.prepare(44100, 2, layout)
    np.testing.assert_allclose(one_sample_blocks(proc, x, shape), expected, atol=1e-6)


def test_prepare_refuses_an_unknown_layout(stream_model):
    with pytest.raises(ValueError, match="channels-first"):
        StemSeparator(stream_model).prepare(44100, 2, "interleaved")


@pytest.mark.parametrize(
    "audio, message",
    [
        (np.zeros(64, np.float16), "astype\\(np.float32\\)"),
        ([0.0] * 64, "numpy array"),
        (np.zeros(64, np.int16), "integer PCM"),
    ],
)
def test_audio_that_is_not_a_float_array_is_a_type_error_saying_how_to_convert(stream_model, audio, message):
    for call in (
        lambda a: StemSeparator(stream_model)(a, 44100),
        lambda a: StemSeparator(stream_model).process_block(a, 44100),
        lambda a: stemforge.Chain([StemSeparator(stream_model)])(a, 44100),
        lambda a: separate(a, 44100, stream_model),
    ):
        with pytest.raises(TypeError, match=message) as e:
            call(audio)
        assert "integer" not in str(e.value) or message == "integer PCM"


def test_chain_takes_a_one_sample_mono_array_like_the_processor(stream_model):
    x = np.array([0.25], np.float32)
    sep = StemSeparator(stream_model, stem="vocals")
    np.testing.assert_allclose(stemforge.Chain([sep])(x, 44100), sep(x, 44100), atol=1e-7)
