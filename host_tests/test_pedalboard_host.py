"""pedalboard as the host: native effects around the separator, files streamed in chunks."""

from __future__ import annotations

import numpy as np
import pedalboard
import pytest
from pedalboard import Compressor, Gain, HighpassFilter, Resample, Reverb
from pedalboard.io import AudioFile

from host_tests.helpers import music, stream
from stemforge import Chain, StemSeparator


def test_pedalboard_itself_cannot_hold_a_python_processor(stream_model):
    with pytest.raises(TypeError):
        pedalboard.Pedalboard([HighpassFilter(80), StemSeparator(stream_model)])


def test_chain_with_native_effects_before_and_after(stream_model):
    x = music(1.0)
    sep = StemSeparator(stream_model, stem="vocals")
    chain = Chain([HighpassFilter(80), Compressor(threshold_db=-20, ratio=4), sep, Reverb(room_size=0.3)])
    y = chain(x, 44100)
    assert y.shape == x.shape and y.dtype == np.float32
    by_hand = Reverb(room_size=0.3)(
        sep(Compressor(threshold_db=-20, ratio=4)(HighpassFilter(80)(x, 44100), 44100), 44100), 44100
    )
    np.testing.assert_allclose(y, by_hand, atol=1e-6)
    assert chain.is_effect and len(chain) == 4
    with pytest.raises(TypeError, match="is not a plugin"):
        Chain([HighpassFilter(80), "reverb"])


def test_chain_compensates_the_total_latency(stream_model):
    # A stemforge processor and a native plugin that reports latency (Resample):
    # offline, an impulse comes out where it went in.
    x = np.zeros((2, 20000), np.float32)
    x[:, 5000] = 1.0
    chain = Chain([Resample(22050), StemSeparator(stream_model, gains={}), Gain(0.0)])
    y = chain(x, 44100)
    assert y.shape == x.shape
    assert abs(int(np.argmax(np.abs(y[0]))) - 5000) <= 1


@pytest.mark.parametrize("sizes", [[512], [1, 999, 4096], [1], [3, 20000]])
def test_chain_streams_to_its_offline_output(stream_model, sizes):
    # Resample is a native plugin with latency: streaming, it returns fewer samples
    # and the Chain flushes it. Native filters lose their state when a call is larger
    # than the stream's first one; the Chain feeds them so that this never happens.
    x = music(0.6, 48000)
    chain = Chain(
        [
            HighpassFilter(100),
            StemSeparator(stream_model, stem="drums"),
            Resample(32000),
            Reverb(room_size=0.4),
            Gain(-3.0),
        ]
    )
    expected = chain(x, 48000)
    got = stream(chain, x, 48000, sizes)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_native_only_chain_streams_bit_exactly():
    x = music(0.5, 44100)
    chain = Chain([HighpassFilter(100), Compressor(threshold_db=-20), Resample(22050)])
    np.testing.assert_array_equal(stream(chain, x, 44100, [1, 999, 4096]), chain(x, 44100))


def test_file_streamed_in_chunks_through_audiofile(tmp_path, stream_model):
    src, dst = tmp_path / "mix.wav", tmp_path / "karaoke.wav"
    x = music(2.0, 48000)
    with AudioFile(str(src), "w", 48000, 2, bit_depth=32) as f:
        f.write(x)
    chain = Chain([HighpassFilter(40), StemSeparator(stream_model, gains={"vocals": 0.0})])
    with AudioFile(str(src)) as f, AudioFile(str(dst), "w", f.samplerate, f.num_channels, bit_depth=32) as out:
        while f.tell() < f.frames:
            out.write(chain.process(f.read(4410), f.samplerate, reset=False))
        out.write(chain.flush())
    with AudioFile(str(src)) as f:
        whole = f.read(f.frames)
    with AudioFile(str(dst)) as f:
        streamed = f.read(f.frames)
    np.testing.assert_allclose(streamed, chain(whole, 48000), atol=1e-6)


def test_chain_refuses_nan_and_a_changed_stream(stream_model):
    chain = Chain([StemSeparator(stream_model)])
    bad = music(0.1)
    bad[0, 10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        chain(bad, 44100)
    chain.process(music(0.1), 44100, reset=False)
    with pytest.raises(ValueError, match="reset"):
        chain.process(music(0.1, 48000), 48000, reset=False)


@pytest.mark.parametrize("chunk", [1000, 44100, 333])
def test_chain_is_chunk_invariant_around_native_plugins_with_latency(stream_model, chunk):
    """MP3Compressor works in frames and reports latency: its output depended on the
    sizes of the calls the Chain made; render streams files through the same Chain."""
    x = music(2.0)
    for plugins in (
        [pedalboard.MP3Compressor()],
        [pedalboard.MP3Compressor(), StemSeparator(stream_model, stem="vocals"), Compressor(threshold_db=-18)],
    ):
        chain = Chain(plugins)
        offline = chain(x, 44100)
        np.testing.assert_allclose(stream(chain, x, 44100, [chunk]), offline, atol=1e-6)
