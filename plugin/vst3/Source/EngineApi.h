// stemforge VST3 -- the C interface between the plugin and its engine library.
// SPDX-License-Identifier: GPL-3.0-or-later
//
// The plugin (JUCE) does not link libtorch: it dlopen()s libstemforge_engine.so, which
// links libtorch and libsoxr, through these functions. So a plugin whose libtorch has gone
// (a moved or deleted Python environment) still loads in the host, outputs silence and says
// what to do, instead of failing in the host's loader with an unhelpful message.
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SF_ENGINE_ABI 2
#define SF_RESET_NOT_READY 2  // sf_engine_reset: call sf_engine_refresh (off the audio thread) first
#define SF_MAX_STEMS 16
#define SF_ERROR_CHARS 1024

typedef struct sf_model sf_model;    // a loaded, checked model file
typedef struct sf_engine sf_engine;  // one stream's data path at a host rate and channel count

typedef struct {
    char name[128];
    char version[64];
    char kind[32];          // "streaming" or "window"
    char path[1024];
    int sample_rate;
    int channels;
    int hop;
    int window;
    int lookahead;
    int num_stems;
    char stems[SF_MAX_STEMS][64];
    int sums_to_mix;
    int untrained;
} sf_model_info;

typedef int (*sf_abi_fn)(void);
typedef sf_model* (*sf_model_load_fn)(const char* path, sf_model_info* info, char* err, size_t errlen);
typedef void (*sf_model_free_fn)(sf_model*);
typedef sf_engine* (*sf_engine_create_fn)(sf_model*, int host_rate, int host_channels, int max_block,
                                          char* err, size_t errlen);
typedef int (*sf_engine_latency_fn)(const sf_engine*);
// the latency an engine of this model would have at host_rate (-1 on error), without building it
typedef int (*sf_model_latency_fn)(sf_model*, int host_rate);
// A new stream (the state, the resamplers and the delay lines as created). Real-time safe: it
// neither allocates, frees nor blocks; it swaps in what sf_engine_refresh prepared and returns
// 0, or SF_RESET_NOT_READY (and changes nothing) if that is not ready yet.
typedef int (*sf_engine_reset_fn)(sf_engine*, char* err, size_t errlen);
// Off the audio thread, possibly while another thread processes: prepares the next reset
// (allocates). sf_engine_create prepares the first. 0, or nonzero with a message in err.
typedef int (*sf_engine_refresh_fn)(sf_engine*, char* err, size_t errlen);
// n <= max_block samples of host_channels planar channels in; out: num_stems * host_channels
// planar stem channels (stem-major) and host_channels channels of the input itself, both
// delayed by sf_engine_latency samples. Returns 0, or nonzero with a message in err (the
// outputs are then silence). Allocates nothing itself; torch's forward allocates its own.
typedef int (*sf_engine_process_fn)(sf_engine*, const float* const* in, int n, float* const* stems,
                                    float* const* dry, char* err, size_t errlen);
typedef void (*sf_engine_free_fn)(sf_engine*);

int sf_abi(void);
sf_model* sf_model_load(const char* path, sf_model_info* info, char* err, size_t errlen);
void sf_model_free(sf_model*);
sf_engine* sf_engine_create(sf_model*, int host_rate, int host_channels, int max_block, char* err,
                            size_t errlen);
int sf_engine_latency(const sf_engine*);
int sf_model_latency(sf_model*, int host_rate);
int sf_engine_reset(sf_engine*, char* err, size_t errlen);
int sf_engine_refresh(sf_engine*, char* err, size_t errlen);
int sf_engine_process(sf_engine*, const float* const* in, int n, float* const* stems, float* const* dry,
                      char* err, size_t errlen);
void sf_engine_free(sf_engine*);

#ifdef __cplusplus
}
#endif
