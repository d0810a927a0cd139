// stemforge VST3 -- the engine library: a C++ port of stemforge.core's real-time data path.
// SPDX-License-Identifier: GPL-3.0-or-later
//
// One stream, as stemforge.core.pipeline.Pipeline runs it for StemSeparator.process_block:
//
//   host input -> soxr (host -> model rate) -> StreamingEngine (hops, state, lookahead)
//              -> channel mapping -> soxr (model -> host rate) -> delay line -> stems
//
// plus the input itself through a delay line of the same length, so that the plugin can
// form the residual (input - sum of stems) exactly as the Python side does. Every stage
// mirrors its Python counterpart (named in the comments); host_tests/test_vst3.py checks
// that the two agree through real hosts.
//
// Real-time rules: all buffers are sized in sf_engine_create; sf_engine_process copies
// between them. Built for real time (realtime != 0, stemforge.core.realtime.DecoupledEngine),
// the model and the model -> host resampler run in a worker thread fed through preallocated
// single-producer, single-consumer rings: the audio thread never calls the model, allocates
// nothing and never waits; it resamples only its own input, and stems that are not ready when
// due are the input, delayed, in `other` and counted by the model hops they touch
// (sf_engine_misses). With a spare (realtime == 2), a second engine of the same model is fed
// the same input and runs every hop too, on its own worker: a hop the first worker has not
// made in time is taken from the spare's if it has (sf_engine_rescued). On a VM, whose virtual
// CPUs the hypervisor stops one at a time, the two workers are rarely held at once.
// Built for offline renders (realtime == 0), the calling thread runs the model when a hop is
// complete, exactly as before. The model's own forward (TorchScript) allocates its
// intermediates through torch's allocator: that cannot be avoided with libtorch.

#include "EngineApi.h"
#include "Contract.h"

#include <soxr.h>
#include <torch/script.h>
#include <ATen/Parallel.h>

#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr const char* kMetadataFile = "stemforge.json";
constexpr int kMinRate = 8000, kMaxRate = 192000;  // stemforge.core.resample
constexpr int kWorkerStep = 32768;                 // the most model-rate input the worker takes per run

// Durations in bins a twelfth of a factor of two wide (1 us to 4 s), with one writer and readers
// at any time (sf_engine_worker_times): the count, mean and maximum exact, quantiles to a bin (6 %).
struct TimeBins {
    static constexpr int kBins = 12 * 22;
    std::atomic<long long> bins[kBins];
    std::atomic<long long> count;
    std::atomic<double> sum, max;

    TimeBins() { clear(); }
    void clear() {
        for (auto& b : bins) b.store(0, std::memory_order_relaxed);
        count.store(0, std::memory_order_relaxed);
        sum.store(0.0, std::memory_order_relaxed);
        max.store(0.0, std::memory_order_relaxed);
    }
    void add(double seconds) {  // the one writer's
        const double us = seconds * 1e6;
        const int bin = us <= 1.0 ? 0 : std::min(kBins - 1, int(12.0 * std::log2(us)));
        bins[bin].store(bins[bin].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        sum.store(sum.load(std::memory_order_relaxed) + seconds, std::memory_order_relaxed);
        if (seconds > max.load(std::memory_order_relaxed)) max.store(seconds, std::memory_order_relaxed);
        count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    // the upper edge of the bin that holds the q-quantile (never more than the maximum)
    double quantile(double q) const {
        const long long n = count.load(std::memory_order_acquire);
        if (n == 0) return 0.0;
        const long long rank = std::max(1LL, (long long)std::ceil(q * double(n)));
        long long seen = 0;
        for (int b = 0; b < kBins; ++b) {
            seen += bins[b].load(std::memory_order_relaxed);
            if (seen >= rank) return std::min(std::exp2((b + 1) / 12.0) * 1e-6, max.load(std::memory_order_relaxed));
        }
        return max.load(std::memory_order_relaxed);
    }
    double mean() const {
        const long long n = count.load(std::memory_order_acquire);
        return n ? sum.load(std::memory_order_relaxed) / double(n) : 0.0;
    }
};

long long steadyNanoseconds() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void setError(char* err, size_t errlen, const std::string& message) {
    if (err == nullptr || errlen == 0) return;
    std::snprintf(err, errlen, "%s", message.c_str());
}

std::string lastLine(const std::string& text) {  // torch's messages carry a C++ backtrace
    std::string s = text;
    auto pos = s.find("\nException raised from");
    if (pos != std::string::npos) s = s.substr(0, pos);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    pos = s.rfind('\n');
    return pos == std::string::npos ? s : s.substr(pos + 1);
}

// ------------------------------------------------------------------------------- metadata
struct Info {  // stemforge.core.contract.ModelInfo, the fields the engine needs
    std::string name, version, kind, tail = "pad", normalization = "none";
    int sample_rate = 0, channels = 0, hop = 0, window = 0, lookahead = 0, context = 0, padded_window = 0;
    double transition_power = 1.0;
    std::vector<std::string> stems;
    bool sums_to_mix = false, untrained = false;
};

// The metadata as the contract (plugin/stemforge/core/contract.json, Contract.h) checks it, with
// its messages: the same checks, in the same order, as stemforge.core.contract in Python.
Info parseInfo(const std::string& text, const std::string& where) {
    stemforge::Json d;
    try {
        d = stemforge::Contract::get().check(text);
    } catch (const stemforge::ContractError& e) { throw std::runtime_error(where + ": " + e.what()); }
    auto integer = [&](const char* k) { return int(d.at(k).num); };  // the contract bounds them
    Info info;
    info.name = d.at("name").str;
    info.version = d.at("version").str;
    info.kind = d.at("kind").str;
    info.sample_rate = integer("sample_rate");
    info.channels = integer("channels");
    info.lookahead = integer("lookahead");
    info.context = integer("context");
    info.hop = integer("hop");
    info.window = integer("window");
    info.padded_window = integer("padded_window");
    info.sums_to_mix = d.at("sums_to_mix").b;
    info.untrained = d.at("untrained").b;
    info.tail = d.at("tail").str;
    info.normalization = d.at("input_normalization").str;
    info.transition_power = d.at("transition_power").num;
    for (const auto& s : d.at("stems").items) info.stems.push_back(s.str);
    return info;
}

// ------------------------------------------------------------------ a fixed-capacity FIFO
// stemforge.core.fifo.SampleFifo with a capacity fixed up front: planar channels.
class Fifo {
public:
    void init(int channels, int capacity) {
        channels_ = channels;
        capacity_ = std::max(capacity, 1);
        data_.assign(size_t(channels_) * capacity_, 0.0f);
        start_ = end_ = 0;
    }
    int size() const { return end_ - start_; }
    int channels() const { return channels_; }
    void clear() { start_ = end_ = 0; }
    bool reserve(int n) {  // make room for n samples at the end; false if full
        if (end_ + n > capacity_) {
            int sz = size();
            if (sz + n > capacity_) return false;
            for (int c = 0; c < channels_; ++c) std::memmove(ch(c), ch(c) + start_, sizeof(float) * size_t(sz));
            start_ = 0;
            end_ = sz;
        }
        return true;
    }
    float* writePtr(int c) { return ch(c) + end_; }
    void commit(int n) { end_ += n; }
    const float* readPtr(int c) const { return data_.data() + size_t(c) * capacity_ + start_; }
    void drop(int n) {
        start_ += std::min(n, size());
        if (start_ == end_) start_ = end_ = 0;
    }
    bool appendZeros(int n) {
        if (!reserve(n)) return false;
        for (int c = 0; c < channels_; ++c) std::fill(writePtr(c), writePtr(c) + n, 0.0f);
        commit(n);
        return true;
    }

private:
    float* ch(int c) { return data_.data() + size_t(c) * capacity_; }
    int channels_ = 0, capacity_ = 1, start_ = 0, end_ = 0;
    std::vector<float> data_;
};

// ------------------------------------------------------------------------------ resampling
// stemforge.core.resample.StreamResampler over python-soxr's ResampleStream(quality=...,
// dtype="float32"): the same libsoxr calls (soxr_create with the recipe, float32 interleaved;
// soxr_process on input chunks of soxr_chunk_rate (contract.json) * in / out samples, as
// python-soxr does internally, with idone NULL and an output
// room of soxr_delay() + n * ratio + 1), so both sides produce the same samples at the same
// times, and the latency bound computed the same way holds for both.
class Resampler {
public:
    ~Resampler() {
        if (s_) soxr_delete(s_);
        if (spare_) soxr_delete(spare_);
    }
    void init(int inRate, int outRate, int channels, int maxIn, unsigned long recipe) {
        in_ = inRate;
        out_ = outRate;
        channels_ = channels;
        recipe_ = recipe;
        identity_ = inRate == outRate;
        ratio_ = double(outRate) / double(inRate);
        if (identity_) return;
        s_ = create();
        inBuf_.assign(size_t(maxIn) * channels_, 0.0f);
        outCap_ = int(std::ceil(maxIn * ratio_)) + 65536;
        outBuf_.assign(size_t(outCap_) * channels_, 0.0f);
    }
    bool identity() const { return identity_; }
    // Off the audio thread: a fresh resampler for the next reset (soxr_create allocates).
    void makeSpare() {
        if (identity_) return;
        if (spare_) soxr_delete(spare_);
        spare_ = nullptr;
        spare_ = create();
    }
    // Real time: the fresh spare takes over; the used one waits for makeSpare to replace it.
    void useSpare() { std::swap(s_, spare_); }
    // A fresh stream in place, for the worker (which may allocate).
    void restart() {
        if (identity_) return;
        soxr_delete(s_);
        s_ = nullptr;
        s_ = create();
    }
    // planar in (n samples) -> appended to `dst` (planar); false if dst is full or soxr fails
    bool process(const float* const* in, int n, Fifo& dst, std::string& error) {
        if (identity_) {
            if (!dst.reserve(n)) {
                error = "internal error: a buffer is full";
                return false;
            }
            for (int c = 0; c < channels_; ++c) std::memcpy(dst.writePtr(c), in[c], sizeof(float) * size_t(n));
            dst.commit(n);
            return true;
        }
        for (int i = 0; i < n; ++i)
            for (int c = 0; c < channels_; ++c) inBuf_[size_t(i) * channels_ + c] = in[c][i];
        size_t olen = size_t(soxr_delay(s_) + n * ratio_ + 1);
        olen = std::min(olen, size_t(outCap_));
        static const double chunkRate = stemforge::Contract::get().resampling().at("soxr_chunk_rate").num;
        const size_t chunk = size_t(chunkRate * double(in_) / double(out_));
        size_t outPos = 0, odone = 0;
        soxr_error_t err = nullptr;
        for (size_t idx = 0; idx < size_t(n); idx += chunk) {
            err = soxr_process(s_, inBuf_.data() + idx * channels_, std::min(chunk, size_t(n) - idx), nullptr,
                               outBuf_.data() + outPos * channels_, olen - outPos, &odone);
            outPos += odone;
        }
        if (err) {
            error = std::string("soxr: ") + err;
            return false;
        }
        if (!dst.reserve(int(outPos))) {
            error = "internal error: a buffer is full";
            return false;
        }
        for (int c = 0; c < channels_; ++c) {
            float* w = dst.writePtr(c);
            for (size_t i = 0; i < outPos; ++i) w[i] = outBuf_[i * channels_ + c];
        }
        dst.commit(int(outPos));
        return true;
    }

    // StreamResampler.worst_holdback: the most output samples a fresh stream owes over
    // `seconds` of input fed one sample at a time.
    static double worstHoldback(int inRate, int outRate, unsigned long recipe, double seconds) {
        if (inRate == outRate) return 0.0;
        soxr_error_t err = nullptr;
        soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
        soxr_quality_spec_t q = soxr_quality_spec(recipe, 0);
        soxr_t s = soxr_create(inRate, outRate, 1, &err, &io, &q, nullptr);
        if (err) throw std::runtime_error(std::string("soxr: ") + err);
        const double ratio = double(outRate) / double(inRate);
        float one = 0.0f;
        std::vector<float> out(65536);
        long got = 0;
        double worst = 0.0;
        const long count = long(seconds * inRate);
        for (long n = 1; n <= count; ++n) {
            size_t olen = std::min(size_t(soxr_delay(s) + 1 * ratio + 1), out.size());
            size_t odone = 0;
            soxr_process(s, &one, 1, nullptr, out.data(), olen, &odone);
            got += long(odone);
            worst = std::max(worst, double(n) * ratio - double(got));
        }
        soxr_delete(s);
        return worst;
    }

private:
    soxr_t create() const {
        soxr_error_t err = nullptr;
        soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
        soxr_quality_spec_t q = soxr_quality_spec(recipe_, 0);
        soxr_t s = soxr_create(in_, out_, unsigned(channels_), &err, &io, &q, nullptr);
        if (err) throw std::runtime_error(std::string("soxr: ") + err);
        return s;
    }
    soxr_t s_ = nullptr, spare_ = nullptr;
    int in_ = 0, out_ = 0, channels_ = 0, outCap_ = 0;
    unsigned long recipe_ = SOXR_HQ;
    bool identity_ = true;
    double ratio_ = 1.0;
    std::vector<float> inBuf_, outBuf_;
};

// resample.recipes(realtime_policy, ...), StemSeparator's default and the only real-time path,
// from the contract's resampling table (contract.json, "resampling"; the measurements behind
// it are in stemforge.core.resample and docs/performance.md): the policy's recipe host -> model, and
// the first of its recipes model -> host whose worst hold-back is within out_holdback_seconds
// of host audio, else the last.
unsigned long soxrRecipe(const std::string& name) {
    static const std::map<std::string, unsigned long> known{
        {"QQ", SOXR_QQ}, {"LQ", SOXR_LQ}, {"MQ", SOXR_MQ}, {"HQ", SOXR_HQ}, {"VHQ", SOXR_VHQ}};
    auto it = known.find(name);
    if (it == known.end()) throw std::logic_error("contract.json: unknown soxr recipe " + name);
    return it->second;
}

std::pair<unsigned long, unsigned long> recipes(int hostRate, int modelRate) {
    const auto& r = stemforge::Contract::get().resampling();
    const auto& policy = r.at("policies").at(r.at("realtime_policy").str);
    const auto& outs = policy.at("out").items;
    const double limit = r.at("out_holdback_seconds").num * hostRate;
    const double probe = r.at("probe_seconds").num;
    for (size_t k = 0; k + 1 < outs.size(); ++k)
        if (Resampler::worstHoldback(modelRate, hostRate, soxrRecipe(outs[k].str), probe) <= limit)
            return {soxrRecipe(policy.at("in").str), soxrRecipe(outs[k].str)};
    return {soxrRecipe(policy.at("in").str), soxrRecipe(outs.back().str)};
}

struct Resampling {
    std::pair<unsigned long, unsigned long> recipes;  // (host -> model, model -> host)
    std::pair<double, double> holdbacks;              // pipeline.resampler_holdbacks (model, host samples)
};

// pipeline.resampler_recipes and resampler_holdbacks, cached as there.
Resampling resampling(int hostRate, int modelRate) {
    static std::mutex lock;
    static std::map<std::pair<int, int>, Resampling> cache;
    std::lock_guard<std::mutex> guard(lock);
    auto key = std::make_pair(hostRate, modelRate);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    Resampling value;
    value.recipes = recipes(hostRate, modelRate);
    const double probe = stemforge::Contract::get().resampling().at("probe_seconds").num;
    value.holdbacks = std::make_pair(Resampler::worstHoldback(hostRate, modelRate, value.recipes.first, probe),
                                     Resampler::worstHoldback(modelRate, hostRate, value.recipes.second, probe));
    cache[key] = value;
    return value;
}

// Pipeline.latency: host samples by which the output can lag the input, for any blocking.
// (samples the model sees per chunk, left context of a full chunk): WindowEngine._padding
std::pair<int, int> windowPadding(const Info& info) {
    const int padded = info.tail == "center" ? info.padded_window : info.window;
    return {padded, (padded - info.window) / 2};
}

int engineDelay(const Info& info) {  // StreamingEngine / WindowEngine .realtime_delay
    if (info.kind == "window") {
        auto p = windowPadding(info);
        return p.first - p.second - 1;
    }
    return info.lookahead + info.hop - 1;
}

int latencyFor(const Info& info, int hostRate, int headroom = 0) {
    const int hEng = engineDelay(info) + headroom;
    if (hostRate == info.sample_rate) return hEng;
    auto h = resampling(hostRate, info.sample_rate).holdbacks;
    return int(std::ceil((h.first + hEng) * double(hostRate) / double(info.sample_rate) + h.second));
}

// pipeline.realtime_headroom: model samples between a hop's completion and the moment its
// stems are due in real time: `wanted` (<= 0: a hop, the model's time per hop anyway), and at
// least the most model samples one host block of maxBlock brings (a hop completed by a block's
// first samples would otherwise be due in that same block, before the worker could run it).
int realtimeHeadroom(const Info& info, int hostRate, int maxBlock, int wanted) {
    if (wanted <= 0) wanted = info.hop;
    if (hostRate == info.sample_rate) return std::max(wanted, maxBlock);
    const double hIn = resampling(hostRate, info.sample_rate).holdbacks.first;
    return std::max(wanted, int(std::ceil(double(maxBlock) * info.sample_rate / hostRate + hIn)) + 1);
}

// torch's intra-op thread count is process-wide: one thread around each call, then the
// caller's setting back (loading.torch_threads).
struct OneThread {
    int previous;
    OneThread() : previous(at::get_num_threads()) {
        if (previous != 1) at::set_num_threads(1);
    }
    ~OneThread() {
        if (previous != 1) at::set_num_threads(previous);
    }
};

}  // namespace

struct sf_model {
    torch::jit::Module module;
    Info info;
    std::string path;
};

struct sf_engine {
    sf_model* model = nullptr;
    int hostRate = 0, hostChannels = 0, maxBlock = 0;
    int batch = 1, modelChannels = 2, stems = 4, hop = 0;
    int latency = 0, toDrop = 0, lookahead = 0;
    Resampler resampleIn, resampleOut;
    Fifo modelIn;               // model-rate input waiting for a whole hop (batch * model channels)
    Fifo modelStems;            // model-rate stems of this block, host channel layout (stems * host channels)
    Fifo hostStems;             // host-rate stems, led by `latency` zeros: the delay line
    Fifo dry;                   // the input, led by `latency` zeros
    std::vector<float> hopBuf;  // (batch, model channels, hop), the model's input tensor
    torch::Tensor hopTensor;
    c10::List<at::Tensor> state, initialState;
    // What a reset needs, made ahead off the audio thread (sf_engine_refresh): fresh resamplers
    // and a fresh copy of the initial state; `used` keeps what a reset replaced until then,
    // so that the audio thread neither allocates nor frees.
    std::atomic<bool> sparesReady{false};
    c10::List<at::Tensor> spareState, used;
    // sf_engine_refresh may be called from two threads at once (offline, the plugin's render
    // thread refreshes for a reset while its loader thread refreshes for the next one): one at
    // a time, or both replace the same spare and the reset swaps in a deleted or null one.
    std::mutex refreshing;
    std::vector<const float*> ptrs;
    // window kind: stemforge.core.engine.WindowEngine in real-time mode (no flush)
    bool windowed = false, normalize = false, centered = false;
    int W = 0, P = 0, left = 0, keep = 0;
    long long offset = 0, inputStart = 0, received = 0, statsEnd = 0;
    long long statCount = 0;
    double statTotal = 0.0, statSquares = 0.0;
    std::vector<float> weights;   // (W,) Demucs's triangular cross-fade weights
    std::vector<float> acc;       // (batch * stems * channels, W) what earlier chunks added from offset
    std::vector<float> wsum;      // (W,)
    std::vector<float> chunkBuf;  // (batch, channels, P): what the model sees
    std::vector<float> doneBuf;   // (batch, stems, channels, hop): the completed samples
    std::vector<float> statBuf;   // (batch, channels, P): raw samples for the running statistics
    torch::Tensor chunkTensor;
    // Real time: the audio thread only copies. Its host-rate input goes into inRing; the worker
    // thread runs both resamplers (then its own) and the model: host -> model rate, every whole
    // hop through the model, the stems model -> host rate into outRing. Positions in both rings
    // are host samples (inRing's of the input, outRing's of the output).
    bool realtime = false;
    int headroom = 0;            // model samples from a hop's completion to its stems' due time
    int holdIn = 0;              // the most model samples the input resampler holds back
    int hostStep = 0;            // the most host input the worker takes per run
    int fallback = 0;            // the stem a missed hop's input goes to
    Fifo workerRaw;              // the worker's host-rate input of one run (host channels)
    Fifo workerIn;               // ... at the model rate (model layout)
    Fifo workerStems;            // the worker's model-rate stems of one run (host layout)
    Fifo workerHost;             // ... and at the host rate
    std::vector<float> inRing;   // (host channels) rows of capIn: input, by stream position
    std::vector<float> outRing;  // (stems * host channels) rows of capOut: stems, by host position
    int capIn = 0, capOut = 0;
    // Stream positions only grow: a reset (the audio thread's, real-time safe) starts the new
    // stream at `origin` (input) and `hostOrigin` (output), past every position of the old one,
    // and asks the worker (resetGen) to start its side afresh there; until it has (ackGen),
    // nothing it made counts as ready.
    long long origin = 0, hostOrigin = 0;  // the audio thread's: where its stream starts
    long long hostIn = 0;                  // the audio thread's: host samples in since the origin
    long long emitted = 0;                 // the audio thread's: host position of the stems delivered
    long long lastMissedHop = -1;          // the audio thread's: the last model hop counted as missed
    std::atomic<long long> written{0}, gapEnd{0}, consumed{0};  // written by the audio thread only
    std::atomic<long long> resetOrigin{0}, resetHostOrigin{0};
    std::atomic<unsigned> resetGen{0};                       // written by the audio thread only
    std::atomic<long long> taken{0}, produced{0}, valid{0};  // written by the worker only
    std::atomic<unsigned> ackGen{0}, failedGen{0};           // written by the worker only
    // The worker's, in model samples from its stream's start: the input resampler's output so
    // far (modelAt), what of it is still to be dropped (skipIn: the rest of a hop cut by an
    // overflow), and how far the stems fed to the output resampler reach (modelMade).
    long long modelAt = 0, skipIn = 0, modelMade = 0;
    std::atomic<long long> misses{0};
    // The worker's account of its time (sf_engine_worker_times) since it took up the last reset,
    // written by the worker only: how long after the audio thread woke it each run started
    // (waits), how long the run took (runs), its model calls, and the runs that ended more than
    // the headroom after the wake-up (lateRuns). wokenAt: the steady clock (ns) when the audio
    // thread first woke the worker after its last run (0: not since); the worker takes it.
    std::atomic<long long> wokenAt{0}, lateRuns{0};
    TimeBins waits, runs, calls;
    // what the system saw of the late runs (sf_worker_times' late_*), written by the worker only
    std::atomic<double> lateSpan{0.0}, lateSchedDelay{0.0};
    std::atomic<long long> lateFaults{0};
    std::atomic<bool> schedKnown{false};  // the worker can read its scheduler's delays
    std::atomic<bool> workerFailed{false}, quit{false};
    std::string workerError;  // written before workerFailed is set
    std::mutex work;          // held by the worker while it runs; free and sf_engine_hold take it
    sem_t wake;
    bool wakeReady = false, adopted = false;
    // sf_engine_process_mixed's planar buffers: the input, and one channel of the sum
    std::vector<float> mixIn, mixSum;
    std::thread worker;
    // realtime == 2: the spare engine (real time, no spare of its own), fed the same blocks, so
    // that its stream positions are this one's; the audio thread reads its output ring where
    // this engine's worker is late. rescued: hops delivered from it (written by the audio thread)
    sf_engine* spare = nullptr;
    std::atomic<long long> rescued{0};
    long long lastRescuedHop = -1;
    int held = 0;  // the workers sf_engine_hold holds (bit 0: this engine's, bit 1: the spare's)
};

extern "C" {

int sf_abi(void) { return SF_ENGINE_ABI; }

sf_model* sf_model_load(const char* cpath, sf_model_info* out, char* err, size_t errlen) {
    std::string where = cpath ? cpath : "";
    try {
        {
            std::ifstream f(where, std::ios::binary);
            if (!f) {
                setError(err, errlen, where + ": no such model file");
                return nullptr;
            }
            char magic[4] = {0, 0, 0, 0};
            f.read(magic, 4);
            if (!(magic[0] == 'P' && magic[1] == 'K')) {
                setError(err, errlen, where + ": not a TorchScript model file (not a zip archive)");
                return nullptr;
            }
        }
        torch::jit::ExtraFilesMap extra{{kMetadataFile, ""}};
        auto model = std::make_unique<sf_model>();
        try {
            model->module = torch::jit::load(where, torch::kCPU, extra);
        } catch (const std::exception& e) {
            setError(err, errlen, where + ": torch::jit::load cannot read it (" + lastLine(e.what()) + ")");
            return nullptr;
        }
        if (extra[kMetadataFile].empty()) {
            setError(err, errlen,
                     where + ": no " + std::string(kMetadataFile)
                         + " metadata inside; build model files with build.py or stemforge's importers");
            return nullptr;
        }
        model->info = parseInfo(extra[kMetadataFile], where);
        model->path = where;
        model->module.eval();
        const Info& info = model->info;
        if (info.kind == "streaming" && !model->module.find_method("initial_state")) {
            setError(err, errlen, where + ": a streaming model must export initial_state(batch)");
            return nullptr;
        }
        // Model.check: run once on silence and verify the output's shape.
        {
            OneThread one;
            c10::InferenceMode guard;
            const int s = int(info.stems.size()), c = info.channels;
            try {
                at::Tensor t;
                int n;
                if (info.kind == "streaming") {
                    n = 2 * info.hop;
                    auto st = model->module.run_method("initial_state", 1);
                    auto y = model->module.forward({torch::zeros({1, c, info.hop}), st}).toTuple();
                    auto y2 = model->module.forward({torch::zeros({1, c, n}), y->elements()[1]}).toTuple();
                    t = y2->elements()[0].toTensor();
                } else {
                    n = windowPadding(info).first;
                    t = model->module.forward({torch::zeros({1, c, n})}).toTensor();
                }
                std::vector<int64_t> expected{1, s, c, n};
                if (t.sizes().vec() != expected) {
                    std::string got;
                    for (auto d : t.sizes()) got += (got.empty() ? "" : ", ") + std::to_string(d);
                    setError(err, errlen,
                             where + ": the model returns shape (" + got + "), the contract needs (1, "
                                 + std::to_string(s) + ", " + std::to_string(c) + ", " + std::to_string(n)
                                 + ") (batch, stems, channels, samples)");
                    return nullptr;
                }
                if (!torch::isfinite(t).all().item<bool>()) {
                    setError(err, errlen, where + ": the model returns NaN or Inf on silence");
                    return nullptr;
                }
            } catch (const std::exception& e) {
                setError(err, errlen, where + ": the model failed on a test input (" + lastLine(e.what()) + ")");
                return nullptr;
            }
        }
        if (out) {
            std::memset(out, 0, sizeof(*out));
            std::snprintf(out->name, sizeof(out->name), "%s", info.name.c_str());
            std::snprintf(out->version, sizeof(out->version), "%s", info.version.c_str());
            std::snprintf(out->kind, sizeof(out->kind), "%s", info.kind.c_str());
            std::snprintf(out->path, sizeof(out->path), "%s", where.c_str());
            out->sample_rate = info.sample_rate;
            out->channels = info.channels;
            out->hop = info.hop;
            out->window = info.window;
            out->lookahead = info.lookahead;
            out->num_stems = int(info.stems.size());
            for (size_t i = 0; i < info.stems.size(); ++i)
                std::snprintf(out->stems[i], sizeof(out->stems[i]), "%s", info.stems[i].c_str());
            out->sums_to_mix = info.sums_to_mix;
            out->untrained = info.untrained;
        }
        return model.release();
    } catch (const std::exception& e) { setError(err, errlen, lastLine(e.what())); } catch (...) {
        setError(err, errlen, where + ": unknown error while loading the model");
    }
    return nullptr;
}

void sf_model_free(sf_model* m) {
    try {
        delete m;
    } catch (...) {}
}

// Off the audio thread: the fresh resamplers and state the next reset swaps in (offline only:
// in real time the worker makes its own).
static void refreshSpares(sf_engine* e) {
    if (e->spare) refreshSpares(e->spare);
    std::lock_guard<std::mutex> one(e->refreshing);
    if (e->sparesReady.load(std::memory_order_acquire)) return;
    if (!e->realtime) {  // in real time the worker restarts its own
        e->resampleIn.makeSpare();
        e->resampleOut.makeSpare();
    }
    if (!e->windowed && !e->realtime) {
        c10::List<at::Tensor> fresh;
        for (const auto& t : e->initialState) fresh.push_back(at::Tensor(t).clone());
        e->spareState = fresh;
        // `used` shares the spare's list until the reset: the reset's two assignments then only
        // move references, and the list the stream ran on is released here, at the next refresh
        e->used = e->spareState;
    }
    e->sparesReady.store(true, std::memory_order_release);
}

// The model's side of a stream (the worker's, in real time): its state and input. fromSpare:
// the state prepared by refreshSpares (the offline reset, which must not allocate either);
// else a fresh copy of the initial state (the worker's, which may allocate).
static void resetModelSide(sf_engine* e, bool fromSpare) {
    e->modelIn.clear();
    e->workerIn.clear();
    e->workerStems.clear();
    e->workerHost.clear();
    e->toDrop = e->lookahead;
    if (e->windowed) {
        e->modelIn.appendZeros(e->keep);  // tail "center": zeros before the stream
        e->inputStart = -e->keep;
        e->offset = e->received = e->statsEnd = e->statCount = 0;
        e->statTotal = e->statSquares = 0.0;
        std::fill(e->acc.begin(), e->acc.end(), 0.0f);
        std::fill(e->wsum.begin(), e->wsum.end(), 0.0f);
    } else if (fromSpare) {
        e->used = e->state;  // handles: copying them only counts references
        e->state = e->spareState;
    } else {
        c10::List<at::Tensor> fresh;
        for (const auto& t : e->initialState) fresh.push_back(at::Tensor(t).clone());
        e->state = fresh;
    }
}

// Model samples as host samples, rounded up.
static long long hostSamples(const sf_engine* e, long long model) {
    const long long mr = e->model->info.sample_rate;
    return (model * e->hostRate + mr - 1) / mr;
}

// Host samples as model samples, rounded down.
static long long modelSamples(const sf_engine* e, long long host) {
    return host * e->model->info.sample_rate / e->hostRate;
}

// A new stream, from the spares (false if they are not ready: nothing changed). Real-time safe:
// it neither allocates, frees nor waits; in real time it leaves the model's side to the worker,
// which may be running the old stream's last hops meanwhile.
static bool resetEngine(sf_engine* e) {
    if (!e->sparesReady.load(std::memory_order_acquire)) return false;
    if (e->spare && !e->spare->sparesReady.load(std::memory_order_acquire)) return false;
    if (!e->realtime) {
        e->resampleIn.useSpare();
        e->resampleOut.useSpare();
    }
    e->modelStems.clear();
    e->hostStems.clear();
    e->dry.clear();
    e->hostStems.appendZeros(e->latency);
    e->dry.appendZeros(e->latency);
    if (e->realtime) {
        // the new input follows the old; the new output starts past every stem the worker may
        // still make of the old stream: no more than its input (the resamplers never give more
        // than their input's length at the other rate, give or take a sample) and the model's
        // context, P + 2 hops
        const long long written = e->written.load(std::memory_order_relaxed);
        const long long hostOrigin =
            e->hostOrigin + (written - e->origin) + hostSamples(e, e->P + 2 * e->hop) + 2 * (e->maxBlock + 64);
        e->origin = written;
        e->hostOrigin = e->emitted = hostOrigin;
        e->hostIn = 0;
        e->lastMissedHop = e->lastRescuedHop = -1;
        e->misses.store(0, std::memory_order_relaxed);
        e->rescued.store(0, std::memory_order_relaxed);
        // fed the same blocks, the spare computes the same origins
        if (e->spare) resetEngine(e->spare);
        e->consumed.store(hostOrigin, std::memory_order_release);
        e->resetOrigin.store(written, std::memory_order_relaxed);
        e->resetHostOrigin.store(hostOrigin, std::memory_order_relaxed);
        // before the new stream's first `written`: a worker that sees its input sees the reset too
        e->resetGen.store(e->resetGen.load(std::memory_order_relaxed) + 1, std::memory_order_release);
        if (e->wakeReady) sem_post(&e->wake);
    } else {
        resetModelSide(e, true);
    }
    e->sparesReady.store(false, std::memory_order_release);
    return true;
}

// Stream positions [start, start + n) of the model-rate input into dst (rows of n), zeros
// before 0 and past what was received; normalised by (mean, std) if asked (WindowEngine._samples).
static void windowSamples(sf_engine* e, long long start, int n, float* dst, bool norm, float mean, float std_) {
    const int rows = e->batch * e->modelChannels;
    std::fill(dst, dst + size_t(rows) * n, 0.0f);
    const long long first = std::max(start, 0LL), last = std::min(start + n, e->received);
    if (last <= first) return;
    const long long at = first - e->inputStart;
    for (int r = 0; r < rows; ++r) {
        const float* src = e->modelIn.readPtr(r) + at;
        float* d = dst + size_t(r) * n + (first - start);
        for (long long i = 0; i < last - first; ++i) d[i] = norm ? (src[i] - mean) / std_ : src[i];
    }
}

// RunningStats.add over stream positions [start, start + n), and .get
static void addStats(sf_engine* e, long long start, int n) {
    const int B = e->batch, C = e->modelChannels;
    windowSamples(e, start, n, e->statBuf.data(), false, 0.0f, 1.0f);
    double total = 0.0, squares = 0.0;
    for (int b = 0; b < B; ++b) {
        double sum = 0.0, sq = 0.0;
        for (int i = 0; i < n; ++i) {
            double m = 0.0;
            for (int c = 0; c < C; ++c) m += double(e->statBuf[(size_t(b) * C + c) * n + i]);
            m /= C;
            sum += m;
            sq += m * m;
        }
        total += sum;
        squares += sq;
    }
    e->statCount += n;
    e->statTotal += total / B;
    e->statSquares += squares / B;
}

static std::pair<double, double> getStats(const sf_engine* e) {
    if (e->statCount < 2) return {0.0, 1.0};
    const double mean = e->statTotal / double(e->statCount);
    const double var = std::max(e->statSquares - double(e->statCount) * mean * mean, 0.0) / double(e->statCount - 1);
    return {mean, std::sqrt(var) + 1e-8};
}

int sf_engine_reset(sf_engine* e, char*, size_t) { return resetEngine(e) ? 0 : SF_RESET_NOT_READY; }

int sf_engine_refresh(sf_engine* e, char* err, size_t errlen) {
    try {
        refreshSpares(e);
        return 0;
    } catch (const std::exception& ex) {
        setError(err, errlen, "cannot prepare a reset: " + lastLine(ex.what()));
    } catch (...) { setError(err, errlen, "cannot prepare a reset"); }
    return 1;
}

static void workerLoop(sf_engine* e);
static void startWorkerStream(sf_engine* e, long long origin, long long hostOrigin);

sf_engine* sf_engine_create(sf_model* model, int hostRate, int hostChannels, int maxBlock, int realtime, int headroom,
                            char* err, size_t errlen) {
    try {
        if (!model) {
            setError(err, errlen, "no model");
            return nullptr;
        }
        if (hostRate < kMinRate || hostRate > kMaxRate) {
            setError(
                err, errlen,
                "the host's sample rate " + std::to_string(hostRate) + " Hz is outside the supported 8000-192000 Hz");
            return nullptr;
        }
        if (hostChannels != 1 && hostChannels != 2) {
            setError(err, errlen, "mono and stereo only, the host gives " + std::to_string(hostChannels) + " channels");
            return nullptr;
        }
        auto e = std::make_unique<sf_engine>();
        const Info& info = model->info;
        e->model = model;
        e->hostRate = hostRate;
        e->hostChannels = hostChannels;
        e->maxBlock = std::max(maxBlock, 1);
        e->modelChannels = info.channels;
        e->batch = info.channels == 1 ? hostChannels : 1;  // a mono model runs each host channel
        e->stems = int(info.stems.size());
        e->hop = info.hop;
        e->lookahead = info.lookahead;
        e->realtime = realtime != 0;
        e->headroom = e->realtime ? realtimeHeadroom(info, hostRate, e->maxBlock, headroom) : 0;
        e->latency = latencyFor(info, hostRate, e->headroom);
        e->fallback = int(info.stems.size()) - 1;  // processor.StemSeparator: `other`, else the last
        for (size_t k = 0; k < info.stems.size(); ++k)
            if (info.stems[k] == "other") e->fallback = int(k);
        const double ratio = double(info.sample_rate) / double(hostRate);
        const int modelCap = int(std::ceil(e->maxBlock * ratio)) + 65536 + 2 * info.hop;
        const auto rs = resampling(hostRate, info.sample_rate);
        const auto& rec = rs.recipes;
        e->holdIn = int(std::ceil(rs.holdbacks.first));
        // a run's model-rate input (with a hop left over from the last) stays within kWorkerStep
        e->hostStep =
            std::max(1, int(double(kWorkerStep - 2 * info.hop - 64 - e->holdIn) * hostRate / double(info.sample_rate)));
        // in real time the worker resamples the input of one run at a time
        e->resampleIn.init(hostRate, info.sample_rate, hostChannels, e->realtime ? e->hostStep : e->maxBlock,
                           rec.first);
        // in real time the worker resamples the stems of one run at a time
        const int workerCap = kWorkerStep + 2 * info.hop + windowPadding(info).first;
        e->resampleOut.init(info.sample_rate, hostRate, e->stems * hostChannels, e->realtime ? workerCap : modelCap,
                            rec.second);
        e->windowed = info.kind == "window";
        if (e->windowed) {
            auto pad = windowPadding(info);
            e->W = info.window;
            e->P = pad.first;
            e->left = pad.second;
            e->centered = info.tail == "center";
            e->keep = e->centered ? e->P / 2 : 0;
            e->normalize = info.normalization == "track";
            const int rows = e->batch * e->stems * info.channels;
            e->acc.assign(size_t(rows) * e->W, 0.0f);
            e->wsum.assign(size_t(e->W), 0.0f);
            e->chunkBuf.assign(size_t(e->batch) * info.channels * e->P, 0.0f);
            e->statBuf.assign(size_t(e->batch) * info.channels * e->P, 0.0f);
            e->doneBuf.assign(size_t(rows) * info.hop, 0.0f);
            const int seen = e->centered ? e->P : e->W;
            e->chunkTensor = torch::from_blob(e->chunkBuf.data(), {e->batch, info.channels, seen}, torch::kFloat32);
            {  // crossfade_weights, computed with torch as the Python side does
                auto w = torch::cat({torch::arange(1, e->W / 2 + 1), torch::arange(e->W - e->W / 2, 0, -1)});
                auto wf = (w / w.max()).pow(info.transition_power).to(torch::kFloat32).contiguous();
                e->weights.assign(wf.data_ptr<float>(), wf.data_ptr<float>() + e->W);
            }
        }
        e->modelIn.init(e->batch * info.channels, modelCap + info.hop + 2 * e->P + e->keep);
        e->modelStems.init(e->stems * hostChannels, modelCap);
        if (e->realtime) {
            // the rings: 2 s of host-rate input (how far the worker may fall behind before it
            // starts afresh), and the host-rate stems from the oldest due to the newest the worker
            // can make
            const int rows = e->batch * info.channels;
            const int perBlock = int(std::ceil(e->maxBlock * ratio)) + 16;  // model samples of a block
            e->capIn = std::max(2 * hostRate, 4 * (e->maxBlock + int(hostSamples(e.get(), e->headroom)) + 16));
            const int spanOut = int(std::ceil(e->capIn * ratio))
                                + 2 * (e->headroom + engineDelay(info) + 2 * info.hop + perBlock + kWorkerStep);
            e->capOut = int(std::ceil(spanOut / ratio)) + 2 * (e->latency + e->maxBlock);
            e->inRing.assign(size_t(hostChannels) * e->capIn, 0.0f);
            e->outRing.assign(size_t(e->stems * hostChannels) * e->capOut, 0.0f);
            e->workerRaw.init(hostChannels, e->hostStep);
            e->workerIn.init(rows, int(std::ceil(e->hostStep * ratio)) + 65536);
            e->workerStems.init(e->stems * hostChannels, workerCap);
            e->workerHost.init(e->stems * hostChannels, int(std::ceil(workerCap / ratio)) + 65536);
        }
        const int hostCap = e->latency + e->maxBlock + int(std::ceil(modelCap / ratio)) + 65536;
        e->hostStems.init(e->stems * hostChannels, hostCap);
        // The dry line always holds `latency` samples; a Fifo moves what it holds to its front
        // when a block would not fit behind it, so room for many blocks behind the latency makes
        // that move rare (at the line's old size, latency + one block, it came on every block).
        e->dry.init(hostChannels, e->latency + e->maxBlock + 65536);
        e->hopBuf.assign(size_t(e->batch) * info.channels * info.hop, 0.0f);
        e->hopTensor = torch::from_blob(e->hopBuf.data(), {e->batch, info.channels, info.hop}, torch::kFloat32);
        e->ptrs.resize(size_t(std::max(e->batch * info.channels, 2 * SF_MAX_STEMS)));
        e->mixIn.assign(size_t(hostChannels) * e->maxBlock, 0.0f);
        e->mixSum.assign(size_t(e->maxBlock), 0.0f);
        if (e->windowed) {
            OneThread one;
            c10::InferenceMode guard;
            for (int i = 0; i < 2; ++i) model->module.forward({e->chunkTensor});  // warm up
        } else {
            OneThread one;
            c10::InferenceMode guard;
            auto st = model->module.run_method("initial_state", e->batch).toTensorList();
            for (const auto& t : st) e->initialState.push_back(at::Tensor(t).clone());
            // Warm up: TorchScript's executor profiles and optimises the first calls (65-185 ms).
            c10::List<at::Tensor> warm;
            for (const auto& t : e->initialState) warm.push_back(at::Tensor(t).clone());
            c10::IValue s(warm);
            for (int i = 0; i < 3; ++i) {
                auto y = model->module.forward({e->hopTensor, s}).toTuple();
                s = y->elements()[1];
            }
        }
        refreshSpares(e.get());
        resetEngine(e.get());
        refreshSpares(e.get());
        if (realtime == 2) {
            // made as this engine was, up to its first reset included: the same stream positions
            e->spare = sf_engine_create(model, hostRate, hostChannels, maxBlock, 1, headroom, err, errlen);
            if (!e->spare) return nullptr;  // err says why
        }
        if (e->realtime) {
            // the worker's side of the first stream (resetEngine left it to the worker)
            startWorkerStream(e.get(), e->origin, e->hostOrigin);
            e->ackGen = e->resetGen.load();
            if (sem_init(&e->wake, 0, 0) != 0) throw std::runtime_error("cannot create the worker's semaphore");
            e->wakeReady = true;
            sf_engine* raw = e.get();
            e->worker = std::thread([raw] { workerLoop(raw); });
        }
        return e.release();
    } catch (const std::exception& ex) {
        setError(err, errlen, "cannot set up the model: " + lastLine(ex.what()));
    } catch (...) { setError(err, errlen, "cannot set up the model"); }
    return nullptr;
}

int sf_engine_latency(const sf_engine* e) { return e ? e->latency : 0; }

long long sf_engine_misses(const sf_engine* e) { return e ? e->misses.load(std::memory_order_relaxed) : 0; }

long long sf_engine_rescued(const sf_engine* e) { return e ? e->rescued.load(std::memory_order_relaxed) : 0; }

int sf_engine_worker_times(const sf_engine* e, sf_worker_times* out) {
    if (out == nullptr) return 1;
    *out = sf_worker_times{};
    if (!e || !e->realtime) return 1;
    out->runs = e->runs.count.load(std::memory_order_acquire);
    out->wait_mean = e->waits.mean();
    out->wait_p99 = e->waits.quantile(0.99);
    out->wait_max = e->waits.max.load(std::memory_order_relaxed);
    out->run_mean = e->runs.mean();
    out->run_p99 = e->runs.quantile(0.99);
    out->run_max = e->runs.max.load(std::memory_order_relaxed);
    out->late_runs = e->lateRuns.load(std::memory_order_relaxed);
    out->calls = e->calls.count.load(std::memory_order_acquire);
    out->call_mean = e->calls.mean();
    out->call_p99 = e->calls.quantile(0.99);
    out->call_max = e->calls.max.load(std::memory_order_relaxed);
    out->late_span = e->lateSpan.load(std::memory_order_relaxed);
    out->late_sched_delay =
        e->schedKnown.load(std::memory_order_relaxed) ? e->lateSchedDelay.load(std::memory_order_relaxed) : -1.0;
    out->late_faults = e->lateFaults.load(std::memory_order_relaxed);
    return 0;
}

int sf_engine_sync(sf_engine* e, int timeoutMs) {
    if (!e || !e->realtime) return 0;
    // a worker sf_engine_hold holds is not waited for: it cannot run
    if (e->spare && !(e->held & 2) && sf_engine_sync(e->spare, timeoutMs) != 0) return 1;
    if (e->held & 1) return 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    while (!(e->workerFailed.load(std::memory_order_acquire)
             && e->failedGen.load(std::memory_order_relaxed) == e->resetGen.load(std::memory_order_relaxed))) {
        {
            // the worker takes its input with `work` held: free, and all input taken, it is idle
            std::unique_lock<std::mutex> idle(e->work, std::try_to_lock);
            if (idle.owns_lock()
                && e->ackGen.load(std::memory_order_acquire) == e->resetGen.load(std::memory_order_acquire)) {
                if (e->written.load(std::memory_order_acquire) == e->taken.load(std::memory_order_acquire)) return 0;
                sem_post(&e->wake);  // input that completes no hop waits for a wake-up: give it one
            }
        }
        if (std::chrono::steady_clock::now() > deadline) return 1;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    return 1;
}

void sf_engine_hold(sf_engine* e, int hold) {
    if (!e || !e->realtime) return;
    if (!e->spare) hold &= 1;
    for (int bit = 0; bit < 2; ++bit) {
        std::mutex& work = bit == 0 ? e->work : e->spare->work;
        const int mask = 1 << bit;
        if ((hold & mask) && !(e->held & mask))
            work.lock();
        else if (!(hold & mask) && (e->held & mask))
            work.unlock();
    }
    e->held = hold;
}

int sf_model_latency(sf_model* m, int hostRate, int maxBlock, int realtime, int headroom) {
    if (!m || hostRate < kMinRate || hostRate > kMaxRate) return -1;
    try {
        const int h = realtime ? realtimeHeadroom(m->info, hostRate, std::max(maxBlock, 1), headroom) : 0;
        return latencyFor(m->info, hostRate, h);
    } catch (...) { return -1; }
}

static void silence(sf_engine* e, int n, float* const* stems, float* const* dry) {
    for (int c = 0; c < e->stems * e->hostChannels; ++c) std::fill(stems[c], stems[c] + n, 0.0f);
    for (int c = 0; c < e->hostChannels; ++c) std::fill(dry[c], dry[c] + n, 0.0f);
}

// Pipeline._mix_to_host's channel mapping: (batch, stems, model channels, len) samples
// [skip, skip + m) appended to `out` as (stems * host channels).
static void appendStems(sf_engine* e, Fifo& out, const float* yp, int len, int skip, int m) {
    const int ch = e->hostChannels, c = e->modelChannels, S = e->stems;
    if (!out.reserve(m)) throw std::runtime_error("internal error: the stem buffer is full");
    auto at = [&](int b, int s, int k) { return yp + ((size_t(b) * S + s) * c + k) * len + skip; };
    for (int s = 0; s < S; ++s) {
        for (int h = 0; h < ch; ++h) {
            float* w = out.writePtr(s * ch + h);
            if (c == ch) {
                std::memcpy(w, at(0, s, h), sizeof(float) * size_t(m));
            } else if (c == 1) {
                std::memcpy(w, at(h, s, 0), sizeof(float) * size_t(m));
            } else {  // stereo model, mono host: the mean of the two channels
                const float* l = at(0, s, 0);
                const float* r = at(0, s, 1);
                for (int i = 0; i < m; ++i) w[i] = (l[i] + r[i]) / 2.0f;
            }
        }
    }
    out.commit(m);
}

// WindowEngine._run_chunk(None) and _emit: one full chunk at `offset`, `hop` samples out.
static void runWindowChunk(sf_engine* e, Fifo& out) {
    const int B = e->batch, S = e->stems, C = e->modelChannels, W = e->W, H = e->hop;
    const long long o = e->offset;
    const int leftC = e->centered ? e->left : 0;
    const int seen = e->centered ? e->P : W;
    float mean = 0.0f, std_ = 1.0f;
    if (e->normalize) {
        const long long stop = o - leftC + seen;
        if (stop > e->statsEnd) {
            addStats(e, e->statsEnd, int(stop - e->statsEnd));
            e->statsEnd = stop;
        }
        auto st = getStats(e);
        mean = float(st.first);
        std_ = float(st.second);
    }
    windowSamples(e, o - leftC, seen, e->chunkBuf.data(), e->normalize, mean, std_);
    at::Tensor y;
    {
        OneThread one;
        c10::InferenceMode guard;
        y = e->model->module.forward({e->chunkTensor}).toTensor().contiguous();
    }
    if (y.dim() != 4 || y.size(0) != B || y.size(1) != S || y.size(2) != C || y.size(3) != seen)
        throw std::runtime_error("the model returned a tensor of the wrong shape");
    const float* yp = y.data_ptr<float>();
    const int rows = B * S * C;
    for (int r = 0; r < rows; ++r) {
        float* a = e->acc.data() + size_t(r) * W;
        const float* src = yp + size_t(r) * seen + leftC;
        for (int i = 0; i < W; ++i) {
            float v = src[i];
            if (e->normalize) v = v * std_ + mean;
            a[i] += e->weights[size_t(i)] * v;
        }
    }
    for (int i = 0; i < W; ++i) e->wsum[size_t(i)] += e->weights[size_t(i)];
    // _emit: the first hop is final
    for (int r = 0; r < rows; ++r) {
        float* a = e->acc.data() + size_t(r) * W;
        float* d = e->doneBuf.data() + size_t(r) * H;
        for (int i = 0; i < H; ++i) d[i] = a[i] / e->wsum[size_t(i)];
        std::memmove(a, a + H, sizeof(float) * size_t(W - H));
        std::fill(a + (W - H), a + W, 0.0f);
    }
    std::memmove(e->wsum.data(), e->wsum.data() + H, sizeof(float) * size_t(W - H));
    std::fill(e->wsum.begin() + (W - H), e->wsum.end(), 0.0f);
    e->offset += H;
    const long long keepFrom = e->offset - e->keep;
    e->modelIn.drop(int(keepFrom - e->inputStart));
    e->inputStart = keepFrom;
    appendStems(e, out, e->doneBuf.data(), H, 0, H);
}

// The model on the input waiting in modelIn (`added` samples new): StreamingEngine.push in
// real-time mode (every whole hop, at once) or WindowEngine.push; the stems into `out`.
static void runModel(sf_engine* e, int added, Fifo& out) {
    if (e->windowed) {
        // WindowEngine.push: a chunk as soon as its whole padded input is in
        e->received += added;
        while (e->received >= e->offset - e->left + e->P && !e->quit.load(std::memory_order_relaxed))
            runWindowChunk(e, out);
        return;
    }
    const int c = e->modelChannels, S = e->stems, rows = e->batch * c;
    while (e->modelIn.size() >= e->hop && !e->quit.load(std::memory_order_relaxed)) {
        for (int r = 0; r < rows; ++r)
            std::memcpy(e->hopBuf.data() + size_t(r) * e->hop, e->modelIn.readPtr(r), sizeof(float) * size_t(e->hop));
        e->modelIn.drop(e->hop);
        at::Tensor y;
        {
            OneThread one;
            c10::InferenceMode guard;
            const auto called = std::chrono::steady_clock::now();
            auto result = e->model->module.forward({e->hopTensor, e->state}).toTuple();
            if (e->realtime)
                e->calls.add(std::chrono::duration<double>(std::chrono::steady_clock::now() - called).count());
            y = result->elements()[0].toTensor().contiguous();
            auto next = result->elements()[1].toTensorList();
            // A state that views the model's input (x[..., -1:]) would see the next hop
            // written into the input buffer, which Python never reuses: copy it.
            for (size_t k = 0; k < next.size(); ++k) {
                const at::Tensor t = next.get(k);
                if (t.defined() && t.storage().is_alias_of(e->hopTensor.storage())) next.set(k, t.clone());
            }
            e->state = next;
        }
        if (y.dim() != 4 || y.size(0) != e->batch || y.size(1) != S || y.size(2) != c || y.size(3) != e->hop)
            throw std::runtime_error("the model returned a tensor of the wrong shape");
        const int skip = std::min(e->toDrop, e->hop);  // the model's first outputs precede the stream
        e->toDrop -= skip;
        if (e->hop - skip > 0) appendStems(e, out, y.data_ptr<float>(), e->hop, skip, e->hop - skip);
    }
}

// Samples [position, position + n) of a ring of `cap` per row, to or from planar rows.
static void toRing(std::vector<float>& ring, int cap, int rows, long long position, const float* const* src,
                   int srcOffset, int n) {
    const int i = int(position % cap), first = std::min(n, cap - i);
    for (int r = 0; r < rows; ++r) {
        float* row = ring.data() + size_t(r) * cap;
        std::memcpy(row + i, src[r] + srcOffset, sizeof(float) * size_t(first));
        std::memcpy(row, src[r] + srcOffset + first, sizeof(float) * size_t(n - first));
    }
}

static void fromRing(const std::vector<float>& ring, int cap, int rows, long long position, float* const* dst,
                     int dstOffset, int n) {
    const int i = int(position % cap), first = std::min(n, cap - i);
    for (int r = 0; r < rows; ++r) {
        const float* row = ring.data() + size_t(r) * cap;
        std::memcpy(dst[r] + dstOffset, row + i, sizeof(float) * size_t(first));
        std::memcpy(dst[r] + dstOffset + first, row, sizeof(float) * size_t(n - first));
    }
}

// Host -> model rate (resampleIn), then Pipeline._to_model: n samples of the host's channels
// appended to `f` in the model's (batch, channels) layout.
static void toModel(sf_engine* e, const float* const* in, int n, Fifo& f) {
    std::string error;
    if (e->modelChannels == e->hostChannels || e->modelChannels == 1) {
        // the same channels: batch 1, channels as they are; a mono model: batch = host channels
        if (!e->resampleIn.process(in, n, f, error)) throw std::runtime_error(error);
        return;
    }
    // mono host, stereo model: the resampled channel twice (the resampler writes channel 0 only)
    const int before = f.size();
    const float* one[1] = {in[0]};
    if (!e->resampleIn.process(one, n, f, error)) throw std::runtime_error(error);
    std::memcpy(const_cast<float*>(f.readPtr(1)) + before, f.readPtr(0) + before,
                sizeof(float) * size_t(f.size() - before));
}

// The worker's model-rate stems in workerStems through its resampler, and from host position
// `produced` on into the output ring (what the audio thread has delivered already is skipped);
// with write false, only counted: the stems the audio thread never takes (a gap).
static void publishStems(sf_engine* e, bool write) {
    const int outRows = e->stems * e->hostChannels;
    std::string error;
    const float* rows[2 * SF_MAX_STEMS];
    for (int k = 0; k < outRows; ++k) rows[k] = e->workerStems.readPtr(k);
    e->workerHost.clear();
    if (!e->resampleOut.process(rows, e->workerStems.size(), e->workerHost, error)) throw std::runtime_error(error);
    e->modelMade += e->workerStems.size();
    e->workerStems.clear();
    const int m = e->workerHost.size();
    const long long p = e->produced.load(std::memory_order_relaxed);
    if (write) {
        // stems already delivered without the model are not written
        const int skip = int(std::clamp(e->consumed.load(std::memory_order_acquire) - p, 0LL, (long long)m));
        for (int k = 0; k < outRows; ++k) rows[k] = e->workerHost.readPtr(k);
        toRing(e->outRing, e->capOut, outRows, p + skip, rows, skip, m - skip);
    } else {
        e->valid.store(p + m, std::memory_order_release);  // before produced: what follows is the model's
    }
    e->produced.store(p + m, std::memory_order_release);
}

// The worker's side of a stream, afresh at input position `origin` and output position `hostOrigin`.
static void startWorkerStream(sf_engine* e, long long origin, long long hostOrigin) {
    resetModelSide(e, false);
    e->resampleIn.restart();
    e->resampleOut.restart();
    e->modelAt = e->skipIn = e->modelMade = 0;
    e->valid.store(hostOrigin, std::memory_order_relaxed);
    e->produced.store(hostOrigin, std::memory_order_relaxed);
    e->taken.store(origin, std::memory_order_relaxed);
    e->waits.clear();
    e->runs.clear();
    e->calls.clear();
    e->lateRuns.store(0, std::memory_order_relaxed);
    e->lateSpan.store(0.0, std::memory_order_relaxed);
    e->lateSchedDelay.store(0.0, std::memory_order_relaxed);
    e->lateFaults.store(0, std::memory_order_relaxed);
}

// The worker's host-rate input of this run (workerRaw) at the model rate into workerIn; what a
// cut hop left to drop is dropped.
static void workerResample(sf_engine* e) {
    const float* raw[2];
    for (int k = 0; k < e->hostChannels; ++k) raw[k] = e->workerRaw.readPtr(k);
    e->workerIn.clear();
    toModel(e, raw, e->workerRaw.size(), e->workerIn);
    e->workerRaw.clear();
    const int got = e->workerIn.size();
    e->modelAt += got;
    const int skip = int(std::min<long long>(e->skipIn, got));
    e->skipIn -= skip;
    e->workerIn.drop(skip);
}

// The worker's run: the input the audio thread has put in the ring, host -> model rate, every
// whole hop through the model and the stems model -> host rate into the output ring
// (realtime.DecoupledEngine's _Worker._run, with the resamplers).
static void workerRun(sf_engine* e) {
    const int rows = e->batch * e->modelChannels, unit = e->hop, ch = e->hostChannels;
    float* raw[2];
    while (!e->quit.load(std::memory_order_relaxed)) {
        const long long written = e->written.load(std::memory_order_acquire);  // before gapEnd, resetGen
        const unsigned gen = e->resetGen.load(std::memory_order_acquire);
        if (gen != e->ackGen.load(std::memory_order_relaxed)) {
            // the audio thread reset the stream: the model's side starts afresh at its origin
            startWorkerStream(e, e->resetOrigin.load(std::memory_order_relaxed),
                              e->resetHostOrigin.load(std::memory_order_relaxed));
            e->workerFailed.store(false, std::memory_order_relaxed);
            e->ackGen.store(gen, std::memory_order_release);  // after produced and taken
            continue;
        }
        const long long gap = e->gapEnd.load(std::memory_order_acquire);
        const long long taken = e->taken.load(std::memory_order_relaxed);
        if (gap > taken) {
            // the ring overflowed: the input the worker has not reached is gone. Silence takes its
            // place in the input resampler, so that model positions stay those of the stream; the
            // model's state starts afresh at the first whole hop after it (the schedule of due
            // hops stays aligned), and the output resampler goes on through silence up to there,
            // so that its host positions stay those of the stream too; the audio thread counts
            // those as missed (`valid`).
            for (long long at = taken; at < gap && !e->quit.load(std::memory_order_relaxed);) {
                const int n = int(std::min<long long>(gap - at, e->hostStep));
                e->workerRaw.clear();
                e->workerRaw.appendZeros(n);
                workerResample(e);
                at += n;
            }
            const long long start = (e->modelAt + unit - 1) / unit * unit;
            e->skipIn = start - e->modelAt;  // the resampled input before it
            resetModelSide(e, false);
            while (e->modelMade < start && !e->quit.load(std::memory_order_relaxed)) {
                const int n = int(std::min<long long>(start - e->modelMade, kWorkerStep));
                e->workerStems.appendZeros(n);
                publishStems(e, false);
            }
            e->taken.store(gap, std::memory_order_release);
            continue;
        }
        const int n = int(std::min<long long>(written - taken, e->hostStep));
        if (n <= 0) return;
        e->workerRaw.clear();
        if (!e->workerRaw.reserve(n)) throw std::runtime_error("internal error: the worker's input buffer is full");
        for (int k = 0; k < ch; ++k) raw[k] = e->workerRaw.writePtr(k);
        fromRing(e->inRing, e->capIn, ch, taken, raw, 0, n);
        e->workerRaw.commit(n);
        e->taken.store(taken + n, std::memory_order_release);  // the ring's samples are copied out
        workerResample(e);
        const int got = e->workerIn.size();
        if (!e->modelIn.reserve(got)) throw std::runtime_error("internal error: the model's input buffer is full");
        for (int r = 0; r < rows; ++r)
            std::memcpy(e->modelIn.writePtr(r), e->workerIn.readPtr(r), sizeof(float) * size_t(got));
        e->modelIn.commit(got);
        runModel(e, got, e->workerStems);
        publishStems(e, true);
    }
}

// What the system counts of the calling thread: the time its scheduler kept it runnable but not
// running (ns, from /proc/thread-self/schedstat, open as `schedstat`; -1 if not known) and its page
// faults. Read by the worker around each run, so that a late run says whether this system held it.
struct ThreadCounts {
    long long schedDelay = -1, faults = 0;
};

static ThreadCounts threadCounts(int schedstat) {
    ThreadCounts c;
    char text[128];
    if (schedstat >= 0) {
        const ssize_t n = pread(schedstat, text, sizeof(text) - 1, 0);  // "ran_ns waited_ns slices"
        unsigned long long ran = 0, waited = 0;
        text[std::max<ssize_t>(n, 0)] = 0;
        if (std::sscanf(text, "%llu %llu", &ran, &waited) == 2) c.schedDelay = (long long)waited;
    }
    rusage usage{};
    if (getrusage(RUSAGE_THREAD, &usage) == 0) c.faults = usage.ru_minflt + usage.ru_majflt;
    return c;
}

static void workerLoop(sf_engine* e) {
    const int schedstat = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    e->schedKnown.store(schedstat >= 0, std::memory_order_relaxed);
    for (;;) {
        // before the wait: a wake-up the scheduler delays counts in this run's
        const ThreadCounts before = threadCounts(schedstat);
        while (sem_wait(&e->wake) != 0 && errno == EINTR) {}
        if (e->quit.load()) {
            if (schedstat >= 0) close(schedstat);
            return;
        }
        std::lock_guard<std::mutex> hold(e->work);
        if (e->workerFailed.load(std::memory_order_relaxed)
            && e->resetGen.load(std::memory_order_acquire) == e->ackGen.load(std::memory_order_relaxed))
            continue;  // until the next reset
        const long long woken = e->wokenAt.exchange(0, std::memory_order_relaxed), start = steadyNanoseconds();
        try {
            workerRun(e);
            if (woken > 0) {  // a run the audio thread asked for (not sf_engine_sync's)
                const long long end = steadyNanoseconds();
                e->waits.add(1e-9 * double(start - woken));
                e->runs.add(1e-9 * double(end - start));
                if (1e-9 * double(end - woken) > double(e->headroom) / e->model->info.sample_rate) {
                    const ThreadCounts after = threadCounts(schedstat);
                    auto add = [](auto& total, auto more) {
                        total.store(total.load(std::memory_order_relaxed) + more, std::memory_order_relaxed);
                    };
                    add(e->lateRuns, 1LL);
                    add(e->lateSpan, 1e-9 * double(end - woken));
                    if (after.schedDelay >= 0 && before.schedDelay >= 0)
                        add(e->lateSchedDelay, 1e-9 * double(after.schedDelay - before.schedDelay));
                    add(e->lateFaults, after.faults - before.faults);
                }
            }
        } catch (const std::exception& ex) {
            e->workerError = lastLine(ex.what());
            e->failedGen.store(e->ackGen.load(std::memory_order_relaxed), std::memory_order_relaxed);
            e->workerFailed.store(true, std::memory_order_release);
        } catch (...) {
            e->workerError = "unknown error";
            e->failedGen.store(e->ackGen.load(std::memory_order_relaxed), std::memory_order_relaxed);
            e->workerFailed.store(true, std::memory_order_release);
        }
    }
}

// The worker runs at the audio thread's real-time policy one step below it (a DAW's audio
// thread is SCHED_FIFO where the system allows it), so that other work cannot hold it back.
static void adoptPriority(sf_engine* e) {
    e->adopted = true;
    int policy = 0;
    sched_param param{};
    if (pthread_getschedparam(pthread_self(), &policy, &param) != 0) return;
    if (policy != SCHED_FIFO && policy != SCHED_RR) return;
    param.sched_priority = std::max(param.sched_priority - 1, sched_get_priority_min(policy));
    pthread_setschedparam(e->worker.native_handle(), policy, &param);
}

// Real time: the block's host-rate input into the input ring, the worker woken when its model-rate
// input may complete a hop: when the host count crosses a hop's worth, and again once the input
// resampler's worst hold-back has passed too (then the hop is surely whole).
static void feedWorker(sf_engine* e, const float* const* in, int n) {
    const unsigned gen = e->resetGen.load(std::memory_order_relaxed);
    // a failure of the stream before the last reset is not this stream's
    if (e->workerFailed.load(std::memory_order_acquire) && e->failedGen.load(std::memory_order_relaxed) == gen)
        throw std::runtime_error(e->workerError);
    if (!e->adopted) adoptPriority(e);
    const long long start = e->written.load(std::memory_order_relaxed), end = start + n;
    if (end - e->taken.load(std::memory_order_acquire) > e->capIn)
        e->gapEnd.store(end, std::memory_order_release);  // the worker is a ring behind: lost to it
    else
        toRing(e->inRing, e->capIn, e->hostChannels, start, in, 0, n);
    e->written.store(end, std::memory_order_release);
    // hops of model input by a host position of this stream (offset by 4 hops: never negative)
    const long long a = modelSamples(e, start - e->origin) + 4LL * e->hop;
    const long long b = modelSamples(e, end - e->origin) + 4LL * e->hop;
    if (a / e->hop != b / e->hop || (a - e->holdIn) / e->hop != (b - e->holdIn) / e->hop) {
        long long none = 0;  // the first wake-up since the worker's last run is the one it answers
        e->wokenAt.compare_exchange_strong(none, steadyNanoseconds(), std::memory_order_relaxed);
        sem_post(&e->wake);
    }
}

// Real time: the host-rate stems due by the end of this block of n samples (those `latency`
// samples before it) from the output ring into the delay line; those the worker has not made
// are the input (the dry delay line, aligned with them) in the fallback stem, and each model
// hop they touch is counted once as missed.
static void deliverStems(sf_engine* e, int n) {
    const int ch = e->hostChannels, S = e->stems;
    e->hostIn += n;
    const long long due = e->hostOrigin + std::max(0LL, e->hostIn - e->latency);
    const int count = int(due - e->emitted);
    if (count <= 0) return;
    const int at = e->hostStems.size();  // the new stems' place in this block's output
    if (!e->hostStems.reserve(count)) throw std::runtime_error("internal error: the stem buffer is full");
    // what the worker made counts once it has taken up this stream (its reset)
    long long from = e->emitted, made = e->emitted;
    if (e->ackGen.load(std::memory_order_acquire) == e->resetGen.load(std::memory_order_relaxed)) {
        made = e->produced.load(std::memory_order_acquire);
        from = std::max(e->emitted, e->valid.load(std::memory_order_relaxed));  // valid is stored before produced
    }
    const int lead = int(std::clamp(from - e->emitted, 0LL, (long long)count));  // not the model's
    const int ready = std::max(0, int(std::clamp(made - e->emitted, 0LL, (long long)count)) - lead);
    float* dst[2 * SF_MAX_STEMS];
    for (int k = 0; k < S * ch; ++k) dst[k] = e->hostStems.writePtr(k);
    if (ready > 0) fromRing(e->outRing, e->capOut, S * ch, e->emitted + lead, dst, lead, ready);
    // the model hops of the new stems' positions [first, last), each counted once in `counter`
    auto countHops = [&](int first, int last, long long& lastHop, std::atomic<long long>& counter) {
        const long long mr = e->model->info.sample_rate, per = (long long)e->hostRate * e->hop;
        const long long a = e->emitted + first - e->hostOrigin, b = e->emitted + last - 1 - e->hostOrigin;
        const long long h0 = std::max(a * mr / per, lastHop + 1), h1 = b * mr / per;
        if (h1 >= h0) counter.fetch_add(h1 - h0 + 1, std::memory_order_relaxed);
        lastHop = std::max(lastHop, h1);
    };
    auto fallBack = [&](int first, int last) {  // positions [first, last) of the new stems
        if (last <= first) return;
        for (int k = 0; k < S * ch; ++k) std::fill(dst[k] + first, dst[k] + last, 0.0f);
        for (int h = 0; h < ch; ++h)
            std::memcpy(dst[e->fallback * ch + h] + first, e->dry.readPtr(h) + at + first,
                        sizeof(float) * size_t(last - first));
        countHops(first, last, e->lastMissedHop, e->misses);
    };
    // positions [first, last) this engine's worker has not made: the spare's where it has made them
    auto cover = [&](int first, int last) {
        sf_engine* s = e->spare;
        if (last <= first || !s
            || s->ackGen.load(std::memory_order_acquire) != s->resetGen.load(std::memory_order_relaxed))
            return fallBack(first, last);
        const long long sMade = s->produced.load(std::memory_order_acquire);
        const long long sFrom = s->valid.load(std::memory_order_relaxed);  // stored before produced
        const int a = int(std::clamp(sFrom - e->emitted, (long long)first, (long long)last));
        const int b = int(std::clamp(sMade - e->emitted, (long long)a, (long long)last));
        fallBack(first, a);
        if (b > a) {
            fromRing(s->outRing, s->capOut, S * ch, e->emitted + a, dst, a, b - a);
            countHops(a, b, e->lastRescuedHop, e->rescued);
        }
        fallBack(b, last);
    };
    cover(0, lead);
    cover(lead + ready, count);
    e->hostStems.commit(count);
    e->emitted = due;
    e->consumed.store(due, std::memory_order_release);
    if (e->spare) e->spare->consumed.store(due, std::memory_order_release);
}

// One block of n <= maxBlock host samples in: afterwards the first n samples of hostStems and of
// dry are the block's output (stems and input, delayed by `latency`), to be read and dropped.
static void advance(sf_engine* e, const float* const* in, int n) {
    std::string error;
    const int ch = e->hostChannels, S = e->stems;
    // the input waits in the dry delay line for the stems it is added to
    if (!e->dry.reserve(n)) throw std::runtime_error("internal error: the dry delay line is full");
    for (int k = 0; k < ch; ++k) std::memcpy(e->dry.writePtr(k), in[k], sizeof(float) * size_t(n));
    e->dry.commit(n);
    if (e->realtime) {
        feedWorker(e, in, n);
        if (e->spare) feedWorker(e->spare, in, n);
        deliverStems(e, n);
    } else {
        const int before = e->modelIn.size();
        toModel(e, in, n, e->modelIn);
        e->modelStems.clear();
        runModel(e, e->modelIn.size() - before, e->modelStems);
        // model -> host rate, into the delay line
        const int got = e->modelStems.size();
        if (got > 0 || !e->resampleOut.identity()) {
            for (int k = 0; k < S * ch; ++k) e->ptrs[size_t(k)] = e->modelStems.readPtr(k);
            if (!e->resampleOut.process(e->ptrs.data(), got, e->hostStems, error)) throw std::runtime_error(error);
        }
    }
    if (e->hostStems.size() < n)
        throw std::runtime_error("internal error: the engine fell behind its reported latency");
}

// Both process calls: false with the reason in err for a block longer than the engine was
// created for (nothing processed: the caller writes silence).
static bool blockFits(const sf_engine* e, int n, char* err, size_t errlen) {
    if (n <= e->maxBlock) return true;
    setError(err, errlen,
             "a block of " + std::to_string(n) + " samples exceeds the prepared " + std::to_string(e->maxBlock));
    return false;
}

// advance, with a failure as both process calls report it: false with the reason in err.
static bool advanced(sf_engine* e, const float* const* in, int n, char* err, size_t errlen) {
    try {
        advance(e, in, n);
        return true;
    } catch (const std::exception& ex) {
        setError(err, errlen, e->model->info.name + ": the model failed (" + lastLine(ex.what()) + ")");
    } catch (...) { setError(err, errlen, e->model->info.name + ": the model failed"); }
    return false;
}

int sf_engine_process(sf_engine* e, const float* const* in, int n, float* const* stems, float* const* dry, char* err,
                      size_t errlen) {
    if (n <= 0) return 0;
    if (!blockFits(e, n, err, errlen) || !advanced(e, in, n, err, errlen)) {
        silence(e, n, stems, dry);
        return 1;
    }
    const int ch = e->hostChannels, S = e->stems;
    for (int k = 0; k < S * ch; ++k) std::memcpy(stems[k], e->hostStems.readPtr(k), sizeof(float) * size_t(n));
    e->hostStems.drop(n);
    for (int k = 0; k < ch; ++k) std::memcpy(dry[k], e->dry.readPtr(k), sizeof(float) * size_t(n));
    e->dry.drop(n);
    return 0;
}

int sf_engine_process_mixed(sf_engine* e, const float* in, long long ics, long long iss, int n, const float* gains,
                            float direct, float* out, long long ocs, long long oss, char* err, size_t errlen) {
    if (n <= 0) return 0;
    const int ch = e->hostChannels, S = e->stems, cap = e->maxBlock;
    auto silent = [&] {
        for (int c = 0; c < ch; ++c)
            for (int i = 0; i < n; ++i) out[c * ocs + i * oss] = 0.0f;
    };
    if (!blockFits(e, n, err, errlen)) {
        silent();
        return 1;
    }
    float* inRows[2] = {nullptr, nullptr};
    for (int c = 0; c < ch; ++c) {
        inRows[c] = e->mixIn.data() + size_t(c) * cap;
        for (int i = 0; i < n; ++i) {
            const float v = in[c * ics + i * iss];
            if (!std::isfinite(v)) return SF_NOT_FINITE;
            inRows[c][i] = v;
        }
    }
    if (!advanced(e, inRows, n, err, errlen)) {
        silent();
        return 1;
    }
    // the sum straight from the delay lines, stem by stem, only the stems that count: the
    // audio thread reads a quarter of the stems for an acapella or a stem's solo
    float* sum = e->mixSum.data();
    for (int c = 0; c < ch; ++c) {
        const float* d = e->dry.readPtr(c);
        if (direct != 0.0f)
            for (int i = 0; i < n; ++i) sum[i] = direct * d[i];
        else
            std::fill(sum, sum + n, 0.0f);
        for (int s = 0; s < S; ++s) {
            const float g = gains[s], *x = e->hostStems.readPtr(s * ch + c);
            if (g == 1.0f)
                for (int i = 0; i < n; ++i) sum[i] += x[i];
            else if (g != 0.0f)
                for (int i = 0; i < n; ++i) sum[i] += g * x[i];
        }
        float* o = out + c * ocs;
        for (int i = 0; i < n; ++i) o[i * oss] = sum[i];
    }
    e->hostStems.drop(n);
    e->dry.drop(n);
    return 0;
}

void sf_engine_free(sf_engine* e) {
    if (!e) return;
    sf_engine_free(e->spare);
    try {
        if (e->worker.joinable()) {
            e->quit = true;
            sem_post(&e->wake);
            e->worker.join();
        }
        if (e->wakeReady) sem_destroy(&e->wake);
        delete e;
    } catch (...) {}
}

}  // extern "C"
