// stemforge VST3 -- the engine's resets while another thread prepares them.
// SPDX-License-Identifier: GPL-3.0-or-later
//
//   g++ -O1 -std=c++17 refresh_race.cpp -ldl -lpthread -o refresh_race
//   refresh_race BUNDLE MODEL.ts HOST_RATE BLOCK RESETS
//
// Offline, the plugin's render thread resets the stream and, when the spares are not ready,
// prepares them itself (sf_engine_refresh), while the plugin's loader thread prepares the spares
// for the next reset at the same moment. This does what both threads do, RESETS times, with a
// second thread calling sf_engine_refresh without pause, and one block processed after each
// reset; it prints "resets N" and exits 0 if every reset and every block succeeded. Before the
// engine made its refreshes one at a time, the two threads replaced the same spare resampler
// and a reset swapped in a deleted or null one ("soxr: null pointer").
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "engine_library.h"

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: refresh_race BUNDLE MODEL HOST_RATE BLOCK RESETS\n");
        return 2;
    }
    const int rate = std::atoi(argv[3]), block = std::atoi(argv[4]), resets = std::atoi(argv[5]);
    const int channels = 2;
    EngineLibrary engine_library;
    if (!engine_library.open(argv[1])) return 1;
    auto process = engine_library.process;
    auto reset = engine_library.reset;
    auto refresh = engine_library.refresh;
    sf_model_info info{};
    sf_engine* engine = engine_library.start(argv[2], info, rate, channels, block, 0);
    if (!engine) return 1;
    char err[SF_ERROR_CHARS] = {0};
    BlockBuffers buffers(channels, info.num_stems, block, 0.01f);

    std::atomic<bool> stop{false};
    std::atomic<long> loaderFailures{0};
    std::thread loader([&] {  // the plugin's loader: the next reset's spares, again and again
        char e[SF_ERROR_CHARS] = {0};
        while (!stop.load()) {
            if (refresh(engine, e, sizeof(e)) != 0) loaderFailures.fetch_add(1);
            std::this_thread::yield();
        }
    });
    int done = 0, status = 0;
    for (; done < resets; ++done) {  // the render thread: StemforgeProcessor::applyReset offline
        int rc = reset(engine, err, sizeof(err));
        if (rc == SF_RESET_NOT_READY) {
            if (refresh(engine, err, sizeof(err)) != 0) {
                std::fprintf(stderr, "refresh: %s\n", err);
                status = 1;
                break;
            }
            rc = reset(engine, err, sizeof(err));
        }
        if (rc != 0) {
            std::fprintf(stderr, "reset %d returned %d\n", done, rc);
            status = 1;
            break;
        }
        if (process(engine, buffers.inPtrs.data(), block, buffers.stemPtrs.data(), buffers.dryPtrs.data(), err,
                    sizeof(err))
            != 0) {
            std::fprintf(stderr, "block after reset %d: %s\n", done, err);
            status = 1;
            break;
        }
    }
    stop = true;
    loader.join();
    if (loaderFailures.load() != 0) {
        std::fprintf(stderr, "%ld refreshes failed\n", loaderFailures.load());
        status = 1;
    }
    std::printf("resets %d\n", done);
    return status;
}
