// stemforge VST3 -- real-time check of the engine library: counts heap allocations per block.
// SPDX-License-Identifier: GPL-3.0-or-later
//
//   g++ -O1 -std=c++17 rt_check.cpp -ldl -o rt_check
//   rt_check BUNDLE MODEL.ts HOST_RATE CHANNELS BLOCK BLOCKS [REALTIME]
//
// This executable defines malloc/calloc/realloc (forwarding to glibc), so every allocation
// in the process, libtorch's and the engine's included, passes through a counter of the
// calling thread's allocations. It prints one line per processed block: the allocations the
// calling thread (the audio thread) made in it. Offline (REALTIME 0, the default), blocks in
// which no model call ran must show 0: everything else the engine does is sized up front.
// In real time (REALTIME 1) the model runs in the engine's worker thread: every block must
// show 0.
#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "../Source/EngineApi.h"

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
    if (argc != 7 && argc != 8) {
        std::fprintf(stderr, "usage: rt_check BUNDLE MODEL HOST_RATE CHANNELS BLOCK BLOCKS [REALTIME]\n");
        return 2;
    }
    caller = true;
    const int realtime = argc == 8 ? std::atoi(argv[7]) : 0;
    const std::string lib = std::string(argv[1]) + "/Contents/x86_64-linux/libstemforge_engine.so";
    const int rate = std::atoi(argv[3]), channels = std::atoi(argv[4]), block = std::atoi(argv[5]),
              count = std::atoi(argv[6]);
    void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) { std::fprintf(stderr, "%s\n", dlerror()); return 1; }
    auto load = reinterpret_cast<sf_model_load_fn>(dlsym(h, "sf_model_load"));
    auto create = reinterpret_cast<sf_engine_create_fn>(dlsym(h, "sf_engine_create"));
    auto process = reinterpret_cast<sf_engine_process_fn>(dlsym(h, "sf_engine_process"));
    char err[SF_ERROR_CHARS] = {0};
    sf_model_info info{};
    sf_model* model = load(argv[2], &info, err, sizeof(err));
    if (!model) { std::fprintf(stderr, "%s\n", err); return 1; }
    sf_engine* engine = create(model, rate, channels, block, realtime, err, sizeof(err));
    if (!engine) { std::fprintf(stderr, "%s\n", err); return 1; }
    const int S = info.num_stems;
    std::vector<std::vector<float>> in(static_cast<size_t>(channels), std::vector<float>(static_cast<size_t>(block)));
    std::vector<std::vector<float>> stems(size_t(S * channels), std::vector<float>(size_t(block)));
    std::vector<std::vector<float>> dry(static_cast<size_t>(channels), std::vector<float>(static_cast<size_t>(block)));
    std::vector<const float*> inPtrs;
    std::vector<float*> stemPtrs, dryPtrs;
    for (auto& v : in) inPtrs.push_back(v.data());
    for (auto& v : stems) stemPtrs.push_back(v.data());
    for (auto& v : dry) dryPtrs.push_back(v.data());
    unsigned seed = 1;
    for (int b = 0; b < count; ++b) {
        for (auto& v : in)
            for (auto& x : v) { seed = seed * 1664525u + 1013904223u; x = float(int(seed >> 9) % 2000 - 1000) * 1e-4f; }
        allocations = 0;
        counting = true;
        const int rc = process(engine, inPtrs.data(), block, stemPtrs.data(), dryPtrs.data(), err, sizeof(err));
        counting = false;
        if (rc != 0) { std::fprintf(stderr, "%s\n", err); return 1; }
        std::printf("%ld\n", allocations.load());
    }
    std::printf("hop %d rate %d\n", info.hop, info.sample_rate);
    return 0;
}
