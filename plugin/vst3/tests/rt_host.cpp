// stemforge VST3 -- a real-time host for the tests: the plugin in real-time mode (as a DAW
// plays it, not the offline mode of pedalboard and DawDreamer), an audio thread calling
// processBlock back to back, and a model switch from the host's side while it plays.
// SPDX-License-Identifier: GPL-3.0-or-later
//
//   stemforge_rt_host BUNDLE FROM_MODEL TO_MODEL RATE BLOCK
//
// Counted in blocks, never timed, so that the verdict does not depend on the machine's speed:
// the old model plays its latency's blocks and 50 more; the host switches the model; the new
// model's file cannot be opened (the load gate below holds the plugin's loader) until the audio
// thread has played GATE_BLOCKS more blocks, which it can do only if no processBlock waits for
// the load; then the new model plays its latency's blocks and 50 more. Prints the latency before
// and after the switch (as the host sees it), the gate ("gate held H blocks B timed_out T"), and
// per phase (before, while switching, after) the blocks played, the silent ones and the longest
// processBlock call (a measurement, not asserted).
//
//   stemforge_rt_host --scenario BUNDLE BLOCK SECONDS RATE:MODEL,MODEL... [RATE:MODEL,...]...
//
// A session: for each rate in turn the host prepares the plugin with the first model, plays,
// switches to each next model while playing (from its message thread, whose loop it runs; a
// model written MODEL/N also sets the margin to N hops, MODEL alone to 1), and
// stops and starts the transport from the audio thread (IAudioProcessor::setProcessing, which
// JUCE's wrapper turns into reset()), counting the heap allocations made in those calls. Prints
// one line per model ("rate R model M latency L blocks B silent S", the blocks played since the
// transport's restart, at least the latency's and 50 more, and the silent ones among them) and
// one per transport stop ("reset_allocations N"). Built with JUCE_LOG_ASSERTIONS, the host logs every JUCE assertion
// its hosting code hits ("JUCE Assertion failure in ..."), e.g. a plugin calling the host from
// a thread other than its message thread.
//
//   stemforge_rt_bench --bench ...
//
// bench/plugin.py's timing host (rt_bench.cpp): the same sources built a second time, optimised,
// as stemforge_rt_bench (the tests' stemforge_rt_host is built at -O0; see CMakeLists.txt).
//
// Both modes play the mix (the "output" parameter), not a single stem: in real time a hop the
// model's worker has not finished when due plays its input whole in `other` (a miss, counted by
// the plugin), so a single stem can be silent for a missed hop on a loaded machine, while the
// mix is silent only while the delay line fills, whatever the machine's speed.
#include <JuceHeader.h>

#include "host_parameters.h"

#include <pluginterfaces/vst/ivstaudioprocessor.h>
#include <pluginterfaces/vst/ivstcomponent.h>

#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

// Every allocation of the process passes here; those of the thread that set `countHere` count.
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}
static thread_local bool countHere = false;
static std::atomic<long> counted{0};
extern "C" void* malloc(size_t n) {
    if (countHere) counted.fetch_add(1, std::memory_order_relaxed);
    return __libc_malloc(n);
}
extern "C" void* calloc(size_t a, size_t b) {
    if (countHere) counted.fetch_add(1, std::memory_order_relaxed);
    return __libc_calloc(a, b);
}
extern "C" void* realloc(void* p, size_t n) {
    if (countHere) counted.fetch_add(1, std::memory_order_relaxed);
    return __libc_realloc(p, n);
}
extern "C" int posix_memalign(void** p, size_t align, size_t n) {
    if (countHere) counted.fetch_add(1, std::memory_order_relaxed);
    *p = __libc_memalign(align, n);
    return *p ? 0 : 12;
}
extern "C" void* aligned_alloc(size_t align, size_t n) {
    if (countHere) counted.fetch_add(1, std::memory_order_relaxed);
    return __libc_memalign(align, n);
}
extern "C" void free(void* p) { __libc_free(p); }

// The load gate. The plugin opens a model file (std::ifstream, i.e. fopen64) before
// torch::jit::load reads it; while the gate is closed, an open of the gated file from any thread
// but the host's message thread waits until the audio thread opens the gate (or 120 s pass, a
// guard against a hang, reported as timed_out). A plugin whose processBlock waited for the load
// would never let the audio thread get there.
static constexpr long GATE_BLOCKS = 20;
static std::thread::id messageThread;
static std::atomic<const char*> gatedFile{nullptr};  // the file name's tail, e.g. "/live.ts"
static std::atomic<bool> gateClosed{false};
static std::atomic<long> gateHeld{0}, gateTimedOut{0};
extern "C" FILE* fopen64(const char* path, const char* mode) {
    using Fopen = FILE* (*)(const char*, const char*);
    static const auto real = reinterpret_cast<Fopen>(dlsym(RTLD_NEXT, "fopen64"));
    const char* tail = gatedFile.load();
    if (tail && path && gateClosed.load() && std::this_thread::get_id() != messageThread) {
        const size_t n = std::strlen(path), k = std::strlen(tail);
        if (n >= k && std::strcmp(path + n - k, tail) == 0) {
            ++gateHeld;
            const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
            while (gateClosed.load() && std::chrono::steady_clock::now() < until)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            if (gateClosed.exchange(false)) ++gateTimedOut;
        }
    }
    return real(path, mode);
}

static int scenario(int argc, char** argv);
int benchMain(int argc, char** argv);  // rt_bench.cpp

int main(int argc, char** argv) {
    if (argc > 1 && juce::String(argv[1]) == "--scenario") return scenario(argc, argv);
    if (argc > 1 && juce::String(argv[1]) == "--bench") return benchMain(argc - 1, argv + 1);
    if (argc != 6) {
        std::fprintf(stderr, "usage: stemforge_rt_host BUNDLE FROM_MODEL TO_MODEL RATE BLOCK\n");
        return 2;
    }
    juce::ScopedJuceInitialiser_GUI juce;
    messageThread = std::this_thread::get_id();
    const juce::String bundle(argv[1]), from(argv[2]), to(argv[3]);
    const double rate = std::atof(argv[4]);
    const int block = std::atoi(argv[5]);

    juce::VST3PluginFormat format;
    juce::OwnedArray<juce::PluginDescription> types;
    format.findAllTypesForFile(types, bundle);
    if (types.isEmpty()) {
        std::fprintf(stderr, "no plugin in %s\n", argv[1]);
        return 1;
    }
    juce::String error;
    auto plugin = format.createInstanceFromDescription(*types[0], rate, block, error);
    if (!plugin) {
        std::fprintf(stderr, "cannot load: %s\n", error.toRawUTF8());
        return 1;
    }
    auto* model = findParameter(*plugin, "model");
    if (!model || !choose(model, from)) {
        std::fprintf(stderr, "no model %s\n", argv[2]);
        return 1;
    }
    if (auto* output = findParameter(*plugin, "output"); !output || !choose(output, "mix")) {
        std::fprintf(stderr, "no output mix\n");
        return 1;
    }
    plugin->setNonRealtime(false);
    plugin->prepareToPlay(rate, block);
    const int latencyBefore = plugin->getLatencySamples();
    const std::string gated = "/" + to.toStdString() + ".ts";
    gatedFile = gated.c_str();

    std::atomic<int> phase{0};  // 0 before the switch, 1 while switching, 2 after
    std::atomic<bool> stop{false};
    double longest[3] = {0, 0, 0};
    std::atomic<long> silent[3] = {0, 0, 0}, count[3] = {0, 0, 0};
    std::thread audio([&] {
        juce::AudioBuffer<float> buffer(plugin->getTotalNumOutputChannels(), block);
        juce::MidiBuffer midi;
        juce::Random random(1);
        const auto period = std::chrono::duration<double>(block / rate);
        auto next = std::chrono::steady_clock::now();
        while (!stop) {
            for (int c = 0; c < buffer.getNumChannels(); ++c)
                for (int i = 0; i < block; ++i) buffer.setSample(c, i, c < 2 ? random.nextFloat() * 0.2f - 0.1f : 0.0f);
            const int p = phase.load();
            const auto t0 = std::chrono::steady_clock::now();
            plugin->processBlock(buffer, midi);
            const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            longest[p] = std::max(longest[p], dt);
            ++count[p];
            if (buffer.getMagnitude(0, 0, block) == 0.0f) ++silent[p];
            if (p == 1 && count[1] == GATE_BLOCKS) gateClosed = false;  // the audio thread got here
            // the device's pace; a thread that falls behind catches up without sleeping
            next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
            std::this_thread::sleep_until(next);
        }
    });
    // the host's message loop, as a DAW runs it, until the audio thread has played `need` blocks
    // of a phase (a guard of 10 minutes against a hang)
    auto pumpUntil = [&](int p, long need) {
        for (int i = 0; i < 60000 && count[p] < need; ++i)
            juce::MessageManager::getInstance()->runDispatchLoopUntil(10);
    };
    pumpUntil(0, latencyBefore / block + 50);
    gateClosed = true;
    phase = 1;
    if (!choose(model, to)) {
        std::fprintf(stderr, "no model %s\n", argv[3]);
        stop = true;
        audio.join();
        return 1;
    }
    // the switch is over when the host has been told the new latency (the same guard)
    for (int i = 0; i < 60000 && plugin->getLatencySamples() == latencyBefore; ++i)
        juce::MessageManager::getInstance()->runDispatchLoopUntil(10);
    phase = 2;
    pumpUntil(2, plugin->getLatencySamples() / block + 50);
    stop = true;
    audio.join();
    gateClosed = false;
    std::printf("latency %d %d\n", latencyBefore, plugin->getLatencySamples());
    std::printf("gate held %ld blocks %ld timed_out %ld\n", gateHeld.load(), GATE_BLOCKS, gateTimedOut.load());
    for (int p = 0; p < 3; ++p)
        std::printf("phase %d blocks %ld silent %ld longest_ms %.3f\n", p, count[p].load(), silent[p].load(),
                    1e3 * longest[p]);
    plugin->releaseResources();
    plugin.reset();
    return 0;
}

// ------------------------------------------------------------------------------ --scenario
static int scenario(int argc, char** argv) {
    if (argc < 6) {
        std::fprintf(stderr, "usage: stemforge_rt_host --scenario BUNDLE BLOCK SECONDS RATE:MODEL,MODEL...\n");
        return 2;
    }
    juce::ScopedJuceInitialiser_GUI juce;
    const juce::String bundle(argv[2]);
    const int block = std::atoi(argv[3]);
    const double seconds = std::atof(argv[4]);
    juce::VST3PluginFormat format;
    juce::OwnedArray<juce::PluginDescription> types;
    format.findAllTypesForFile(types, bundle);
    if (types.isEmpty()) {
        std::fprintf(stderr, "no plugin in %s\n", argv[2]);
        return 1;
    }
    juce::String error;
    auto plugin = format.createInstanceFromDescription(*types[0], 44100.0, block, error);
    if (!plugin) {
        std::fprintf(stderr, "cannot load: %s\n", error.toRawUTF8());
        return 1;
    }
    if (auto* output = findParameter(*plugin, "output"); !output || !choose(output, "mix")) {
        std::fprintf(stderr, "no output mix\n");
        return 1;
    }
    // the processor's VST3 interface, to stop and start the transport as a DAW does
    Steinberg::Vst::IAudioProcessor* vst = nullptr;
    if (auto* component = static_cast<Steinberg::Vst::IComponent*>(plugin->getPlatformSpecificData()))
        component->queryInterface(Steinberg::Vst::IAudioProcessor::iid, reinterpret_cast<void**>(&vst));
    if (!vst) {
        std::fprintf(stderr, "no IAudioProcessor\n");
        return 1;
    }
    auto pump = [](double s) { juce::MessageManager::getInstance()->runDispatchLoopUntil(int(s * 1000)); };
    plugin->setNonRealtime(false);
    for (int a = 5; a < argc; ++a) {
        const auto spec = juce::StringArray::fromTokens(juce::String(argv[a]), ":", "");
        const double rate = spec[0].getDoubleValue();
        const auto models = juce::StringArray::fromTokens(spec[1], ",", "");
        if (!chooseModelAndMargin(*plugin, models[0])) {
            std::fprintf(stderr, "no model %s\n", models[0].toRawUTF8());
            return 1;
        }
        plugin->releaseResources();
        plugin->prepareToPlay(rate, block);
        std::atomic<bool> stop{false}, transport{false}, restarted{false};
        std::atomic<long> blocks{0}, silent{0};
        std::thread audio([&] {
            juce::AudioBuffer<float> buffer(plugin->getTotalNumOutputChannels(), block);
            juce::MidiBuffer midi;
            juce::Random random(1);
            const auto period = std::chrono::duration<double>(block / rate);
            auto next = std::chrono::steady_clock::now();
            while (!stop) {
                if (transport.exchange(false)) {  // stop and start, on the audio thread
                    counted = 0;
                    countHere = true;
                    vst->setProcessing(false);
                    vst->setProcessing(true);
                    countHere = false;
                    std::printf("reset_allocations %ld\n", counted.load());
                    blocks = 0;  // counted from the restart on
                    silent = 0;
                    restarted = true;
                }
                for (int c = 0; c < buffer.getNumChannels(); ++c)
                    for (int i = 0; i < block; ++i)
                        buffer.setSample(c, i, c < 2 ? random.nextFloat() * 0.2f - 0.1f : 0.0f);
                plugin->processBlock(buffer, midi);
                ++blocks;
                if (buffer.getMagnitude(0, 0, block) == 0.0f) ++silent;
                next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
                std::this_thread::sleep_until(next);
            }
        });
        for (int m = 0; m < models.size(); ++m) {
            if (m > 0) {
                const int old = plugin->getLatencySamples();
                if (!chooseModelAndMargin(*plugin, models[m])) {
                    std::fprintf(stderr, "no model %s\n", models[m].toRawUTF8());
                    stop = true;
                    audio.join();
                    return 1;
                }
                for (int i = 0; i < 1200 && plugin->getLatencySamples() == old; ++i) pump(0.05);  // guard: 60 s
            }
            pump(seconds / 2);
            restarted = false;
            transport = true;
            // counted from the transport's restart: the delay line's silence (the latency), then
            // at least 50 blocks of the model (a guard of 10 minutes against a hang)
            const long need = plugin->getLatencySamples() / block + 50;
            for (int i = 0; i < 12000 && !(restarted && blocks >= need); ++i) pump(0.05);
            std::printf("rate %d model %s latency %d blocks %ld silent %ld\n", juce::roundToInt(rate),
                        models[m].toRawUTF8(), plugin->getLatencySamples(), blocks.load(), silent.load());
            std::fflush(stdout);
        }
        stop = true;
        audio.join();
    }
    vst->release();  // queryInterface counted a reference: the plugin is destroyed only without it
    plugin->releaseResources();
    plugin.reset();
    return 0;
}
