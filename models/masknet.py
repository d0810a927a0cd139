"""MaskNet: the project's own stem separator architecture.

A convolutional network estimates soft masks on the mixture's STFT, one mask
per stem, normalised across stems with a softmax so that the masked spectra
add back up to the mixture's spectrum. Because the inverse STFT is linear and
the analysis/synthesis windows reconstruct perfectly, the stems then sum back
to the input signal to float precision.

Why this shape (the published recipe this product grows out of):
- masks on the STFT rather than waveform synthesis: cheap on CPU, and a mask
  can only remove energy, never invent it, so errors sound like leakage, not
  artefacts;
- temporal convolutions with dilations give a few hundred ms of context at a
  cost per hop that does not grow with the context;
- every convolution is causal; lookahead comes from applying the mask computed
  at frame t to frame t - K. The network therefore streams one hop at a time
  with explicit state, and running it over a whole sequence in one call gives
  the same numbers as running it hop by hop.

The streaming contract (see plugin/stemforge/core/loading.py):
    initial_state(batch) -> List[Tensor]
    forward(x: (B, C, T), state) -> ((B, S, C, T), new_state), T a multiple of hop,
    output delayed by `lookahead_samples` = n_fft - hop + K * hop.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor


class CausalBlock(nn.Module):
    """Residual dilated causal convolution over frames, with explicit state.

    Written as one Linear over the stacked taps rather than nn.Conv1d: the
    same arithmetic, but a single matrix product per call, where a dilated
    Conv1d on one frame falls into aten's slow per-frame path.
    """

    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.kernel = kernel
        self.dilation = dilation
        self.pad = (kernel - 1) * dilation
        self.taps = nn.Linear(kernel * channels, channels)
        # Normalising each frame over channels only keeps the block causal.
        self.norm = nn.LayerNorm(channels)

    def forward(self, h: Tensor, state: Tensor) -> Tuple[Tensor, Tensor]:
        # h: (B, frames, channels); state: (B, pad, channels), the frames before h.
        b, frames, channels = h.shape
        z = torch.cat([state, h], dim=1)
        # Tap i of frame t is z[:, t + i * dilation]: the stacked taps are one strided view of z
        # (a slice per tap and a concatenation cost an operator each, per block and per call).
        taps = z.as_strided((b, frames, self.kernel, channels), (z.stride(0), channels, self.dilation * channels, 1))
        y = self.norm(self.taps(taps.reshape(b, frames, self.kernel * channels)))
        return h + torch.relu(y), z[:, z.shape[1] - self.pad :]


def _windows(n_fft: int, hop: int, synthesis_length: int) -> Tuple[Tensor, Tensor]:
    """The analysis window (n_fft samples) and the synthesis window (its last
    `synthesis_length` samples, where it is not zero) whose product overlap-adds to one at
    this hop, so analysis, synthesis and overlap-add are an identity.

    With synthesis_length == n_fft both are Hann (the synthesis one divided by the constant
    overlap-add of Hann squared). A shorter synthesis window is what makes the model's own
    latency synthesis_length - hop instead of n_fft - hop: an output sample is final once the
    last frame whose synthesis window covers it has been computed. The analysis window then
    keeps the whole n_fft (the frequency resolution), rising as a square-root Hann over its
    first n_fft - synthesis_length / 2 samples and falling as one over the last
    synthesis_length / 2; the synthesis window is Hann(synthesis_length) divided by it, so
    their product is Hann(synthesis_length) at the frame's end (the asymmetric windows of
    Mauler and Martin, "A low delay, variable resolution, perfect reconstruction spectral
    analysis-synthesis system for speech enhancement", EUSIPCO 2007).
    """
    n, h, m = n_fft, hop, synthesis_length
    if m == n:
        window = torch.hann_window(n, periodic=True, dtype=torch.float64)
        product, synthesis = window**2, window
    else:
        half = m // 2
        rise = torch.hann_window(2 * (n - half), periodic=True, dtype=torch.float64)[: n - half]
        fall = torch.hann_window(2 * half, periodic=True, dtype=torch.float64)[half:]
        window = torch.cat([rise, fall]).sqrt()
        product = torch.hann_window(m, periodic=True, dtype=torch.float64)
        synthesis = product / window[n - m :]
        product = torch.nn.functional.pad(product, (n - m, 0))
    # Overlap-add of the product at this hop is constant; dividing the synthesis window by it
    # makes analysis+synthesis an identity.
    overlap = product.reshape(n // h, h).sum(0)
    if not torch.allclose(overlap, overlap[0].expand_as(overlap), rtol=1e-9, atol=0.0):
        raise ValueError("the windows do not overlap-add to a constant at this hop")
    return window, synthesis / overlap[0]


def _power_of_3(n: int) -> int:
    """k where n == 3**k, else -1."""
    k = 0
    while n > 1 and n % 3 == 0:
        n, k = n // 3, k + 1
    return k if n == 1 else -1


def _ninther(x: Tensor, dim: int, length: int) -> Tensor:
    """Tukey's recursive median of 3 over windows of `length` (a power of 3) along `dim`:
    out[i] approximates the median of x[i : i + length]. Median filters are what HPSS is
    built on; torch's median over unfolded windows made a 2.4 s studio training step take 5.4 s
    (17 x 17), these are 4 elementwise operators per level."""
    step = 1
    while step < length:
        n = x.shape[dim] - 2 * step
        a, b, c = x.narrow(dim, 0, n), x.narrow(dim, step, n), x.narrow(dim, 2 * step, n)
        x = torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))
        step *= 3
    return x


FRONT_CHANNELS = 16


class FrequencyConv(nn.Module):
    """Two strided convolutions along frequency (kernels 7 and 5, stride 2 each)."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, width, 7, stride=2, padding=3)
        self.conv2 = nn.Conv1d(width, width, 5, stride=2, padding=2)

    @staticmethod
    def out_bins(bins: int) -> int:
        half = (bins + 2 * 3 - 7) // 2 + 1
        return (half + 2 * 2 - 5) // 2 + 1

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.conv2(torch.relu(self.conv1(x))))


class MaskNet(nn.Module):
    """Streaming STFT mask estimator for `stems` sources of a `channels`-channel mix."""

    def __init__(
        self,
        n_fft: int = 1024,
        hop: int = 256,
        stems: int = 4,
        channels: int = 2,
        hidden: int = 64,
        kernel: int = 3,
        dilations: Tuple[int, ...] = (1, 2, 4),
        lookahead_frames: int = 2,
        mask_sharpness: "float | Sequence[float]" = 1.0,
        front: str = "linear",
        hpss: Tuple[int, int] = (0, 0),
        synthesis_length: int = 0,
    ):
        super().__init__()
        if n_fft % hop != 0:
            raise ValueError("n_fft must be a multiple of hop")
        synthesis_length = synthesis_length or n_fft
        if synthesis_length % hop or not 2 * hop <= synthesis_length <= n_fft:
            raise ValueError(f"synthesis_length: a multiple of the hop from {2 * hop} to n_fft {n_fft}")
        self.n_fft = n_fft
        self.hop = hop
        self.synthesis_length = synthesis_length
        self.n_stems = stems
        self.channels = channels
        self.n_bins = n_fft // 2 + 1
        self.hidden = hidden
        self.lookahead_frames = lookahead_frames
        # softmax(sharpness * logits) == m**sharpness / sum(m**sharpness): a Wiener-like
        # exponent on the trained masks, chosen after training (models/train.py tune), one
        # per stem or one for all; any values keep the masks summing to one, so the stems
        # still sum to the mix.
        self.register_buffer("mask_sharpness", torch.zeros(stems), persistent=False)  # chosen, not trained
        self.set_sharpness(mask_sharpness)
        window, synthesis = _windows(n_fft, hop, synthesis_length)
        self.register_buffer("window", window.float())
        self.register_buffer("synthesis_window", synthesis.float())
        self.front = front
        # What the classic baseline knows (issue 19): median-filter HPSS magnitudes of the
        # frame each mask applies to, as extra input channels and as a per-bin, per-stem skip
        # onto the mask logits. (time frames, frequency bins), powers of 3; (0, 0) is off.
        self.hpss_time, self.hpss_freq = int(hpss[0]), int(hpss[1])
        if self.hpss_time or self.hpss_freq:
            if _power_of_3(self.hpss_time) < 1 or _power_of_3(self.hpss_freq) < 1:
                raise ValueError("hpss needs two median lengths that are powers of 3 (time frames, frequency bins)")
        # The time median of the masked frame j reaches `hpss_ahead` frames ahead (up to the
        # lookahead, so it is centred when the lookahead allows) and `hpss_past` behind.
        self.hpss_ahead = min(self.hpss_time // 2, lookahead_frames)
        self.hpss_past = max(0, self.hpss_time - 1 - self.hpss_ahead)
        inputs = channels * (3 if self.hpss_time else 1)
        self.hpss_skip = nn.Parameter(torch.zeros(stems, 1, self.n_bins)) if self.hpss_time else None
        if front == "conv":
            # A small convolution along frequency, shared by every bin: harmonic and
            # formant patterns are learned once rather than bin by bin. It sees one
            # frame at a time, so it adds no state and no latency.
            self.front_conv = FrequencyConv(inputs, FRONT_CHANNELS)
            self.encoder = nn.Linear(FRONT_CHANNELS * self.front_conv.out_bins(self.n_bins), hidden)
        elif front == "linear":
            self.front_conv = None
            self.encoder = nn.Linear(inputs * self.n_bins, hidden)
        else:
            raise ValueError(f"unknown front end {front!r}: 'linear' or 'conv'")
        self.blocks = nn.ModuleList([CausalBlock(hidden, kernel, d) for d in dilations])
        self.decoder = nn.Linear(hidden, stems * channels * self.n_bins)
        self.receptive_frames = 1 + sum((kernel - 1) * d for d in dilations)

    @torch.jit.unused
    def set_sharpness(self, sharpness: "float | Sequence[float]") -> None:
        """The masks' exponent: one value, or one per stem."""
        values = [float(sharpness)] * self.n_stems if isinstance(sharpness, (int, float)) else list(sharpness)
        if len(values) != self.n_stems or min(values) <= 0:
            raise ValueError(f"mask sharpness: one positive value or {self.n_stems}, got {sharpness!r}")
        self.mask_sharpness.copy_(torch.tensor(values))

    @property
    def lookahead_samples(self) -> int:
        return self.synthesis_length - self.hop + self.lookahead_frames * self.hop

    @property
    def context_samples(self) -> int:
        # With HPSS, the features of the earliest frame in the receptive field describe a
        # masked frame K frames before it and reach hpss_past frames further back.
        frames = self.receptive_frames - 1 + (self.hpss_past if self.hpss_time else -self.lookahead_frames)
        return frames * self.hop + self.n_fft - self.hop

    @torch.jit.export
    def initial_state(self, batch: int) -> List[Tensor]:
        c, n, h = self.channels, self.n_fft, self.hop
        state = [
            torch.zeros(batch, c, n - h),
            torch.zeros(batch, c, self.lookahead_frames, self.n_bins, dtype=torch.complex64),
            torch.zeros(batch, self.n_stems, c, self.synthesis_length - h),
        ]
        for block in self.blocks:
            state.append(torch.zeros(batch, block.pad, self.hidden))
        if self.hpss_time:  # magnitudes of the hpss_past frames before the delayed spectrum
            state.append(torch.zeros(batch, c, self.hpss_past, self.n_bins))
        return state

    def masks(self, spec: Tensor) -> Tensor:
        """Masks (B, S, C, frames, bins) for spectra (B, C, frames, bins), from a zero
        state: mask t belongs to frame t - K. Training uses this directly."""
        b, c, frames, bins = spec.shape
        hpss = spec  # a placeholder, read only when HPSS is on (an empty tensor costs an operator per call)
        if self.hpss_time:
            with torch.no_grad():  # input features: nothing to learn inside them
                magnitude = spec.abs()
                zeros = torch.zeros(b, c, self.hpss_past + self.lookahead_frames, bins)
                hpss = self.hpss_features(torch.cat([zeros, magnitude], dim=2), frames)
        logits = self.logits(self.features(spec, hpss), hpss)
        return torch.softmax(logits * self.mask_sharpness.view(-1, 1, 1), dim=2).permute(0, 2, 3, 1, 4)

    def logits(self, features: Tensor, hpss: Tensor) -> Tensor:
        """Mask logits (B, frames, S, C, bins) from a zero state; see forward()."""
        b, frames = features.shape[0], features.shape[1]
        hidden = torch.relu(self.encoder(features))
        for block in self.blocks:
            hidden, _ = block(hidden, torch.zeros(b, block.pad, self.hidden))
        return self.skip(self.decoder(hidden).reshape(b, frames, self.n_stems, self.channels, self.n_bins), hpss)

    def skip(self, logits: Tensor, hpss: Tensor) -> Tensor:
        """Add the per-bin HPSS skip: weight[s, f] * (log harmonic - log percussive) of the
        masked frame. A softmax of such logits is a soft HPSS mask, the classic baseline's,
        which the hidden path then corrects; the weights start at zero."""
        skip = self.hpss_skip
        if skip is None:
            return logits
        c = self.channels
        ratio = (hpss[:, c : 2 * c] - hpss[:, 2 * c :]).transpose(1, 2).unsqueeze(2)  # (B, frames, 1, C, bins)
        return logits + skip * ratio

    def hpss_features(self, sequence: Tensor, frames: int) -> Tensor:
        """(B, 3C, frames, bins): log magnitude, log harmonic and log percussive of the frames
        the next `frames` masks apply to, each relative to that frame's level (so invariant to
        the input's level, as features() is). `sequence` (B, C, past + frames + ahead.., bins)
        holds magnitudes whose index hpss_past + j is masked frame j: the harmonic part is a
        (recursive) median over hpss_time frames around it (as far ahead as the lookahead allows), the
        percussive part a median over hpss_freq bins of the frame itself."""
        past, r = self.hpss_past, self.hpss_freq // 2
        centre = sequence[:, :, past : past + frames]
        harmonic = _ninther(sequence[:, :, : frames + self.hpss_time - 1], 2, self.hpss_time)
        percussive = _ninther(torch.nn.functional.pad(centre, (r, r)), 3, self.hpss_freq)
        level = centre.mean(dim=(1, 3), keepdim=True) + 1e-20
        return torch.log(torch.cat([centre, harmonic, percussive], dim=1) / level + 1e-3)

    def features(self, spec: Tensor, hpss: Tensor) -> Tensor:
        """(B, frames, features) from spectra (B, C, frames, bins), invariant to the input's level.

        Each frame's magnitudes are divided by their mean over channels and bins, so
        `g * x` gives the same features, the same masks and so `g * stems`: the model's
        output scales with its input by construction (the rendered-only models moved a
        song's vocals share by 16 dB over +-20 dB of input gain). The floor 1e-3 (-60 dB
        re the frame's mean) is relative too; 1e-20 only keeps digital silence finite.
        """
        b, c, frames, bins = spec.shape
        magnitude = spec.abs()
        level = magnitude.mean(dim=(1, 3), keepdim=True)
        x = torch.log(magnitude / (level + 1e-20) + 1e-3)
        if self.hpss_time:
            # With HPSS, step t also hears the masked frame t - K: its magnitude, harmonic and
            # percussive parts (hpss_features), after frame t's own magnitude.
            x = torch.cat([x, hpss[:, c:]], dim=1)
        inputs = x.shape[1]
        if self.front_conv is not None:
            y = self.front_conv(x.transpose(1, 2).reshape(b * frames, inputs, bins))
            return y.reshape(b, frames, y.shape[1] * y.shape[2])
        return x.transpose(1, 2).reshape(b, frames, inputs * bins)

    def spectra(self, x: Tensor) -> Tensor:
        """STFT frames of (B, ..., T) exactly as forward() frames a stream from zero state."""
        n, h = self.n_fft, self.hop
        padded = torch.nn.functional.pad(x, (n - h, 0))
        return torch.fft.rfft(padded.unfold(-1, n, h) * self.window, dim=-1)

    def forward(self, x: Tensor, state: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        b, c, t = x.shape
        n, h, s = self.n_fft, self.hop, self.n_stems
        frames_in = t // h
        signal = torch.cat([state[0], x], dim=2)
        spec = torch.fft.rfft(signal.unfold(2, n, h) * self.window, dim=-1)  # (B, C, frames, bins)
        # The mask computed at frame t belongs to frame t - K: delay the spectrum.
        delayed = torch.cat([state[1], spec], dim=2)

        hpss = spec  # a placeholder, read only when HPSS is on (an empty tensor costs an operator per call)
        hpss_state: List[Tensor] = []
        if self.hpss_time:
            past = state[3 + len(self.blocks)]
            sequence = torch.cat([past, delayed.abs()], dim=2)
            hpss = self.hpss_features(sequence, frames_in)
            hpss_state.append(sequence[:, :, frames_in : frames_in + self.hpss_past])
        hidden = torch.relu(self.encoder(self.features(spec, hpss)))
        new_state = [signal[:, :, t:]]
        block_states: List[Tensor] = []
        for i, block in enumerate(self.blocks):
            hidden, block_state = block(hidden, state[3 + i])
            block_states.append(block_state)
        logits = self.skip(self.decoder(hidden).reshape(b, frames_in, s, c, self.n_bins), hpss)
        masks = torch.softmax(logits * self.mask_sharpness.view(-1, 1, 1), dim=2).permute(0, 2, 3, 1, 4)

        new_state.append(delayed[:, :, frames_in:])
        grains = torch.fft.irfft(masks * delayed[:, :, :frames_in].unsqueeze(1), n=n, dim=-1)
        synthesis = self.synthesis_length
        if synthesis < n:  # the synthesis window is zero before the frame's last `synthesis` samples
            grains = grains[..., n - synthesis :]
        grains = (grains * self.synthesis_window).reshape(b, s, c, frames_in, synthesis // h, h)

        # Overlap-add: segment r of frame j lands on hop j + r. With the frames padded by
        # segments - 1 on each side, the segments landing on hop j are one strided view,
        # summed in one operator (shifted adds cost operators per segment; fold/col2im more).
        segments = synthesis // h
        rows = frames_in + segments - 1
        padded = torch.nn.functional.pad(grains, (0, 0, 0, 0, segments - 1, segments - 1)).contiguous()
        # view[..., j, q, :] = padded[..., j + q, segments - 1 - q, :]: segment r = segments - 1 - q of frame j - r
        view = padded.as_strided(
            (b, s, c, rows, segments, h),
            (padded.stride(0), padded.stride(1), padded.stride(2), segments * h, segments * h - h, 1),
            (segments - 1) * h,
        )
        out = torch.nn.functional.pad(state[2], (0, t)).reshape(b, s, c, rows, h) + view.sum(dim=4)
        out = out.reshape(b, s, c, t + synthesis - h)
        new_state.append(out[:, :, :, t:])
        return out[:, :, :, :t], new_state + block_states + hpss_state


class WindowMaskNet(nn.Module):
    """MaskNet run over one whole fixed window (contract kind "window").

    The window is processed from a zero state and padded with enough zeros to
    flush the lookahead, so the output is the window's stems, sample-aligned.
    """

    def __init__(self, net: MaskNet, window: int):
        super().__init__()
        if window % net.hop != 0:
            raise ValueError("window must be a multiple of the hop")
        self.net = net
        self.window = window
        self.lookahead = net.lookahead_samples
        self.padded = window + ((self.lookahead + net.hop - 1) // net.hop) * net.hop

    def forward(self, x: Tensor) -> Tensor:
        state = self.net.initial_state(x.shape[0])
        padded = torch.nn.functional.pad(x, (0, self.padded - x.shape[2]))
        y, _ = self.net(padded, state)
        return y[:, :, :, self.lookahead : self.lookahead + self.window]


class Cascade(nn.Module):
    """Two passes of one MaskNet (drums, bass, other, vocals): the second pass separates the
    voice again from what the first left once its drums and bass are taken out (its other +
    vocals), and `other` is that remainder minus the second pass's vocals.

    Why: on real band music the network hears the voice better without the drums and bass
    in its input (studio's vocals on the real-band validation songs 3.88 -> 4.44 dB, karaoke
    and solo voice kept; models/README.md, "Two passes"). Each pass is a partition of its
    input, so the stems still sum to the mix. The first pass's drums, bass and remainder wait
    one lookahead for the second, so the output is delayed by twice the MaskNet's lookahead.
    Same streaming contract as MaskNet: initial_state(batch), forward(x, state).
    """

    def __init__(self, net: MaskNet):
        super().__init__()
        if net.n_stems != 4:
            raise ValueError("a cascade needs the four stems drums, bass, other, vocals")
        self.net = net
        self.hop = net.hop
        self.states = len(net.initial_state(1))
        self.delay = net.lookahead_samples

    @torch.jit.unused
    def set_sharpness(self, sharpness: "float | Sequence[float]") -> None:
        self.net.set_sharpness(sharpness)

    @property
    def lookahead_samples(self) -> int:
        return 2 * self.delay

    @property
    def context_samples(self) -> int:
        # The second pass reads the first's output over its own context and lookahead.
        return 2 * self.net.context_samples + self.delay

    @torch.jit.export
    def initial_state(self, batch: int) -> List[Tensor]:
        waiting = torch.zeros(batch, 3, self.net.channels, self.delay)  # drums, bass, remainder
        return self.net.initial_state(batch) + self.net.initial_state(batch) + [waiting]

    def forward(self, x: Tensor, state: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        t = x.shape[2]
        first, first_state = self.net(x, state[: self.states])
        remainder = first[:, 2] + first[:, 3]
        second, second_state = self.net(remainder, state[self.states : 2 * self.states])
        line = torch.cat([state[2 * self.states], torch.stack([first[:, 0], first[:, 1], remainder], dim=1)], dim=3)
        waited = line[:, :, :, :t]
        vocals = second[:, 3]
        out = torch.stack([waited[:, 0], waited[:, 1], waited[:, 2] - vocals, vocals], dim=1)
        return out, first_state + second_state + [line[:, :, :, t:]]


# TorchScript names a class after its Python module, and the name is written into the model
# file. The files were first written with this module imported as `masknet`; keep that name
# now that it is `models.masknet`, so that the bytes do not depend on the package layout
# (the tests rebuild every file and compare it with models/).
for _cls in (CausalBlock, FrequencyConv, MaskNet, WindowMaskNet, Cascade):
    _cls._jit_override_qualname = f"__torch__.masknet.{_cls.__name__}"
