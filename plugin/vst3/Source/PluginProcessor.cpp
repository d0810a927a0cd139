// stemforge VST3 -- the JUCE audio processor: parameters, buses, state, the model loader
// thread and the real-time block path over the engine library.
// SPDX-License-Identifier: GPL-3.0-or-later
#include "PluginProcessor.h"

#include <dlfcn.h>
#include <sched.h>

#include <pluginterfaces/vst/ivsteditcontroller.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#ifndef STEMFORGE_TORCH_LIB_DIR
#define STEMFORGE_TORCH_LIB_DIR ""
#endif
#ifndef STEMFORGE_VERSION
#define STEMFORGE_VERSION "0.1.0"
#endif

namespace stemforge {

const char* const kStemNames[kStemBuses] = {"drums", "bass", "other", "vocals"};
static const char* const kFileChoice = "file";

// ----------------------------------------------------------------------------- the library
static juce::File ownBinary() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<const void*>(&ownBinary), &info) && info.dli_fname)
        return juce::File(juce::String(juce::CharPointer_UTF8(info.dli_fname)));
    return {};
}

EngineLibrary& EngineLibrary::get() {
    static EngineLibrary library;
    return library;
}

EngineLibrary::EngineLibrary() {
    const juce::String torchHint =
        juce::String("The bundle carries the libtorch and libsoxr its engine needs, beside it in "
                     "Contents/x86_64-linux (built against torch's ") + STEMFORGE_TORCH_LIB_DIR
        + "). Copy the whole stemforge.vst3 folder again (python build.py plugin --install), or set "
          "STEMFORGE_TORCH_LIB to a folder holding a libtorch_cpu.so of the same torch version before "
          "starting the host.";
    // The folder given by STEMFORGE_TORCH_LIB first: its libraries, loaded globally, satisfy
    // the engine's dependencies by their names wherever the built-in search path points.
    if (const char* dir = std::getenv("STEMFORGE_TORCH_LIB"); dir && *dir) {
        for (const char* lib : {"libc10.so", "libtorch_cpu.so", "libtorch.so"}) {
            auto path = juce::File(juce::String(dir)).getChildFile(lib).getFullPathName();
            if (!dlopen(path.toRawUTF8(), RTLD_NOW | RTLD_GLOBAL)) {
                error = "stemforge: STEMFORGE_TORCH_LIB=" + juce::String(dir) + " does not hold a usable " + lib + " ("
                        + juce::String(dlerror()) + ").";
                return;
            }
        }
    }
    auto engine = ownBinary().getParentDirectory().getChildFile("libstemforge_engine.so");
    if (!engine.existsAsFile()) {
        error = "stemforge: the engine library " + engine.getFullPathName()
                + " is missing from the bundle; rebuild the plugin (python build.py plugin).";
        return;
    }
    handle = dlopen(engine.getFullPathName().toRawUTF8(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        error = "stemforge: cannot load its engine (" + juce::String(dlerror()) + "). " + torchHint;
        return;
    }
    auto abi = reinterpret_cast<sf_abi_fn>(dlsym(handle, "sf_abi"));
    modelLoad = reinterpret_cast<sf_model_load_fn>(dlsym(handle, "sf_model_load"));
    modelFree = reinterpret_cast<sf_model_free_fn>(dlsym(handle, "sf_model_free"));
    engineCreate = reinterpret_cast<sf_engine_create_fn>(dlsym(handle, "sf_engine_create"));
    engineLatency = reinterpret_cast<sf_engine_latency_fn>(dlsym(handle, "sf_engine_latency"));
    engineMisses = reinterpret_cast<sf_engine_misses_fn>(dlsym(handle, "sf_engine_misses"));
    engineRescued = reinterpret_cast<sf_engine_rescued_fn>(dlsym(handle, "sf_engine_rescued"));
    engineWorkerTimes = reinterpret_cast<sf_engine_worker_times_fn>(dlsym(handle, "sf_engine_worker_times"));
    engineSync = reinterpret_cast<sf_engine_sync_fn>(dlsym(handle, "sf_engine_sync"));
    modelLatency = reinterpret_cast<sf_model_latency_fn>(dlsym(handle, "sf_model_latency"));
    engineReset = reinterpret_cast<sf_engine_reset_fn>(dlsym(handle, "sf_engine_reset"));
    engineRefresh = reinterpret_cast<sf_engine_refresh_fn>(dlsym(handle, "sf_engine_refresh"));
    engineProcess = reinterpret_cast<sf_engine_process_fn>(dlsym(handle, "sf_engine_process"));
    engineFree = reinterpret_cast<sf_engine_free_fn>(dlsym(handle, "sf_engine_free"));
    if (!abi || abi() != SF_ENGINE_ABI || !modelLoad || !modelFree || !engineCreate || !engineLatency || !engineMisses
        || !engineRescued || !engineWorkerTimes || !engineSync || !modelLatency || !engineReset || !engineRefresh
        || !engineProcess || !engineFree) {
        error = "stemforge: the engine library " + engine.getFullPathName()
                + " does not match the plugin; rebuild the plugin (python build.py plugin).";
        handle = nullptr;
    }
}

LoadedModel::~LoadedModel() {
    if (model) EngineLibrary::get().modelFree(model);
}

Stream::~Stream() {
    if (engine) EngineLibrary::get().engineFree(engine);
}

// --------------------------------------------------------------------------- model folders
// As stemforge.core.lookup.model_dirs: STEMFORGE_MODELS first, then the presets shipped in
// the bundle (where Python looks in the checkout or the wheel), then the models that
// `stemforge models pull` imports: $STEMFORGE_HOME/models, else ~/.cache/stemforge/models
// (or $XDG_CACHE_HOME/stemforge/models).
static juce::File stemforgeHome() {
    if (const char* home = std::getenv("STEMFORGE_HOME"); home && *home)
        return juce::File(juce::String(home).replace(
            "~", juce::File::getSpecialLocation(juce::File::userHomeDirectory).getFullPathName()));
    if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache && *cache)
        return juce::File(juce::String(cache)).getChildFile("stemforge");
    return juce::File::getSpecialLocation(juce::File::userHomeDirectory).getChildFile(".cache/stemforge");
}

static juce::Array<juce::File> modelDirs() {
    juce::Array<juce::File> dirs;
    if (const char* env = std::getenv("STEMFORGE_MODELS"); env && *env) {
        for (auto& p : juce::StringArray::fromTokens(juce::String(env), ":", ""))
            if (p.isNotEmpty()) dirs.add(juce::File(p));
    }
    dirs.add(ownBinary().getParentDirectory().getParentDirectory().getChildFile("Resources").getChildFile("models"));
    dirs.add(stemforgeHome().getChildFile("models"));
    return dirs;
}

// ------------------------------------------------------------------------------ parameters
juce::AudioProcessorValueTreeState::ParameterLayout StemforgeProcessor::makeLayout() {
    // the model menu: the presets, every other model file in the model folders, then "file"
    auto dirs = modelDirs();
    choices.add("studio");
    choices.add("live");
    choiceFiles.add({});
    choiceFiles.add({});
    for (int i = 0; i < 2; ++i)
        for (auto& d : dirs)
            if (auto f = d.getChildFile(choices[i] + ".ts"); f.existsAsFile()) {
                choiceFiles.set(i, f);
                break;
            }
    juce::StringArray others;
    juce::Array<juce::File> otherFiles;
    for (auto& d : dirs) {
        for (auto& f : d.findChildFiles(juce::File::findFiles, false, "*.ts")) {
            auto name = f.getFileNameWithoutExtension();
            if (choices.contains(name) || others.contains(name) || name == kFileChoice) continue;
            others.add(name);
            otherFiles.add(f);
        }
    }
    juce::Array<int> order;
    for (int i = 0; i < others.size(); ++i) order.add(i);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return others[a] < others[b]; });
    for (int i : order) {
        choices.add(others[i]);
        choiceFiles.add(otherFiles[i]);
    }
    choices.add(kFileChoice);
    choiceFiles.add({});

    juce::AudioProcessorValueTreeState::ParameterLayout layout;
    layout.add(
        std::make_unique<ExactChoice>(juce::ParameterID{"output", 1}, "output", juce::StringArray{"stem", "mix"}, 0));
    layout.add(std::make_unique<ExactChoice>(juce::ParameterID{"stem", 1}, "stem",
                                             juce::StringArray(kStemNames, kStemBuses), 3));
    for (int s = 0; s < kStemBuses; ++s) {
        layout.add(std::make_unique<juce::AudioParameterFloat>(
            juce::ParameterID{juce::String(kStemNames[s]) + "_gain", 1}, juce::String(kStemNames[s]) + " gain",
            juce::NormalisableRange<float>(-60.0f, 12.0f, 0.01f), 0.0f,
            juce::AudioParameterFloatAttributes().withLabel("dB")));
        layout.add(std::make_unique<ExactBool>(juce::ParameterID{juce::String(kStemNames[s]) + "_mute", 1},
                                               juce::String(kStemNames[s]) + " mute", false));
    }
    layout.add(std::make_unique<ExactChoice>(juce::ParameterID{"model", 1}, "model", choices, 0));
    // The real-time worker's headroom: one hop (the default, the least latency), or two hops on a
    // machine whose stalls outlast one hop (a VM, a busy or power-saving CPU), which the misses in
    // the plugin's window show. Offline renders wait for the model and do not use it.
    layout.add(std::make_unique<ExactChoice>(juce::ParameterID{"margin", 1}, "margin",
                                             juce::StringArray{"1 hop", "2 hops"}, 0));
    // A second worker that runs every hop too, for no more latency and twice the model's CPU time:
    // a hop the first has not made in time comes from it (on a VM, whose virtual CPUs the
    // hypervisor stops one at a time, the two are rarely both late). On by default; real time
    // only, and only where the plugin may run on 2 CPUs or more (on one it would only take the
    // first worker's time).
    layout.add(std::make_unique<ExactBool>(juce::ParameterID{"spare_worker", 1}, "spare worker", true));
    return layout;
}

juce::AudioProcessor::BusesProperties StemforgeProcessor::buses() {
    auto props = BusesProperties()
                     .withInput("Input", juce::AudioChannelSet::stereo(), true)
                     .withOutput("Output", juce::AudioChannelSet::stereo(), true);
    for (int s = 0; s < kStemBuses; ++s) props = props.withOutput(kStemNames[s], juce::AudioChannelSet::stereo(), true);
    return props;
}

StemforgeProcessor::StemforgeProcessor() : AudioProcessor(buses()), params(*this, nullptr, "stemforge", makeLayout()) {
    outputParam = params.getRawParameterValue("output");
    stemParam = params.getRawParameterValue("stem");
    for (int s = 0; s < kStemBuses; ++s) {
        gainParams[s] = params.getRawParameterValue(juce::String(kStemNames[s]) + "_gain");
        muteParams[s] = params.getRawParameterValue(juce::String(kStemNames[s]) + "_mute");
    }
    params.addParameterListener("model", this);
    params.addParameterListener("margin", this);
    params.addParameterListener("spare_worker", this);
    loader = std::thread([this] { loaderLoop(); });
}

StemforgeProcessor::~StemforgeProcessor() {
    cancelPendingUpdate();
    params.removeParameterListener("model", this);
    params.removeParameterListener("margin", this);
    params.removeParameterListener("spare_worker", this);
    quitting = true;
    loaderWake.notify_all();
    if (loader.joinable()) loader.join();
    stream.reset();
    lastModel.reset();
}

bool StemforgeProcessor::isBusesLayoutSupported(const BusesLayout& layouts) const {
    // JUCE's VST3 host reads the latency after setupProcessing and setBusArrangements (which
    // asks this) but before setActive, which calls prepareToPlay; a change told from
    // prepareToPlay reaches it only through the message loop, which headless hosts never run.
    // So the latency at the new rate is set here, where the rate is already known.
    const_cast<StemforgeProcessor*>(this)->anticipateLatency();
    const auto in = layouts.getMainInputChannelSet(), out = layouts.getMainOutputChannelSet();
    if (in != out) return false;
    if (in != juce::AudioChannelSet::mono() && in != juce::AudioChannelSet::stereo()) return false;
    for (int b = 1; b < layouts.outputBuses.size(); ++b) {
        const auto& set = layouts.outputBuses.getReference(b);
        if (!set.isDisabled() && set != juce::AudioChannelSet::mono() && set != juce::AudioChannelSet::stereo())
            return false;
    }
    return true;
}

double StemforgeProcessor::getTailLengthSeconds() const { return 0.0; }

// The CPUs this process may run on (its affinity), as stemforge.core.processor.usable_cpus.
static int usableCpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return int(std::max(1u, std::thread::hardware_concurrency()));
    return CPU_COUNT(&set);
}

// ------------------------------------------------------------------------------ the loader
void StemforgeProcessor::parameterChanged(const juce::String& id, float value) {
    auto* built = id == "model"          ? &modelIndex
                  : id == "margin"       ? &marginIndex
                  : id == "spare_worker" ? &spareIndex
                                         : nullptr;
    if (built == nullptr) return;
    // the host may set any value between two choices: only another choice is another stream
    if (built->exchange(juce::roundToInt(value)) == juce::roundToInt(value)) return;
    requestBuild();  // may be the audio thread (automation): only a counter and a wake-up
    // On the host's message thread (its UI, or a headless host's calls), wait for the model, so
    // that the host is told the new latency at once, where it may be told.
    if (onHostsThread()) settleIfPrepared();
}

void StemforgeProcessor::settleIfPrepared() {
    bool prepared;
    {
        std::lock_guard<std::mutex> lock(configLock);
        prepared = rate > 0;
    }
    if (prepared) {
        waitForBuild();
        publishLatency();
    }
}

// The host is told of a change (restartComponent, through JUCE's wrapper) only on its message
// thread, as VST3 requires and JUCE's hosting code asserts: the thread it set its handler from,
// which is JUCE's message thread once the host lends its run loop (an open editor), and else a
// thread of the plugin's own. So the latency is published by the host's calls that wait for a
// build (prepareToPlay, setStateInformation, a model change, an offline block) and by an async
// update on JUCE's message thread when that is the host's; never by the loader or audio thread.
// A change no host call is there to tell (a model automated in real time, no editor open)
// waits for the host's next call.
bool StemforgeProcessor::onHostsThread() const {
    const auto host = hostThread.load();
    if (host == std::thread::id()) return juce::MessageManager::existsAndIsCurrentThread();  // no host handler yet
    return std::this_thread::get_id() == host;
}

void StemforgeProcessor::publishLatency() {
    if (!onHostsThread()) return;
    const int latency = builtLatency.load();
    if (latency != getLatencySamples()) tellHostLatency(latency);
}

void StemforgeProcessor::tellHostLatency(int latency) {
    // JUCE's wrapper calls the host at once from JUCE's message thread, and otherwise posts the
    // call to it: on Linux without the host's run loop, a thread of the plugin's own. Here, on
    // the host's thread, it is made JUCE's message thread for the call, and handed back after.
    auto* mm = juce::MessageManager::getInstance();
    const bool lent = !mm->isThisTheMessageThread();
    if (lent) mm->setCurrentThreadAsMessageThread();
    setLatencySamples(latency);
    if (lent)
        juce::MessageManager::callAsync([] { juce::MessageManager::getInstance()->setCurrentThreadAsMessageThread(); });
}

void StemforgeProcessor::anticipateLatency() {
    const int r = juce::roundToInt(getSampleRate());
    if (r <= 0 || !EngineLibrary::get().ok()) return;
    std::shared_ptr<LoadedModel> model;
    {
        std::lock_guard<std::mutex> lock(modelLock);
        model = currentModel;
    }
    if (!model) return;
    const int latency = EngineLibrary::get().modelLatency(model->model, r, std::max(getBlockSize(), 32),
                                                          isNonRealtime() ? 0 : 1, headroomFor(model->info));
    if (latency >= 0 && latency != getLatencySamples() && onHostsThread()) tellHostLatency(latency);
}

void StemforgeProcessor::requestBuild() {
    requested.fetch_add(1);
    loaderWake.notify_one();
}

void StemforgeProcessor::waitForBuild() {
    std::unique_lock<std::mutex> lock(loaderLock);
    loaderDone.wait(lock, [&] { return done.load() >= requested.load() || quitting.load(); });
}

void StemforgeProcessor::loaderLoop() {
    int reported = 0;
    long long reportedMisses = 0;
    juce::uint32 missesReportedAt = 0;
    while (!quitting) {
        {
            std::unique_lock<std::mutex> lock(loaderLock);
            loaderWake.wait_for(lock, std::chrono::milliseconds(20), [&] {
                return quitting.load() || done.load() != requested.load() || refreshWanted.load();
            });
        }
        if (quitting) break;
        if (const long long count = misses.load(); count != reportedMisses && std::getenv("STEMFORGE_VERBOSE")
                                                   && juce::Time::getMillisecondCounter() - missesReportedAt >= 1000) {
            // printing is not real-time safe: the loader says what the audio thread counted
            std::fprintf(stderr,
                         "stemforge: %lld hop(s) missed so far (the model was late; their input "
                         "played in other)\n",
                         count);
            std::fflush(stderr);
            reportedMisses = count;
            missesReportedAt = juce::Time::getMillisecondCounter();
        }
        if (refreshWanted.exchange(false) && stream) {
            // what the next reset needs, made here (the stream is only ever replaced by this thread)
            char err[SF_ERROR_CHARS] = {0};
            if (EngineLibrary::get().engineRefresh(stream->engine, err, sizeof(err)) != 0)
                setStatus(juce::String("stemforge: ") + juce::String(juce::CharPointer_UTF8(err)), true);
        }
        if (const int count = failures.load(); count != reported) {
            // the audio thread's failure, said here: printing is not real-time safe
            setStatus(juce::String(juce::CharPointer_UTF8(failure)) + "; silence until the model is "
                      "changed or the host restarts playback", true);
            reported = count;
        }
        const int target = requested.load();
        if (done.load() == target) continue;
        try {
            build();
        } catch (const std::exception& e) { setStatus(juce::String("stemforge: ") + e.what(), true); } catch (...) {
            setStatus("stemforge: unknown error while loading the model", true);
        }
        {
            std::lock_guard<std::mutex> lock(loaderLock);
            done.store(target);
        }
        loaderDone.notify_all();
        triggerAsyncUpdate();  // the new latency, for the host, on its message thread if JUCE's is the host's
    }
    loaderDone.notify_all();
}

juce::String StemforgeProcessor::resolveModel(juce::String& error) const {
    const int index =
        juce::jlimit(0, choices.size() - 1, juce::roundToInt(params.getRawParameterValue("model")->load()));
    const juce::String name = choices[index];
    if (name == kFileChoice) {
        if (modelFile.isEmpty()) {
            error = "stemforge: model 'file' chosen but no model file set";
            return {};
        }
        return modelFile;
    }
    auto f = choiceFiles[index];
    if (f == juce::File()) {
        juce::StringArray searched;
        for (auto& d : modelDirs()) searched.add(d.getFullPathName());
        error = "stemforge: model '" + name + "' not found (looked for " + name + ".ts in "
                + searched.joinIntoString(", ") + ")";
        return {};
    }
    return f.getFullPathName();
}

void StemforgeProcessor::build() {
    double r;
    int ch, block;
    juce::String path, error;
    const bool realtime = wantRealtime.load();
    {
        std::lock_guard<std::mutex> lock(configLock);
        r = rate;
        ch = channels;
        block = maxBlock;
        path = resolveModel(error);
    }
    if (r <= 0) return;  // not prepared yet: prepareToPlay builds
    std::unique_ptr<Stream> next;
    auto fail = [&](const juce::String& message) {
        {
            std::lock_guard<std::mutex> lock(streamLock);
            std::swap(stream, next);
            failed = false;
        }
        next.reset();
        {
            std::lock_guard<std::mutex> lock(modelLock);
            currentModel.reset();
        }
        builtLatency = 0;
        setStatus(message, true);
    };
    auto& lib = EngineLibrary::get();
    if (!lib.ok()) return fail(lib.error);
    if (error.isNotEmpty()) return fail(error);
    char err[SF_ERROR_CHARS] = {0};
    std::shared_ptr<LoadedModel> model;
    juce::File file(path);
    if (lastModel && lastModel->path == path && lastModel->modified == file.getLastModificationTime()) {
        model = lastModel;
    } else {
        model = std::make_shared<LoadedModel>();
        model->path = path;
        model->modified = file.getLastModificationTime();
        model->model = lib.modelLoad(path.toRawUTF8(), &model->info, err, sizeof(err));
        if (!model->model) return fail("stemforge: " + juce::String(juce::CharPointer_UTF8(err)));
        lastModel = model;
    }
    next = std::make_unique<Stream>();
    next->model = model;
    next->channels = ch;
    next->maxBlock = block;
    next->realtime = realtime;
    const int headroom = headroomFor(model->info);
    const bool spare = realtime && spareIndex.load() != 0 && usableCpus() >= 2;
    // EngineApi.h: 0 offline, 1 real time, 2 real time with a spare worker
    next->engine = lib.engineCreate(model->model, juce::roundToInt(r), ch, block,
                                    spare      ? 2
                                    : realtime ? 1
                                               : 0,
                                    headroom, err, sizeof(err));
    if (!next->engine) {
        next.reset();
        return fail("stemforge: " + juce::String(juce::CharPointer_UTF8(err)));
    }
    next->latency = lib.engineLatency(next->engine);
    const auto& info = model->info;
    for (int s = 0; s < info.num_stems; ++s)
        if (info.sums_to_mix && juce::String(info.stems[s]) == "other") next->residualStem = s;
    juce::StringArray missing, unnamed;
    for (int s = 0; s < info.num_stems; ++s) next->pluginStemOf[s] = -1;
    for (int b = 0; b < kStemBuses; ++b) {
        for (int s = 0; s < info.num_stems; ++s)
            if (juce::String(info.stems[s]) == kStemNames[b]) {
                next->modelStemOf[b] = s;
                next->pluginStemOf[s] = b;
            }
        if (next->modelStemOf[b] < 0) missing.add(kStemNames[b]);
    }
    for (int s = 0; s < info.num_stems; ++s)
        if (next->pluginStemOf[s] < 0) unnamed.add(info.stems[s]);
    next->stems.setSize(info.num_stems * ch, block);
    next->dry.setSize(ch, block);
    next->stemPtrs.resize(size_t(info.num_stems * ch));
    next->dryPtrs.resize(size_t(ch));
    next->inPtrs.resize(size_t(ch));
    for (int k = 0; k < info.num_stems * ch; ++k) next->stemPtrs[size_t(k)] = next->stems.getWritePointer(k);
    for (int k = 0; k < ch; ++k) next->dryPtrs[size_t(k)] = next->dry.getWritePointer(k);
    next->bypass.init(ch, next->latency);
    const int latency = next->latency;
    {
        std::lock_guard<std::mutex> lock(streamLock);
        std::swap(stream, next);
        failed = false;
        gainsValid = false;
        builtRealtime = realtime;
        misses = 0;
        rescued = 0;
        builtSpare = spare;
    }
    next.reset();  // the previous stream, freed off the audio thread
    {
        std::lock_guard<std::mutex> lock(modelLock);
        currentModel = model;
    }
    builtLatency = latency;
    const bool windowed = juce::String(info.kind) == "window";
    setStatus(juce::String(info.name) + " " + info.version + (info.untrained ? " (UNTRAINED test fixture)" : "")
                  + (windowed ? " [window model: for offline renders; each hop runs a whole window]" : "") + ": "
                  + juce::String(info.num_stems) + " stems at " + juce::String(info.sample_rate) + " Hz; latency "
                  + juce::String(latency) + " samples (" + juce::String(1000.0 * latency / r, 1) + " ms) at "
                  + juce::String(juce::roundToInt(r)) + " Hz"
                  + (realtime ? " (the model runs beside the audio thread: "
                                    + (headroom > info.hop ? juce::String(headroom / info.hop) + " hops" : "a hop")
                                    + " of that is its time, the margin"
                                    + (spare ? "; a spare worker runs every hop too)" : ")")
                              : " (offline render: each block waits for the model)")
                  + (missing.isEmpty() ? juce::String()
                                       : "\nno " + missing.joinIntoString(", ")
                                             + " stem in this "
                                               "model: silence on "
                                             + (missing.size() == 1 ? "that bus" : "those buses") + " and as the stem")
                  + (unnamed.isEmpty() ? juce::String()
                                       : "\nstems without a bus (in the mix at 0 dB): " + unnamed.joinIntoString(", ")),
              false);
}

void StemforgeProcessor::setStatus(const juce::String& s, bool isError) {
    {
        std::lock_guard<std::mutex> lock(statusLock);
        status = s;
    }
    if (isError || std::getenv("STEMFORGE_VERBOSE")) {
        std::fprintf(stderr, "%s\n", s.toRawUTF8());
        std::fflush(stderr);
    }
}

juce::String StemforgeProcessor::getStatus() const {
    if (failed) return juce::String(juce::CharPointer_UTF8(failure));
    const long long missed = misses.load(), spared = rescued.load();
    std::lock_guard<std::mutex> lock(statusLock);
    juce::String text = status;
    if (spared > 0)
        text += "\n" + juce::String(spared) + " hop(s) from the spare worker: the first was late, the spare was not";
    if (missed == 0) return text;
    return text + "\n" + juce::String(missed) + " hop(s) missed: the model was late, and their input played "
           "in other (a lapse of the separation, not a dropout); if they recur, set margin to 2 hops (a hop "
           "more latency)"
           // a spare worker helps only where there is none yet and a second CPU for it
           + (builtSpare.load() || usableCpus() < 2
                  ? juce::String()
                  : juce::String(" or turn the spare worker on (twice the model's CPU time)"));
}

void StemforgeProcessor::setModelFile(const juce::File& file) {
    {
        std::lock_guard<std::mutex> lock(configLock);
        modelFile = file.getFullPathName();
    }
    auto* p = params.getParameter("model");
    const float v = p->convertTo0to1(float(choices.indexOf(kFileChoice)));
    if (p->getValue() != v) p->setValueNotifyingHost(v);
    requestBuild();  // another file under the same choice
}

juce::String StemforgeProcessor::getModelFile() const {
    std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(configLock));
    return modelFile;
}

// ------------------------------------------------------------------------------- life cycle
void StemforgeProcessor::prepareToPlay(double sampleRate, int samplesPerBlock) {
    const int ch = juce::jlimit(1, 2, getMainBusNumInputChannels());
    const bool realtime = !isNonRealtime();
    bool changed;
    {
        std::lock_guard<std::mutex> lock(configLock);
        const int block = std::max(samplesPerBlock, 32);
        changed = rate != sampleRate || channels != ch || maxBlock < block || !stream
                  || wantRealtime.exchange(realtime) != realtime || builtRealtime.load() != realtime;
        rate = sampleRate;
        channels = ch;
        maxBlock = std::max(block, changed ? block : maxBlock);
    }
    if (changed) {
        requestBuild();
        waitForBuild();
    } else {
        waitForBuild();
        reset();
    }
    publishLatency();
}

void StemforgeProcessor::releaseResources() {
    if (std::getenv("STEMFORGE_VERBOSE")) {  // the stream's figure, for benches and logs
        std::fprintf(stderr, "stemforge: %lld hop(s) missed in this stream, %lld from the spare worker\n",
                     misses.load(), rescued.load());
        // the worker's account, so that a bench can tell whether it started late or ran long, once
        // it has run what it was given (the host has stopped playing; 10 s at most). Its numbers
        // come in sf_worker_times' order (bench/plugin.py reads them so): counts as they are, times
        // in ms (the scheduler's delay -1000 where not known). No other number may come between.
        std::lock_guard<std::mutex> hold(streamLock);
        sf_worker_times t{};
        const auto& lib = EngineLibrary::get();
        if (stream && stream->realtime && stream->engine) {
            const bool behind = lib.engineSync(stream->engine, 10000) != 0;
            if (lib.engineWorkerTimes(stream->engine, &t) == 0)
                std::fprintf(stderr,
                             "stemforge: the worker in this stream: %lld runs, waited ms mean %.3f p99 %.3f max %.3f, "
                             "ran ms mean %.3f p99 %.3f max %.3f, %lld ended past the headroom; %lld model calls, "
                             "ms mean %.3f p99 %.3f max %.3f; the late runs: ms %.3f, of which the scheduler's "
                             "delay ms %.3f, %lld page faults%s\n",
                             t.runs, 1e3 * t.wait_mean, 1e3 * t.wait_p99, 1e3 * t.wait_max, 1e3 * t.run_mean,
                             1e3 * t.run_p99, 1e3 * t.run_max, t.late_runs, t.calls, 1e3 * t.call_mean,
                             1e3 * t.call_p99, 1e3 * t.call_max, 1e3 * t.late_span, 1e3 * t.late_sched_delay,
                             t.late_faults, behind ? " (still behind after 10 s)" : "");
        }
        std::fflush(stderr);
    }
}

// Hosts call reset() from any thread, the audio thread included (VST3's setProcessing(false),
// a transport stop): it only asks, and the processing thread resets at its next block, from
// what the loader thread prepared (applyReset): no lock, no allocation on the audio thread.
void StemforgeProcessor::reset() { resetPending = true; }

bool StemforgeProcessor::applyReset(Stream& s) {
    if (!resetPending.exchange(false)) return true;
    auto& lib = EngineLibrary::get();
    if (lib.engineReset(s.engine, nullptr, 0) == SF_RESET_NOT_READY) {
        char err[SF_ERROR_CHARS] = {0};
        if (!isNonRealtime() || lib.engineRefresh(s.engine, err, sizeof(err)) != 0
            || lib.engineReset(s.engine, nullptr, 0) != 0) {
            // real time, two resets closer than the loader prepares one: silence until it has
            resetPending = true;
            refreshWanted = true;
            return false;
        }
    }
    s.bypass.clear();
    gainsValid = false;
    failed = false;
    refreshWanted = true;  // the loader prepares the next reset
    return true;
}

// ------------------------------------------------------------------------------ processing
void StemforgeProcessor::silenceAll(juce::AudioBuffer<float>& buffer) {
    for (int c = 0; c < buffer.getNumChannels(); ++c) buffer.clear(c, 0, buffer.getNumSamples());
}

void StemforgeProcessor::processBlock(juce::AudioBuffer<float>& buffer, juce::MidiBuffer&) {
    juce::ScopedNoDenormals noDenormals;
    const int n = buffer.getNumSamples();
    if (n == 0) return;
    const bool offline = isNonRealtime();
    // a host that changed between real time and offline since prepareToPlay (DawDreamer renders
    // offline after preparing): the engine for the mode it plays in now
    if (builtRealtime.load() == offline && wantRealtime.exchange(!offline) != !offline) requestBuild();
    if (offline && done.load() != requested.load()) {  // offline: the model it asked for
        waitForBuild();
        publishLatency();
    }
    std::unique_lock<std::mutex> lock(streamLock, std::defer_lock);
    if (isNonRealtime())
        lock.lock();
    else if (!lock.try_lock())
        return silenceAll(buffer);  // a new model is being swapped in
    Stream* s = stream.get();
    auto& lib = EngineLibrary::get();
    auto mainIn = getBusBuffer(buffer, true, 0);
    const int ch = mainIn.getNumChannels();
    if (s != nullptr && !applyReset(*s)) return silenceAll(buffer);
    if (s == nullptr || failed || ch != s->channels) return silenceAll(buffer);
    s->bypass.process(mainIn.getArrayOfWritePointers(), ch, n, false);  // in step for a bypass to come
    const auto& info = s->model->info;
    const int S = info.num_stems;

    const bool mix = outputParam->load() >= 0.5f;
    const int chosen = int(stemParam->load() + 0.5f);
    const int chosenStem = chosen >= 0 && chosen < kStemBuses ? s->modelStemOf[chosen] : -1;
    float gains[SF_MAX_STEMS];
    for (int k = 0; k < S; ++k) {  // a model stem without a plugin stem of its name: 0 dB, as in Python
        const int p = s->pluginStemOf[k];
        gains[k] = 1.0f;
        if (p >= 0)
            gains[k] =
                muteParams[p]->load() >= 0.5f ? 0.0f : juce::Decibels::decibelsToGain(gainParams[p]->load(), -1000.0f);
    }
    if (!gainsValid) {
        std::copy(gains, gains + S, lastGains);
        gainsValid = true;
    }

    auto mainOut = getBusBuffer(buffer, false, 0);
    for (int off = 0; off < n; off += s->maxBlock) {
        const int m = std::min(n - off, s->maxBlock);
        for (int c = 0; c < ch; ++c) s->inPtrs[size_t(c)] = mainIn.getReadPointer(c, off);
        if (lib.engineProcess(s->engine, s->inPtrs.data(), m, s->stemPtrs.data(), s->dryPtrs.data(), failure,
                              sizeof(failure))
            != 0) {
            failed = true;  // the loader thread reports it; silence until the next model or reset
            failures.fetch_add(1);
            return silenceAll(buffer);
        }
        // the residual: the stem that takes what the others miss of the input (residual_stem "auto")
        if (s->residualStem >= 0) {
            for (int c = 0; c < ch; ++c) {
                float* r = s->stemPtrs[size_t(s->residualStem * ch + c)];
                const float* x = s->dryPtrs[size_t(c)];
                for (int i = 0; i < m; ++i) {
                    float sum = 0.0f;
                    for (int k = 0; k < S; ++k) sum += s->stemPtrs[size_t(k * ch + c)][i];
                    r[i] += x[i] - sum;
                }
            }
        }
        // the main output: one stem, or the sum at the gains (ramped across the host block)
        for (int c = 0; c < mainOut.getNumChannels(); ++c) {
            float* out = mainOut.getWritePointer(c, off);
            const int src = std::min(c, ch - 1);
            if (!mix) {
                if (chosenStem >= 0)
                    std::memcpy(out, s->stemPtrs[size_t(chosenStem * ch + src)], sizeof(float) * size_t(m));
                else
                    std::fill(out, out + m, 0.0f);
                continue;
            }
            std::fill(out, out + m, 0.0f);
            for (int k = 0; k < S; ++k) {
                const float* st = s->stemPtrs[size_t(k * ch + src)];
                const float g0 = lastGains[k], g1 = gains[k];
                if (g0 == g1) {
                    if (g1 != 0.0f)
                        for (int i = 0; i < m; ++i) out[i] += g1 * st[i];
                } else {
                    for (int i = 0; i < m; ++i) out[i] += (g0 + (g1 - g0) * float(off + i + 1) / float(n)) * st[i];
                }
            }
        }
        // one bus per stem
        for (int b = 0; b < kStemBuses; ++b) {
            if (b + 1 >= getBusCount(false) || !getBus(false, b + 1)->isEnabled()) continue;
            auto bus = getBusBuffer(buffer, false, b + 1);
            const int k = s->modelStemOf[b];  // the model's stem of this bus's name
            for (int c = 0; c < bus.getNumChannels(); ++c) {
                float* out = bus.getWritePointer(c, off);
                if (k < 0) {
                    std::fill(out, out + m, 0.0f);
                    continue;
                }
                if (bus.getNumChannels() == 1 && ch == 2) {
                    const float* l = s->stemPtrs[size_t(k * ch)];
                    const float* rr = s->stemPtrs[size_t(k * ch + 1)];
                    for (int i = 0; i < m; ++i) out[i] = (l[i] + rr[i]) / 2.0f;
                } else {
                    std::memcpy(out, s->stemPtrs[size_t(k * ch + std::min(c, ch - 1))], sizeof(float) * size_t(m));
                }
            }
        }
    }
    std::copy(gains, gains + S, lastGains);
    if (s->realtime) {
        misses.store(lib.engineMisses(s->engine), std::memory_order_relaxed);
        rescued.store(lib.engineRescued(s->engine), std::memory_order_relaxed);
    }
}

// The host's bypass: the input delayed by the reported latency on the main output, so that a
// host compensating that latency plays the track in place; the stem buses silent.
void StemforgeProcessor::processBlockBypassed(juce::AudioBuffer<float>& buffer, juce::MidiBuffer&) {
    const int n = buffer.getNumSamples();
    const int inputs = std::min(getMainBusNumInputChannels(), buffer.getNumChannels());
    for (int c = inputs; c < buffer.getNumChannels(); ++c) buffer.clear(c, 0, n);
    if (n == 0) return;
    if (isNonRealtime() && done.load() != requested.load()) {  // offline: the model it asked for
        waitForBuild();
        publishLatency();
    }
    std::unique_lock<std::mutex> lock(streamLock, std::defer_lock);
    if (isNonRealtime())
        lock.lock();
    else if (!lock.try_lock())
        return silenceAll(buffer);  // a new model is being swapped in
    if (stream == nullptr) return;  // no model: latency 0, the input as it is
    if (!applyReset(*stream)) return silenceAll(buffer);
    auto mainIn = getBusBuffer(buffer, true, 0);
    stream->bypass.process(mainIn.getArrayOfWritePointers(), mainIn.getNumChannels(), n, true);
}

// ----------------------------------------------------------------------------------- state
void StemforgeProcessor::getStateInformation(juce::MemoryBlock& destData) {
    auto state = params.copyState();
    const int index = juce::roundToInt(params.getRawParameterValue("model")->load());
    state.setProperty("modelName", choices[juce::jlimit(0, choices.size() - 1, index)], nullptr);
    state.setProperty("modelFile", getModelFile(), nullptr);
    {  // the file of the chosen model: a session opened where its name is not in the menu uses it
        std::lock_guard<std::mutex> lock(configLock);
        juce::String error;
        state.setProperty("modelPath", resolveModel(error), nullptr);
    }
    state.setProperty("version", STEMFORGE_VERSION, nullptr);
    if (auto xml = state.createXml()) {
        auto text = xml->toString();
        destData.replaceAll(text.toRawUTF8(), text.getNumBytesAsUTF8());
    }
}

void StemforgeProcessor::setStateInformation(const void* data, int sizeInBytes) {
    auto xml = juce::parseXML(juce::String::fromUTF8(static_cast<const char*>(data), sizeInBytes));
    if (!xml || !xml->hasTagName(params.state.getType())) {
        setStatus("stemforge: the saved state is not stemforge's; keeping the current settings", true);
        return;
    }
    auto tree = juce::ValueTree::fromXml(*xml);
    {
        std::lock_guard<std::mutex> lock(configLock);
        modelFile = tree.getProperty("modelFile").toString();
    }
    params.replaceState(tree);
    // the model by name: the menu's order depends on the model folders of this machine
    const juce::String name = tree.getProperty("modelName").toString();
    const juce::String path = tree.getProperty("modelPath").toString();
    auto* p = params.getParameter("model");
    // the value restored stays as saved (hosts compare it) unless it names another choice here
    const int restored = juce::roundToInt(params.getRawParameterValue("model")->load());
    if (name.isNotEmpty() && choices.contains(name)) {
        if (choices.indexOf(name) != restored) p->setValueNotifyingHost(p->convertTo0to1(float(choices.indexOf(name))));
    } else if (name.isNotEmpty() && path.isNotEmpty()) {  // not in this machine's menu: its file
        {
            std::lock_guard<std::mutex> lock(configLock);
            modelFile = path;
        }
        if (choices.indexOf(kFileChoice) != restored)
            p->setValueNotifyingHost(p->convertTo0to1(float(choices.indexOf(kFileChoice))));
    }
    requestBuild();
    settleIfPrepared();
}

}  // namespace stemforge

juce::AudioProcessor* JUCE_CALLTYPE createPluginFilter() { return new stemforge::StemforgeProcessor(); }
