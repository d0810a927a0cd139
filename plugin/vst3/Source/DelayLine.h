// stemforge VST3 -- the bypass path: the input delayed by the plugin's latency.
// SPDX-License-Identifier: GPL-3.0-or-later
//
// A host that compensates the plugin's reported latency shifts its output earlier by that
// much; bypassed, the plugin must therefore still delay its input by the same amount, or the
// track plays early. The line is sized off the audio thread (with the stream it belongs to)
// and fed with the input on every block, processed or bypassed, so that switching bypass
// during playback keeps the timing.
#pragma once

#include <algorithm>
#include <vector>

namespace stemforge {

class DelayLine {
public:
    // Allocates: call off the audio thread.
    void init(int channels, int delay) {
        channels_ = std::max(channels, 1);
        delay_ = std::max(delay, 0);
        data_.assign(size_t(channels_) * size_t(std::max(delay_, 1)), 0.0f);
        pos_ = 0;
    }
    int delay() const { return delay_; }
    void clear() {
        std::fill(data_.begin(), data_.end(), 0.0f);
        pos_ = 0;
    }
    // io[c][0..n): the input in; the input of `delay` samples ago out if `produce`, else
    // unchanged. Channels beyond those of init() are left as they are.
    void process(float* const* io, int channels, int n, bool produce) {
        if (delay_ == 0) return;
        channels = std::min(channels, channels_);
        int pos = pos_;
        for (int c = 0; c < channels; ++c) {
            float* line = data_.data() + size_t(c) * size_t(delay_);
            float* x = io[c];
            pos = pos_;
            for (int i = 0; i < n; ++i) {
                const float in = x[i];
                if (produce) x[i] = line[pos];
                line[pos] = in;
                if (++pos == delay_) pos = 0;
            }
        }
        if (channels == 0) pos = int((pos_ + (long long)n) % delay_);
        pos_ = pos;
    }

private:
    int channels_ = 1, delay_ = 0, pos_ = 0;
    std::vector<float> data_;
};

}  // namespace stemforge
