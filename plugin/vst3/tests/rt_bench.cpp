// stemforge VST3 -- rt_host's --bench mode, for bench/plugin.py: the plugin in real-time mode (as a
// DAW plays it; pedalboard and DawDreamer render offline), processBlock called from an audio
// thread paced like a device, each call timed.
// SPDX-License-Identifier: GPL-3.0-or-later
//
//   stemforge_rt_bench --bench BUNDLE MODEL RATE BLOCK INPUT TIMES PACE PRIORITY [WARM [PERIODS]]
//
// MODEL: a model of the plugin's menu, or MODEL/N to give its worker a margin of N hops.
// INPUT: raw float32, two planar channels of equal length (the audio played, block by block).
// TIMES: written as raw float64, four per block: the seconds its processBlock call took, how
// many seconds after its place on the device's clock it started (the audio thread woken late: the
// machine held it back, as the engine cannot), 1 if the device had run dry before it, else 0, and
// the second it started at, from the timed stream's start.
// PACE: blocks start at PACE x real time (0: back to back). PRIORITY: 1 runs the audio thread
// at SCHED_FIFO 50, as JACK and DAWs do where the system allows it. WARM: seconds of silence
// played first, untimed (the model loads and its first calls settle), then the plugin is reset
// so that its miss count starts with the timed input. PERIODS: the blocks the device's buffer holds
// (default 2, JACK's): a block up to PERIODS - 1 blocks late is followed by the blocks owed back to
// back; one later than that finds the device run dry, and the clock starts again from it, as a
// host restarts its stream after an xrun (the time lost is not played back). 0: never runs dry.
// Prints the latency the plugin reports once it has played and what the audio thread got;
// with STEMFORGE_VERBOSE set, the plugin says on stderr how many hops its model missed.
#include <JuceHeader.h>

#include "host_parameters.h"

#include <pthread.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

// Called by rt_host.cpp's main with argv[0] = "--bench".
int benchMain(int argc, char** argv) {
    if (argc < 9 || argc > 11) {
        std::fprintf(stderr,
                     "usage: stemforge_rt_bench --bench BUNDLE MODEL RATE BLOCK INPUT TIMES PACE PRIORITY "
                     "[WARM [PERIODS]]\n");
        return 2;
    }
    juce::ScopedJuceInitialiser_GUI juce;
    const double rate = std::atof(argv[3]);
    const int block = std::atoi(argv[4]);
    const double pace = std::atof(argv[7]);
    const bool priority = std::atoi(argv[8]) != 0;
    const double warm = argc >= 10 ? std::atof(argv[9]) : 0.0;
    const int periods = argc == 11 ? std::atoi(argv[10]) : 2;

    std::ifstream in(argv[5], std::ios::binary | std::ios::ate);
    if (!in) {
        std::fprintf(stderr, "cannot read %s\n", argv[5]);
        return 1;
    }
    const size_t total = size_t(in.tellg()) / sizeof(float) / 2;
    std::vector<float> audio(2 * total);
    in.seekg(0);
    in.read(reinterpret_cast<char*>(audio.data()), std::streamsize(audio.size() * sizeof(float)));

    juce::VST3PluginFormat format;
    juce::OwnedArray<juce::PluginDescription> types;
    format.findAllTypesForFile(types, argv[1]);
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
    if (!chooseModelAndMargin(*plugin, argv[2]) || !choose(findParameter(*plugin, "stem"), "vocals")) {
        std::fprintf(stderr, "no model %s\n", argv[2]);
        return 1;
    }
    plugin->setNonRealtime(false);
    plugin->prepareToPlay(rate, block);

    const size_t blocks = total / size_t(block);
    std::vector<double> times(4 * blocks);
    std::string priorityNote = "normal priority";
    std::thread audioThread([&] {
        if (priority) {
            sched_param param{};
            param.sched_priority = 50;
            priorityNote = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param) == 0
                               ? "SCHED_FIFO 50"
                               : "normal priority (SCHED_FIFO not permitted)";
        }
        juce::AudioBuffer<float> buffer(
            std::max(plugin->getTotalNumInputChannels(), plugin->getTotalNumOutputChannels()), block);
        juce::MidiBuffer midi;
        const auto period = std::chrono::duration<double>(pace > 0 ? block / rate / pace : 0.0);
        auto next = std::chrono::steady_clock::now();
        auto origin = next;
        if (warm > 0) {
            const auto warmPeriod = std::chrono::duration<double>(block / rate);
            for (long b = 0; b < long(warm * rate / block); ++b) {
                buffer.clear();
                plugin->processBlock(buffer, midi);
                next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(warmPeriod);
                std::this_thread::sleep_until(next);
            }
            plugin->reset();
            next = origin = std::chrono::steady_clock::now();
        }
        for (size_t b = 0; b < blocks; ++b) {
            buffer.clear();
            for (int c = 0; c < 2; ++c)
                buffer.copyFrom(c, 0, audio.data() + size_t(c) * total + b * size_t(block), block);
            const auto t0 = std::chrono::steady_clock::now();
            plugin->processBlock(buffer, midi);
            times[4 * b] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            // after a late start the next blocks follow back to back until the clock is caught up,
            // unless the start was too late for the device's buffer: then the clock starts again
            const double late = pace > 0 ? std::max(0.0, std::chrono::duration<double>(t0 - next).count()) : 0.0;
            const bool dry = periods > 0 && late > (periods - 1) * period.count();
            times[4 * b + 1] = late;
            times[4 * b + 2] = dry ? 1.0 : 0.0;
            times[4 * b + 3] = std::chrono::duration<double>(t0 - origin).count();
            if (dry) next = t0;
            if (pace > 0) {
                next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
                std::this_thread::sleep_until(next);
            }
        }
    });
    audioThread.join();
    // the latency as the host knows it once the stream plays (the model's, loaded by then)
    std::printf("latency %d\n", plugin->getLatencySamples());
    std::printf("audio thread %s\n", priorityNote.c_str());
    std::ofstream out(argv[6], std::ios::binary);
    out.write(reinterpret_cast<const char*>(times.data()), std::streamsize(times.size() * sizeof(double)));
    std::fflush(stdout);
    plugin->releaseResources();
    plugin.reset();
    return 0;
}
