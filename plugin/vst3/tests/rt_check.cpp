// stemforge VST3 -- real-time check of the engine library: counts heap allocations per block.
// SPDX-License-Identifier: GPL-3.0-or-later
//
//   g++ -O1 -std=c++17 rt_check.cpp -ldl -o rt_check
//   rt_check BUNDLE MODEL.ts HOST_RATE CHANNELS BLOCK BLOCKS [RESET_AT [REALTIME]]
//
// This executable defines malloc/calloc/realloc (forwarding to glibc), so every allocation
// in the process, libtorch's and the engine's included, passes through a counter of the
// calling thread's allocations. It prints one line per processed block: the allocations the
// calling thread (the audio thread) made in it. Offline (REALTIME 0, the default), blocks in
// which no model call ran must show 0: everything else the engine does is sized up front.
// In real time (REALTIME 1) the model runs in the engine's worker thread: every block must
// show 0. In real time, after each block it waits for the worker (sf_engine_sync, not
// counted), so that the stems do not depend on the machine's speed, and prints the engine's
// misses at the end ("misses N").
//
// With RESET_AT >= 0, the stream is reset after that many blocks as the plugin does it: the
// spares prepared off the audio thread (sf_engine_refresh, not counted), then sf_engine_reset,
// whose allocations it prints ("reset_allocations N"); then the rest of the blocks, and the
// largest difference between them and what a fresh engine gives for the same input
// ("reset_difference D"). RESET_AT -1: no reset.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine_library.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

static std::atomic<long> allocations{0};
static std::atomic<bool> counting{false};
static thread_local bool caller = false;  // set on the thread that calls sf_engine_process

extern "C" void* malloc(size_t n) {
    if (caller && counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
    return __libc_malloc(n);
}
extern "C" void* calloc(size_t a, size_t b) {
    if (caller && counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
    return __libc_calloc(a, b);
}
extern "C" void* realloc(void* p, size_t n) {
    if (caller && counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
    return __libc_realloc(p, n);
}
extern "C" int posix_memalign(void** p, size_t align, size_t n) {
    if (caller && counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
    *p = __libc_memalign(align, n);
    return *p ? 0 : 12;
}
extern "C" void free(void* p) { __libc_free(p); }

int main(int argc, char** argv) {
    if (argc < 7 || argc > 9) {
        std::fprintf(stderr, "usage: rt_check BUNDLE MODEL HOST_RATE CHANNELS BLOCK BLOCKS [RESET_AT [REALTIME]]\n");
        return 2;
    }
    caller = true;
    const int realtime = argc == 9 ? std::atoi(argv[8]) : 0;
    const int rate = std::atoi(argv[3]), channels = std::atoi(argv[4]), block = std::atoi(argv[5]),
              count = std::atoi(argv[6]);
    EngineLibrary engine_library;
    if (!engine_library.open(argv[1])) return 1;
    auto create = engine_library.create;
    auto process = engine_library.process;
    auto reset = engine_library.reset;
    auto refresh = engine_library.refresh;
    auto sync = engine_library.sync;
    auto misses = engine_library.misses;
    const int resetAt = argc >= 8 ? std::atoi(argv[7]) : -1;
    sf_model_info info{};
    sf_model* model = nullptr;
    sf_engine* engine = engine_library.start(argv[2], info, rate, channels, block, realtime, &model);
    if (!engine) return 1;
    char err[SF_ERROR_CHARS] = {0};
    BlockBuffers buffers(channels, info.num_stems, block);
    auto& in = buffers.in;
    auto& stems = buffers.stems;
    auto& inPtrs = buffers.inPtrs;
    auto& stemPtrs = buffers.stemPtrs;
    auto& dryPtrs = buffers.dryPtrs;
    unsigned seed = 1;
    std::vector<float> afterReset, fresh;    // stems after the reset, and a fresh engine's
    std::vector<std::vector<float>> inputs;  // the input after the reset
    for (int b = 0; b < count; ++b) {
        if (b == resetAt) {
            if (refresh(engine, err, sizeof(err)) != 0) {
                std::fprintf(stderr, "%s\n", err);
                return 1;
            }
            allocations = 0;
            counting = true;
            const int rc = reset(engine, err, sizeof(err));
            counting = false;
            if (rc != 0) {
                std::fprintf(stderr, "reset returned %d\n", rc);
                return 1;
            }
            std::printf("reset_allocations %ld\n", allocations.load());
        }
        for (auto& v : in)
            for (auto& x : v) {
                seed = seed * 1664525u + 1013904223u;
                x = float(int(seed >> 9) % 2000 - 1000) * 1e-4f;
            }
        if (resetAt >= 0 && b >= resetAt)
            for (auto& v : in) inputs.push_back(v);
        allocations = 0;
        counting = true;
        const int rc = process(engine, inPtrs.data(), block, stemPtrs.data(), dryPtrs.data(), err, sizeof(err));
        counting = false;
        if (rc != 0) {
            std::fprintf(stderr, "%s\n", err);
            return 1;
        }
        std::printf("%ld\n", allocations.load());
        if (realtime && sync(engine, 60000) != 0) {
            std::fprintf(stderr, "the worker did not finish\n");
            return 1;
        }
        if (resetAt >= 0 && b >= resetAt)
            for (auto& v : stems) afterReset.insert(afterReset.end(), v.begin(), v.end());
    }
    if (resetAt >= 0) {
        sf_engine* again = create(model, rate, channels, block, realtime, 0, err, sizeof(err));
        if (!again) {
            std::fprintf(stderr, "%s\n", err);
            return 1;
        }
        for (size_t k = 0; k < inputs.size(); k += size_t(channels)) {
            for (int c = 0; c < channels; ++c) inPtrs[size_t(c)] = inputs[k + size_t(c)].data();
            if (process(again, inPtrs.data(), block, stemPtrs.data(), dryPtrs.data(), err, sizeof(err)) != 0) {
                std::fprintf(stderr, "%s\n", err);
                return 1;
            }
            if (realtime && sync(again, 60000) != 0) {
                std::fprintf(stderr, "the worker did not finish\n");
                return 1;
            }
            for (auto& v : stems) fresh.insert(fresh.end(), v.begin(), v.end());
        }
        double worst = 0.0;
        for (size_t i = 0; i < fresh.size(); ++i) worst = std::max(worst, double(std::fabs(fresh[i] - afterReset[i])));
        std::printf("reset_difference %g\n", worst);
    }
    if (realtime) std::printf("misses %lld\n", misses(engine));
    std::printf("hop %d rate %d\n", info.hop, info.sample_rate);
    return 0;
}
