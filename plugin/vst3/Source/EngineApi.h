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

#define SF_ENGINE_ABI 8
#define SF_RESET_NOT_READY 2  // sf_engine_reset: call sf_engine_refresh (off the audio thread) first
#define SF_NOT_FINITE 3       // sf_engine_process_mixed: the input holds NaN or Inf
#define SF_MAX_STEMS 16
#define SF_ERROR_CHARS 1024

typedef struct sf_model sf_model;    // a loaded, checked model file
typedef struct sf_engine sf_engine;  // one stream's data path at a host rate and channel count

typedef struct {
    char name[128];
    char version[64];
    char kind[32];  // "streaming" or "window"
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

// Real time: the worker's account of its time since it took up the last reset, in seconds (sf_engine_worker_times),
// so that a miss can be told apart: the worker started late (on a VM, a virtual CPU that the hypervisor did not
// run), its run took long, or neither. Means and maxima exact, p99s to 6 %.
typedef struct {
    long long runs;                        // the runs the audio thread woke the worker for
    double wait_mean, wait_p99, wait_max;  // from that wake-up call to the run's start
    double run_mean, run_p99, run_max;     // the run: the input resampled, the model, the stems resampled
    long long late_runs;                   // runs that ended more than the headroom after their wake-up call
    long long calls;                       // model calls, one hop each
    double call_mean, call_p99, call_max;
    // What this system saw of the late runs, summed over them: their time from the wake-up call to
    // their end (late_span); of it, the time its scheduler kept the worker runnable but not running
    // (late_sched_delay, from /proc/thread-self/schedstat; -1 where not known); and the worker's
    // page faults in them. A late run with neither was held back outside the system: on a VM, its
    // virtual CPU not run by the hypervisor.
    double late_span, late_sched_delay;
    long long late_faults;
} sf_worker_times;

typedef int (*sf_abi_fn)(void);
typedef sf_model* (*sf_model_load_fn)(const char* path, sf_model_info* info, char* err, size_t errlen);
typedef void (*sf_model_free_fn)(sf_model*);
// realtime != 0: the model and both resamplers run in a worker thread, sf_engine_process only
// copies samples and never waits for it: a hop's stems are due `headroom` model samples (<= 0: one hop; at
// least what one block of max_block brings) after the hop is complete, which the latency includes; a hop not
// ready in time is delivered with its input whole in `other` and counted (sf_engine_misses). realtime == 2: the
// same, with a spare worker that runs every hop as well, on its own copy of the model's state (twice the model's
// CPU time): a hop the first worker has not made in time is taken from the spare if it has made it, and counted
// (sf_engine_rescued); a miss is then a hop neither made in time. realtime == 0 (offline renders): the calling
// thread runs the model, and headroom is not used.
typedef sf_engine* (*sf_engine_create_fn)(sf_model*, int host_rate, int host_channels, int max_block, int realtime,
                                          int headroom, char* err, size_t errlen);
typedef int (*sf_engine_latency_fn)(const sf_engine*);
// hops delivered without the model's stems since the engine was built or reset
typedef long long (*sf_engine_misses_fn)(const sf_engine*);
// realtime == 2: hops delivered from the spare worker since the engine was built or reset (else 0)
typedef long long (*sf_engine_rescued_fn)(const sf_engine*);
// 0, and `out` filled (the first worker's account); 1 (`out` zeroed) if the engine is not real time. Reads only:
// safe from any thread.
typedef int (*sf_engine_worker_times_fn)(const sf_engine*, sf_worker_times* out);
// the latency an engine of this model would have (-1 on error), without building it
typedef int (*sf_model_latency_fn)(sf_model*, int host_rate, int max_block, int realtime, int headroom);
// A new stream (the state, the resamplers and the delay lines as created). Real-time safe: it
// neither allocates, frees nor blocks; it swaps in what sf_engine_refresh prepared and returns
// 0, or SF_RESET_NOT_READY (and changes nothing) if that is not ready yet. In real time it does
// not wait for the worker either: the worker starts the new stream's model side at its next run,
// and what it made of the old stream is never delivered in the new one.
typedef int (*sf_engine_reset_fn)(sf_engine*, char* err, size_t errlen);
// Off the audio thread, possibly while another thread processes: prepares the next reset
// (allocates). sf_engine_create prepares the first. 0, or nonzero with a message in err.
typedef int (*sf_engine_refresh_fn)(sf_engine*, char* err, size_t errlen);
// n <= max_block samples of host_channels planar channels in; out: num_stems * host_channels
// planar stem channels (stem-major) and host_channels channels of the input itself, both
// delayed by sf_engine_latency samples. Returns 0, or nonzero with a message in err (the
// outputs are then silence). Allocates nothing itself; torch's forward allocates its own (in
// real time, on the worker thread only).
typedef int (*sf_engine_process_fn)(sf_engine*, const float* const* in, int n, float* const* stems, float* const* dry,
                                    char* err, size_t errlen);
// sf_engine_process with one weighted sum out, for a caller that wants one signal in one call
// (Python's StemSeparator.process_block, whose interpreter costs more per call than the copies):
// out = direct * input + the sum over stems s with gains[s] != 0 of gains[s] * stem s, in float32
// and in that order (numpy's, so that Python's own mix gives the same samples), delayed by
// sf_engine_latency. Sample i of channel c is in[c * in_channel_stride + i * in_sample_stride]
// (strides in floats, so either layout), written to out at its own strides. Returns 0; 1 with a
// message in err (out is then silence); SF_NOT_FINITE if the input holds NaN or Inf (nothing
// processed, out not written).
typedef int (*sf_engine_process_mixed_fn)(sf_engine*, const float* in, long long in_channel_stride,
                                          long long in_sample_stride, int n, const float* gains, float direct,
                                          float* out, long long out_channel_stride, long long out_sample_stride,
                                          char* err, size_t errlen);
typedef void (*sf_engine_free_fn)(sf_engine*);
// Real time only, for diagnostics and the tests (so that they do not depend on the machine's
// speed): sync waits until the workers not held have taken all the input they were given and run
// every whole hop of it (0, or 1 after timeout_ms or if the model failed); hold(mask) keeps the
// workers in mask from running (1: the first, 2: the spare, 3: both) and lets the others run,
// called from one thread, so that every hop due while all are held is a miss and one due while
// only the first is held comes from the spare.
typedef int (*sf_engine_sync_fn)(sf_engine*, int timeout_ms);
typedef void (*sf_engine_hold_fn)(sf_engine*, int hold);

int sf_abi(void);
sf_model* sf_model_load(const char* path, sf_model_info* info, char* err, size_t errlen);
void sf_model_free(sf_model*);
sf_engine* sf_engine_create(sf_model*, int host_rate, int host_channels, int max_block, int realtime, int headroom,
                            char* err, size_t errlen);
int sf_engine_latency(const sf_engine*);
long long sf_engine_misses(const sf_engine*);
long long sf_engine_rescued(const sf_engine*);
int sf_engine_worker_times(const sf_engine*, sf_worker_times* out);
int sf_model_latency(sf_model*, int host_rate, int max_block, int realtime, int headroom);
int sf_engine_reset(sf_engine*, char* err, size_t errlen);
int sf_engine_refresh(sf_engine*, char* err, size_t errlen);
int sf_engine_process(sf_engine*, const float* const* in, int n, float* const* stems, float* const* dry, char* err,
                      size_t errlen);
int sf_engine_process_mixed(sf_engine*, const float* in, long long in_channel_stride, long long in_sample_stride, int n,
                            const float* gains, float direct, float* out, long long out_channel_stride,
                            long long out_sample_stride, char* err, size_t errlen);
void sf_engine_free(sf_engine*);
int sf_engine_sync(sf_engine*, int timeout_ms);
void sf_engine_hold(sf_engine*, int hold);

#ifdef __cplusplus
}
#endif
