// bench_churn: per-pair latency of buffer create+free through the fake
// tt-metal's real call path (libttnn_fake -> libtt_metal -> PLT -> tracker),
// for ttalloc's performance benchmarks (tests/e2e/benches, docs/performance.md).
// Not part of the test library; compiled by the benches:
//
//   g++ -O2 -std=c++17 -I tests/testlib/include tests/workloads/bench_churn.cpp
//       -L target/testlib/v081 -Wl,--no-as-needed -lttnn_fake -ltt_metal
//       -Wl,-rpath,target/testlib/v081 -o bench_churn
//
//   bench_churn churn PAIRS [warmup=W] [warmup_pause_ms=P] [live=K] [chips=N] [type=0..4] [size=B]
//       Opens chip 0 (chips=0, default) or a mesh of N chips (chips=N >= 1:
//       every create is a MeshBuffer). Holds K live buffers first (created
//       inside a NO_DISPATCH capture, so the fake's first-fit allocator stays
//       empty and only the trackers see them), runs W untimed pairs, then
//       times each of PAIRS create+free pairs with rdtsc (calibrated against
//       steady_clock over the whole loop). warmup_pause_ms=P sleeps P ms after
//       every 10 000 warm-up pairs (and once before timing), so that a tracker's
//       consumer drains its backlog. Prints one JSON line.
//   bench_churn mesh_loop N ITERS
//       Opens a mesh of N chips once, then ITERS times the `ttfake_driver
//       mesh N` workload body (3 mesh buffers, a program with 3 CBs run on
//       the mesh, frees, program destroyed); closes. Prints one JSON line.
#include <sys/resource.h>
#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ttnn_fake.h"

namespace {

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "bench_churn: %s failed: %s\n", what, ttf_last_error());
    std::exit(1);
}

long opt(int argc, char** argv, const char* key, long dflt) {
    // The last occurrence wins, so a caller can override a default argument.
    const size_t n = std::strlen(key);
    long v = dflt;
    for (int i = 0; i < argc; ++i) {
        if (std::strncmp(argv[i], key, n) == 0 && argv[i][n] == '=') v = std::atol(argv[i] + n + 1);
    }
    return v;
}

long minflt() {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

inline uint64_t tsc_begin() {
    _mm_lfence();
    return __rdtsc();
}
inline uint64_t tsc_end() {
    unsigned aux;
    uint64_t t = __rdtscp(&aux);
    _mm_lfence();
    return t;
}

int churn(long pairs, int argc, char** argv) {
    const long warmup = opt(argc, argv, "warmup", 20000);
    const long live = opt(argc, argv, "live", 0);
    const long chips = opt(argc, argv, "chips", 0);
    const int type = static_cast<int>(opt(argc, argv, "type", TTF_DRAM));
    const uint64_t size = static_cast<uint64_t>(opt(argc, argv, "size", 4096));
    const uint64_t page = size >= 2048 ? 2048 : size;

    void* dev = chips > 0 ? ttf_open_mesh(static_cast<int>(chips), 0) : ttf_open_device(0);
    if (dev == nullptr) die("open");

    std::vector<void*> held;
    held.reserve(static_cast<size_t>(live));
    if (live > 0) {
        if (ttf_begin_capture() != 0) die("ttf_begin_capture");
        for (long i = 0; i < live; ++i) {
            void* b = ttf_buffer_create(dev, 64, 32, TTF_DRAM);
            if (b == nullptr) die("live buffer");
            held.push_back(b);
        }
        if (ttf_end_capture() != 0) die("ttf_end_capture");
    }

    const long pause_ms = opt(argc, argv, "warmup_pause_ms", 0);
    for (long i = 0; i < warmup; ++i) {
        void* b = ttf_buffer_create(dev, size, page, type);
        if (b == nullptr) die("ttf_buffer_create");
        if (ttf_buffer_free(b) != 0) die("ttf_buffer_free");
        // Lets a tracker's consumer catch up between warm-up chunks.
        if (pause_ms > 0 && (i + 1) % 10000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    }
    if (pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));

    std::vector<uint32_t> cyc(static_cast<size_t>(pairs));
    const long flt0 = minflt();
    const auto w0 = std::chrono::steady_clock::now();
    const uint64_t c0 = __rdtsc();
    for (long i = 0; i < pairs; ++i) {
        const uint64_t t0 = tsc_begin();
        void* b = ttf_buffer_create(dev, size, page, type);
        const int rc = ttf_buffer_free(b);
        const uint64_t t1 = tsc_end();
        if (b == nullptr || rc != 0) die("pair");
        const uint64_t d = t1 - t0;
        cyc[static_cast<size_t>(i)] = d > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(d);
    }
    const uint64_t c1 = __rdtsc();
    const auto w1 = std::chrono::steady_clock::now();
    const long flt1 = minflt();
    const double wall_ns = std::chrono::duration<double, std::nano>(w1 - w0).count();
    const double ns_per_cycle = wall_ns / static_cast<double>(c1 - c0);

    if (ttf_close_device(dev) < 0) die("close");

    std::vector<uint32_t> s = cyc;
    std::sort(s.begin(), s.end());
    auto q = [&](double f) {
        if (s.empty()) return 0.0;
        size_t i = static_cast<size_t>(f * static_cast<double>(s.size() - 1));
        return s[i] * ns_per_cycle;
    };
    double sum = 0;
    for (uint32_t c : s) sum += c;
    std::printf(
        "{\"scenario\":\"churn\",\"variant\":\"%s\",\"pairs\":%ld,\"warmup\":%ld,\"live\":%ld,\"chips\":%ld,"
        "\"type\":%d,\"size\":%llu,\"min_ns\":%.1f,\"median_ns\":%.1f,\"p90_ns\":%.1f,\"p99_ns\":%.1f,"
        "\"p999_ns\":%.1f,\"max_ns\":%.1f,\"mean_ns\":%.1f,\"wall_ns_per_pair\":%.1f,\"ghz\":%.3f,"
        "\"minflt\":%ld,\"track_allocate\":%llu,\"track_deallocate\":%llu}\n",
        ttf_variant(), pairs, warmup, live, chips, type, static_cast<unsigned long long>(size), q(0.0), q(0.5),
        q(0.9), q(0.99), q(0.999), q(1.0), pairs ? sum * ns_per_cycle / static_cast<double>(pairs) : 0.0,
        pairs ? wall_ns / static_cast<double>(pairs) : 0.0, 1.0 / ns_per_cycle, flt1 - flt0,
        static_cast<unsigned long long>(ttf_tracker_counter(TTF_CNT_TRACK_ALLOCATE)),
        static_cast<unsigned long long>(ttf_tracker_counter(TTF_CNT_TRACK_DEALLOCATE)));
    std::fflush(stdout);
    // The K held buffers are released untracked by the close (like tt-metal);
    // their handles are deliberately leaked: the process ends here.
    return 0;
}

int mesh_loop(int n, long iters) {
    void* mesh = ttf_open_mesh(n, 0);
    if (mesh == nullptr) die("ttf_open_mesh");
    const uint64_t sharded_size = 8ull * 512 * 512 * 2, repl_size = 1024ull * 1024 * 2, l1_size = 131072,
                   page = 2048;
    const auto w0 = std::chrono::steady_clock::now();
    for (long i = 0; i < iters; ++i) {
        void* sharded = ttf_buffer_create(mesh, sharded_size, page, TTF_DRAM);
        void* repl = ttf_buffer_create(mesh, repl_size, page, TTF_DRAM);
        void* l1 = ttf_buffer_create(mesh, l1_size, page, TTF_L1);
        if (!sharded || !repl || !l1) die("mesh buffer");
        void* prog = ttf_program_create();
        if (prog == nullptr) die("ttf_program_create");
        for (uint64_t s : {16384ull, 16384ull, 8192ull})
            if (ttf_program_add_cb(prog, s, nullptr) < 0) die("ttf_program_add_cb");
        if (ttf_program_run(prog, mesh) != 0) die("ttf_program_run");
        if (ttf_buffer_free(sharded) || ttf_buffer_free(repl) || ttf_buffer_free(l1)) die("free");
        if (ttf_program_destroy(prog) != 0) die("ttf_program_destroy");
    }
    const auto w1 = std::chrono::steady_clock::now();
    if (ttf_close_mesh(mesh) < 0) die("ttf_close_mesh");
    std::printf(
        "{\"scenario\":\"mesh_loop\",\"variant\":\"%s\",\"chips\":%d,\"iters\":%ld,\"ns_per_iter\":%.1f,"
        "\"track_allocate\":%llu,\"track_deallocate\":%llu,\"track_allocate_cb\":%llu,\"track_deallocate_cb\":%llu}\n",
        ttf_variant(), n, iters, std::chrono::duration<double, std::nano>(w1 - w0).count() / (iters ? iters : 1),
        static_cast<unsigned long long>(ttf_tracker_counter(TTF_CNT_TRACK_ALLOCATE)),
        static_cast<unsigned long long>(ttf_tracker_counter(TTF_CNT_TRACK_DEALLOCATE)),
        static_cast<unsigned long long>(ttf_tracker_counter(TTF_CNT_TRACK_ALLOCATE_CB)),
        static_cast<unsigned long long>(ttf_tracker_counter(TTF_CNT_TRACK_DEALLOCATE_CB)));
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 3 && std::strcmp(argv[1], "churn") == 0) return churn(std::atol(argv[2]), argc, argv);
    if (argc >= 4 && std::strcmp(argv[1], "mesh_loop") == 0)
        return mesh_loop(std::atoi(argv[2]), std::atol(argv[3]));
    std::fprintf(stderr,
                 "usage: bench_churn churn PAIRS [warmup=W] [warmup_pause_ms=P] [live=K] [chips=N] [type=T] [size=B]\n"
                 "       bench_churn mesh_loop N ITERS\n");
    return 2;
}
