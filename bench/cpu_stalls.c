// When each CPU stops: two threads, one pinned to each of the first two CPUs, spin on the
// monotonic clock for SECONDS and record every gap longer than MS milliseconds (the thread did
// not run). Then, for each gap over 4 ms, how much of it the other CPU was stopped too: on a VM
// whose hypervisor stops one virtual CPU at a time, a second model worker on the other CPU has
// its hop when the first is held (the engine's spare worker, docs/performance.md).
//
//   gcc -O2 -pthread bench/cpu_stalls.c -o cpu_stalls && ./cpu_stalls [SECONDS=30] [MS=1.0]
//
// Run it on an idle machine at normal priority: a gap of one scheduler tick (4 ms at HZ=250) is
// another task of this system; the longer ones, with nothing else running, are the hypervisor's.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define MAXG 200000
typedef struct {
    double start, len;
} Gap;
static Gap gaps[2][MAXG];
static int ngaps[2];
static double seconds, thresh;
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static void* spin(void* arg) {
    int cpu = (int)(long)arg;
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
    double t0 = now(), last = t0, t;
    while ((t = now()) - t0 < seconds) {
        if (t - last > thresh && ngaps[cpu] < MAXG) {
            gaps[cpu][ngaps[cpu]].start = last;
            gaps[cpu][ngaps[cpu]].len = t - last;
            ngaps[cpu]++;
        }
        last = t;
    }
    return 0;
}
int main(int argc, char** argv) {
    seconds = argc > 1 ? atof(argv[1]) : 30;
    thresh = (argc > 2 ? atof(argv[2]) : 1.0) * 1e-3;
    pthread_t th[2];
    for (long i = 0; i < 2; i++) pthread_create(&th[i], 0, spin, (void*)i);
    for (int i = 0; i < 2; i++) pthread_join(th[i], 0);
    for (int c = 0; c < 2; c++) {
        double tot = 0, mx = 0;
        int big = 0;
        for (int i = 0; i < ngaps[c]; i++) {
            tot += gaps[c][i].len;
            if (gaps[c][i].len > mx) mx = gaps[c][i].len;
            if (gaps[c][i].len > 4e-3) big++;
        }
        printf("cpu %d: %d gaps > %.2f ms, %d > 4 ms, total %.1f ms, longest %.2f ms\n", c, ngaps[c], thresh * 1e3, big,
               tot * 1e3, mx * 1e3);
    }
    // For each gap > 4 ms on either CPU: was the other CPU also stalled for most of it?
    int both = 0, alone = 0;
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < ngaps[c]; i++) {
            Gap g = gaps[c][i];
            if (g.len <= 4e-3) continue;
            double overlap = 0;
            for (int j = 0; j < ngaps[1 - c]; j++) {
                Gap h = gaps[1 - c][j];
                double a = g.start > h.start ? g.start : h.start,
                       b = (g.start + g.len) < (h.start + h.len) ? g.start + g.len : h.start + h.len;
                if (b > a) overlap += b - a;
            }
            if (overlap > 0.5 * g.len)
                both++;
            else
                alone++;
            printf("  cpu %d gap %.2f ms at %.3f s: other CPU stalled %.2f ms of it\n", c, g.len * 1e3,
                   g.start - gaps[0][0].start, overlap * 1e3);
        }
    printf("gaps > 4 ms: %d with the other CPU stalled too, %d alone\n", both, alone);
}
