// stemforge VST3 -- the JUCE audio processor.
// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <JuceHeader.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "DelayLine.h"
#include "EngineApi.h"

namespace stemforge {

constexpr int kStemBuses = 4;  // one output bus per stem of the four-stem models
extern const char* const kStemNames[kStemBuses];

// The engine library (libstemforge_engine.so beside the plugin binary), opened once.
struct EngineLibrary {
    static EngineLibrary& get();
    bool ok() const { return handle != nullptr; }
    juce::String error;
    void* handle = nullptr;
    sf_model_load_fn modelLoad = nullptr;
    sf_model_free_fn modelFree = nullptr;
    sf_engine_create_fn engineCreate = nullptr;
    sf_engine_latency_fn engineLatency = nullptr;
    sf_engine_misses_fn engineMisses = nullptr;
    sf_engine_rescued_fn engineRescued = nullptr;
    sf_engine_worker_times_fn engineWorkerTimes = nullptr;
    sf_engine_sync_fn engineSync = nullptr;
    sf_model_latency_fn modelLatency = nullptr;
    sf_engine_reset_fn engineReset = nullptr;
    sf_engine_refresh_fn engineRefresh = nullptr;
    sf_engine_process_fn engineProcess = nullptr;
    sf_engine_free_fn engineFree = nullptr;

private:
    EngineLibrary();
};

// A loaded model, shared by the engines built from it.
struct LoadedModel {
    ~LoadedModel();
    sf_model* model = nullptr;
    sf_model_info info{};
    juce::String path;
    juce::Time modified;
};

// One stream's engine at a host rate and channel count; built off the audio thread.
struct Stream {
    ~Stream();
    std::shared_ptr<LoadedModel> model;
    sf_engine* engine = nullptr;
    int latency = 0, channels = 2, maxBlock = 0;
    bool realtime = false;  // the model in the engine's worker thread (the host plays in real time)
    bool residual = false;  // "other" takes input - sum(stems) (models whose masks sum to the mix)
    int residualStem = -1;
    // stems by name, as StemSeparator: the model's stem of each plugin stem (drums, bass, other,
    // vocals; -1 if the model lacks it), and the plugin stem of each model stem (-1: none)
    int modelStemOf[kStemBuses] = {-1, -1, -1, -1};
    int pluginStemOf[SF_MAX_STEMS] = {};
    // scratch for the audio thread, sized when the stream is built
    juce::AudioBuffer<float> stems, dry;
    std::vector<float*> stemPtrs, dryPtrs;
    std::vector<const float*> inPtrs;
    DelayLine bypass;  // the input delayed by `latency`: the output while the host bypasses the plugin
};

// Choices and switches that keep the normalised value the host set (the choice is its rounding),
// instead of JUCE's snapped one: a saved state then restores exactly what the host had set, as
// hosts and validators check (pluginval's state restoration compares within 0.1). JUCE's own
// classes snap their saved value but not the one they report, so a restored state moved them.
class ExactChoice : public juce::AudioParameterChoice {
public:
    ExactChoice(const juce::ParameterID& id, const juce::String& name, const juce::StringArray& items, int def)
        : AudioParameterChoice(id, name, items, def), exact(0.0f, float(std::max(items.size() - 1, 1))) {}
    const juce::NormalisableRange<float>& getNormalisableRange() const override { return exact; }

private:
    juce::String getText(float v, int length) const override {
        return choices[juce::jlimit(0, choices.size() - 1, juce::roundToInt(convertFrom0to1(v)))].substring(0, length);
    }
    juce::NormalisableRange<float> exact;
};

class ExactBool : public juce::AudioParameterBool {
public:
    using AudioParameterBool::AudioParameterBool;
    const juce::NormalisableRange<float>& getNormalisableRange() const override { return exact; }

private:
    juce::NormalisableRange<float> exact{0.0f, 1.0f};
};

class StemforgeProcessor : public juce::AudioProcessor,
                           private juce::AudioProcessorValueTreeState::Listener,
                           public juce::VST3ClientExtensions,
                           private juce::AsyncUpdater {
public:
    StemforgeProcessor();
    ~StemforgeProcessor() override;

    void prepareToPlay(double sampleRate, int samplesPerBlock) override;
    void releaseResources() override;
    void reset() override;
    bool isBusesLayoutSupported(const BusesLayout& layouts) const override;
    void processBlock(juce::AudioBuffer<float>&, juce::MidiBuffer&) override;
    void processBlockBypassed(juce::AudioBuffer<float>&, juce::MidiBuffer&) override;
    using AudioProcessor::processBlock;

    juce::AudioProcessorEditor* createEditor() override;
    bool hasEditor() const override { return true; }

    const juce::String getName() const override { return "stemforge"; }
    bool acceptsMidi() const override { return false; }
    bool producesMidi() const override { return false; }
    bool isMidiEffect() const override { return false; }
    double getTailLengthSeconds() const override;

    int getNumPrograms() override { return 1; }
    int getCurrentProgram() override { return 0; }
    void setCurrentProgram(int) override {}
    // one program, named: JUCE publishes a program list of one, and hosts and validators want names
    const juce::String getProgramName(int) override { return "stemforge"; }
    void changeProgramName(int, const juce::String&) override {}

    // The VST3 host sets its handler from its UI thread (its message thread): remembered, as the
    // thread to tell the host of changes on.
    void setIComponentHandler(Steinberg::FUnknown*) override { hostThread = std::this_thread::get_id(); }

    void getStateInformation(juce::MemoryBlock& destData) override;
    void setStateInformation(const void* data, int sizeInBytes) override;

    // The model menu: presets, the model files found in the model folders, then "file".
    const juce::StringArray& modelChoices() const { return choices; }
    juce::String getStatus() const;
    void setModelFile(const juce::File& file);  // selects "file" with this path
    juce::String getModelFile() const;

private:
    void parameterChanged(const juce::String& id, float value) override;
    void handleAsyncUpdate() override { publishLatency(); }
    void publishLatency();
    void anticipateLatency();
    bool onHostsThread() const;
    void tellHostLatency(int latency);
    bool applyReset(Stream& s);
    void requestBuild();
    // Model samples the real-time worker has for a hop: the margin's hops of this model.
    int headroomFor(const sf_model_info& info) const { return (marginIndex.load() + 1) * info.hop; }
    void waitForBuild();
    // Once prepared, wait for the requested model and tell the host its latency at once.
    void settleIfPrepared();
    void loaderLoop();
    void build();
    juce::String resolveModel(juce::String& error) const;
    void setStatus(const juce::String& s, bool isError);
    void silenceAll(juce::AudioBuffer<float>& buffer);
    juce::AudioProcessorValueTreeState::ParameterLayout makeLayout();
    static BusesProperties buses();

    juce::StringArray choices;
    juce::Array<juce::File> choiceFiles;  // per choice (studio/live/found files), empty for "file"

    // what the loader builds for: set by prepareToPlay, read by the loader
    std::mutex configLock;
    double rate = 0.0;
    int channels = 2, maxBlock = 0;
    juce::String modelFile;  // the path for the "file" choice
    // whether the host plays in real time (not isNonRealtime()): the next build's engine mode
    std::atomic<bool> wantRealtime{true};

    // the loader thread
    std::thread loader;
    std::mutex loaderLock;
    std::condition_variable loaderWake, loaderDone;
    std::atomic<bool> quitting{false};
    std::atomic<int> requested{0}, done{0};
    std::atomic<int> modelIndex{0};   // the model choice last built for (the parameter's default)
    std::atomic<int> marginIndex{0};  // the margin choice last built for: hops of headroom less one
    std::atomic<int> spareIndex{1};   // the spare worker's switch last built for (the default, on)

    // the stream the audio thread runs; swapped under streamLock (the audio thread only try_locks)
    std::mutex streamLock;
    std::unique_ptr<Stream> stream;
    std::shared_ptr<LoadedModel> lastModel;
    std::atomic<bool> failed{false};
    std::atomic<int> failures{0};  // counted by the audio thread, reported by the loader
    std::atomic<int> builtLatency{0};
    std::atomic<bool> builtRealtime{false};     // the mode of the stream the audio thread runs
    std::atomic<long long> misses{0};           // hops of the stream the model was late for (the audio thread's copy)
    std::atomic<long long> rescued{0};          // of the others, hops the spare worker delivered (the same)
    std::atomic<bool> builtSpare{false};        // the stream the audio thread runs has a spare worker
    std::atomic<std::thread::id> hostThread{};  // the VST3 host's message thread (see setIComponentHandler)
    // reset() on any thread only asks; the processing thread resets, from what the loader prepared
    std::atomic<bool> resetPending{false}, refreshWanted{false};
    std::mutex modelLock;
    std::shared_ptr<LoadedModel> currentModel;  // the model of the stream, for anticipateLatency
    char failure[SF_ERROR_CHARS] = {0};

    mutable std::mutex statusLock;
    juce::String status;

    // parameters, read on the audio thread
    std::atomic<float>* outputParam = nullptr;
    std::atomic<float>* stemParam = nullptr;
    std::atomic<float>* gainParams[kStemBuses] = {};
    std::atomic<float>* muteParams[kStemBuses] = {};
    float lastGains[SF_MAX_STEMS] = {};
    bool gainsValid = false;

public:
    juce::AudioProcessorValueTreeState params;  // last: its layout reads the members above

private:
    JUCE_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(StemforgeProcessor)
};

}  // namespace stemforge
