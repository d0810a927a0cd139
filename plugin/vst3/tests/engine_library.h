// stemforge VST3 -- the engine library of a bundle, opened through its C interface (EngineApi.h),
// for the test programs that drive it without a host (rt_check.cpp, refresh_race.cpp).
// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <dlfcn.h>

#include <cstdio>
#include <string>
#include <vector>

#include "../Source/EngineApi.h"

struct EngineLibrary {
    sf_model_load_fn load = nullptr;
    sf_engine_create_fn create = nullptr;
    sf_engine_process_fn process = nullptr;
    sf_engine_reset_fn reset = nullptr;
    sf_engine_refresh_fn refresh = nullptr;
    sf_engine_sync_fn sync = nullptr;
    sf_engine_misses_fn misses = nullptr;

    // false (and the reason on stderr) if the bundle's engine library does not load
    bool open(const std::string& bundle) {
        const std::string lib = bundle + "/Contents/x86_64-linux/libstemforge_engine.so";
        void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            std::fprintf(stderr, "%s\n", dlerror());
            return false;
        }
        load = reinterpret_cast<sf_model_load_fn>(dlsym(h, "sf_model_load"));
        create = reinterpret_cast<sf_engine_create_fn>(dlsym(h, "sf_engine_create"));
        process = reinterpret_cast<sf_engine_process_fn>(dlsym(h, "sf_engine_process"));
        reset = reinterpret_cast<sf_engine_reset_fn>(dlsym(h, "sf_engine_reset"));
        refresh = reinterpret_cast<sf_engine_refresh_fn>(dlsym(h, "sf_engine_refresh"));
        sync = reinterpret_cast<sf_engine_sync_fn>(dlsym(h, "sf_engine_sync"));
        misses = reinterpret_cast<sf_engine_misses_fn>(dlsym(h, "sf_engine_misses"));
        return true;
    }

    // The model at `path` (also in *modelOut, for more engines) and an engine for it; nullptr
    // (and the engine's message on stderr) if either fails.
    sf_engine* start(const char* path, sf_model_info& info, int rate, int channels, int block, int realtime,
                     sf_model** modelOut = nullptr) {
        char err[SF_ERROR_CHARS] = {0};
        sf_model* model = load(path, &info, err, sizeof(err));
        if (modelOut) *modelOut = model;
        sf_engine* engine = model ? create(model, rate, channels, block, realtime, 0, err, sizeof(err)) : nullptr;
        if (!engine) std::fprintf(stderr, "%s\n", err);
        return engine;
    }
};

// One block's buffers as sf_engine_process takes them: the input (every sample `fill`), the
// stems (stem-major, channels within) and the dry output.
struct BlockBuffers {
    std::vector<std::vector<float>> in, stems, dry;
    std::vector<const float*> inPtrs;
    std::vector<float*> stemPtrs, dryPtrs;

    BlockBuffers(int channels, int numStems, int block, float fill = 0.0f)
        : in(size_t(channels), std::vector<float>(size_t(block), fill)),
          stems(size_t(numStems * channels), std::vector<float>(size_t(block))),
          dry(size_t(channels), std::vector<float>(size_t(block))) {
        for (auto& v : in) inPtrs.push_back(v.data());
        for (auto& v : stems) stemPtrs.push_back(v.data());
        for (auto& v : dry) dryPtrs.push_back(v.data());
    }
};
