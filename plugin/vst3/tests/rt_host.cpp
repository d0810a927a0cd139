// stemforge VST3 -- a real-time host for the tests: the plugin in real-time mode (as a DAW
// plays it, not the offline mode of pedalboard and DawDreamer), an audio thread calling
// processBlock back to back, and a model switch from the host's side while it plays.
// SPDX-License-Identifier: GPL-3.0-or-later
//
//   stemforge_rt_host BUNDLE FROM_MODEL TO_MODEL RATE BLOCK SECONDS
//
// Prints: the latency before and after the switch (as the host sees it), the longest
// processBlock call before, during and after the switch, and the number of silent blocks.
#include <JuceHeader.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

static juce::AudioProcessorParameter* findParameter(juce::AudioPluginInstance& p, const juce::String& name) {
    for (auto* param : p.getParameters())
        if (param->getName(64) == name) return param;
    return nullptr;
}

static bool choose(juce::AudioProcessorParameter* param, const juce::String& text) {
    const int steps = param->getNumSteps();
    for (int k = 0; k < steps; ++k) {
        const float v = steps > 1 ? float(k) / float(steps - 1) : 0.0f;
        if (param->getText(v, 64) == text) {
            param->setValueNotifyingHost(v);
            return true;
        }
    }
    return false;
}

int main(int argc, char** argv) {
    if (argc != 7) {
        std::fprintf(stderr, "usage: stemforge_rt_host BUNDLE FROM_MODEL TO_MODEL RATE BLOCK SECONDS\n");
        return 2;
    }
    juce::ScopedJuceInitialiser_GUI juce;
    const juce::String bundle(argv[1]), from(argv[2]), to(argv[3]);
    const double rate = std::atof(argv[4]);
    const int block = std::atoi(argv[5]);
    const double seconds = std::atof(argv[6]);

    juce::VST3PluginFormat format;
    juce::OwnedArray<juce::PluginDescription> types;
    format.findAllTypesForFile(types, bundle);
    if (types.isEmpty()) { std::fprintf(stderr, "no plugin in %s\n", argv[1]); return 1; }
    juce::String error;
    auto plugin = format.createInstanceFromDescription(*types[0], rate, block, error);
    if (!plugin) { std::fprintf(stderr, "cannot load: %s\n", error.toRawUTF8()); return 1; }
    auto* model = findParameter(*plugin, "model");
    if (!model || !choose(model, from)) { std::fprintf(stderr, "no model %s\n", argv[2]); return 1; }
    plugin->setNonRealtime(false);
    plugin->prepareToPlay(rate, block);
    const int latencyBefore = plugin->getLatencySamples();

    std::atomic<int> phase{0};  // 0 before the switch, 1 while switching, 2 after
    std::atomic<bool> stop{false};
    double longest[3] = {0, 0, 0};
    long silent[3] = {0, 0, 0}, count[3] = {0, 0, 0};
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
            next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
            std::this_thread::sleep_until(next);  // the device's pace
        }
    });
    auto pump = [](double s) {  // the host's message loop, as a DAW runs it
        juce::MessageManager::getInstance()->runDispatchLoopUntil(int(s * 1000));
    };
    pump(seconds / 3);
    phase = 1;
    if (!choose(model, to)) { std::fprintf(stderr, "no model %s\n", argv[3]); stop = true; audio.join(); return 1; }
    // the switch is over when the host has been told the new latency (or after 10 s)
    const int latencyOfOld = plugin->getLatencySamples();
    for (int i = 0; i < 200 && plugin->getLatencySamples() == latencyOfOld; ++i) pump(0.05);
    phase = 2;
    pump(seconds / 3);
    stop = true;
    audio.join();
    std::printf("latency %d %d\n", latencyBefore, plugin->getLatencySamples());
    for (int p = 0; p < 3; ++p)
        std::printf("phase %d blocks %ld silent %ld longest_ms %.3f\n", p, count[p], silent[p], 1e3 * longest[p]);
    plugin->releaseResources();
    plugin.reset();
    return 0;
}
