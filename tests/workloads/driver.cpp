// ttfake_driver: C++ workloads against the fake tt-metal (tests/testlib).
// Built into every variant dir by tests/testlib/Makefile.
//
//   ttfake_driver mesh N | matmul_multicore_reuse | threads T ITERS |
//                 leak_at_close | cb_clash | oom | churn PAIRS | fork | dfb [N] |
//                 mesh_per_core N | signals ITERS | fork_busy CHILDREN
//
// Each scenario prints exactly one JSON line on stdout and exits 0 on
// success (1 on failure, 2 on bad usage). Sizes are documented in
// tests/testlib/README.md.
#include <signal.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tt_metal_fake.hpp"
#include "ttnn_fake.h"

namespace {

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "ttfake_driver: %s failed: %s\n", what.c_str(), ttf_last_error());
    std::exit(1);
}
void* need(void* p, const std::string& what) {
    if (p == nullptr) die(what);
    return p;
}
int need(int r, const std::string& what) {
    if (r < 0) die(what);
    return r;
}
int64_t need_addr(void* buf, const std::string& what) {
    int64_t a = ttf_buffer_address(buf);
    if (a < 0) die(what);
    return a;
}

std::string jstr(const std::string& s) {
    std::string o = "\"";
    for (char c : s) {
        switch (c) {
            case '"': o += "\\\""; break;
            case '\\': o += "\\\\"; break;
            case '\n': o += "\\n"; break;
            case '\t': o += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    o += buf;
                } else {
                    o += c;
                }
        }
    }
    return o + "\"";
}

// Minimal ordered JSON object builder.
class Json {
public:
    Json& raw(const std::string& k, const std::string& v) {
        parts_.push_back(jstr(k) + ":" + v);
        return *this;
    }
    Json& str(const std::string& k, const std::string& v) { return raw(k, jstr(v)); }
    Json& num(const std::string& k, long long v) { return raw(k, std::to_string(v)); }
    Json& unum(const std::string& k, unsigned long long v) { return raw(k, std::to_string(v)); }
    Json& flt(const std::string& k, double v) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.3f", v);
        return raw(k, buf);
    }
    Json& boolean(const std::string& k, bool v) { return raw(k, v ? "true" : "false"); }
    std::string dump() const {
        std::string o = "{";
        for (size_t i = 0; i < parts_.size(); ++i) o += (i ? "," : "") + parts_[i];
        return o + "}";
    }

private:
    std::vector<std::string> parts_;
};

std::string jarr(const std::vector<std::string>& items) {
    std::string o = "[";
    for (size_t i = 0; i < items.size(); ++i) o += (i ? "," : "") + items[i];
    return o + "]";
}
template <typename T>
std::string jnums(const std::vector<T>& v) {
    std::vector<std::string> s;
    for (auto x : v) s.push_back(std::to_string(x));
    return jarr(s);
}

const char* type_name(int t) {
    switch (t) {
        case TTF_DRAM: return "DRAM";
        case TTF_L1: return "L1";
        case TTF_SYSTEM_MEMORY: return "SYSTEM_MEMORY";
        case TTF_L1_SMALL: return "L1_SMALL";
        case TTF_TRACE: return "TRACE";
    }
    return "?";
}

Json header(const std::string& scenario) {
    Json j;
    j.str("scenario", scenario).str("variant", ttf_variant()).str("version", ttf_version()).num("pid", getpid());
    return j;
}

std::string tracker_json() {
    static const char* names[TTF_CNT_COUNT] = {
        "track_allocate", "track_deallocate", "hook_allocate", "hook_allocate_true", "hook_deallocate",
        "hook_deallocate_true", "track_allocate_cb", "track_deallocate_cb", "track_allocate_bytes",
        "track_deallocate_bytes", "track_allocate_cb_bytes"};
    Json j;
    for (int i = 0; i < TTF_CNT_COUNT; ++i) j.unum(names[i], ttf_tracker_counter(i));
    return j.dump();
}

void emit(Json& j) {
    j.raw("tracker", tracker_json());
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
}

std::string buf_json(const char* name, int type, uint64_t size, uint64_t page, int64_t addr) {
    Json j;
    j.str("name", name).str("type", type_name(type)).unum("size", size).unum("page_size", page).num("address", addr);
    return j.dump();
}

// ---------------------------------------------------------------------------
// mesh N: same workload as tests/workloads/test_mesh_allocation.py.
int scenario_mesh(int n) {
    void* mesh = need(ttf_open_mesh(n, 0), "ttf_open_mesh");
    std::vector<void*> devs(n);
    need(ttf_mesh_devices(mesh, devs.data(), n), "ttf_mesh_devices");
    std::vector<int> chip_ids;
    for (void* d : devs) chip_ids.push_back(ttf_device_id(d));

    // (N,8,512,512) bf16 sharded on dim 0 -> 8*512*512*2 = 4 MiB per chip.
    const uint64_t sharded_size = 8ull * 512 * 512 * 2, page = 2048;
    // (1,1,1024,1024) bf16 replicated -> 2 MiB per chip.
    const uint64_t repl_size = 1024ull * 1024 * 2;
    const uint64_t l1_size = 131072;
    void* sharded = need(ttf_buffer_create(mesh, sharded_size, page, TTF_DRAM), "sharded tensor");
    void* repl = need(ttf_buffer_create(mesh, repl_size, page, TTF_DRAM), "replicated tensor");
    void* l1 = need(ttf_buffer_create(mesh, l1_size, page, TTF_L1), "L1 buffer");
    std::vector<std::string> bufs = {
        buf_json("sharded", TTF_DRAM, sharded_size, page, need_addr(sharded, "address")),
        buf_json("replicated", TTF_DRAM, repl_size, page, need_addr(repl, "address")),
        buf_json("l1", TTF_L1, l1_size, page, need_addr(l1, "address")),
    };

    const std::vector<uint64_t> cbs = {16384, 16384, 8192};
    void* prog = need(ttf_program_create(), "ttf_program_create");
    for (uint64_t s : cbs) need(ttf_program_add_cb(prog, s, nullptr), "ttf_program_add_cb");
    need(ttf_program_run(prog, mesh), "ttf_program_run");

    need(ttf_buffer_free(sharded), "free sharded");
    need(ttf_buffer_free(repl), "free replicated");
    need(ttf_buffer_free(l1), "free l1");
    const uint64_t prog_id = ttf_program_id(prog);
    need(ttf_program_destroy(prog), "ttf_program_destroy");
    const int mesh_id = ttf_device_id(mesh);
    need(ttf_close_mesh(mesh), "ttf_close_mesh");

    uint64_t cb_total = 0;
    for (uint64_t s : cbs) cb_total += s;
    Json j = header("mesh");
    j.num("chips", n)
        .num("mesh_id", mesh_id)
        .raw("chip_ids", jnums(chip_ids))
        .raw("buffers", jarr(bufs))
        .unum("program_id", prog_id)
        .raw("cb_sizes", jnums(cbs))
        .unum("cb_bytes_per_chip", cb_total)
        .unum("dram_bytes_per_chip", sharded_size + repl_size)
        .unum("l1_bytes_per_chip", l1_size);
    emit(j);
    return 0;
}

// mesh_per_core N (v081): per-core (HYBRID) mesh buffer = owning buffer per chip.
int scenario_mesh_per_core(int n) {
    if (ttf_constant("PIMPL_BUFFER") == 0) {
        Json j = header("mesh_per_core");
        j.boolean("supported", false);
        emit(j);
        return 0;
    }
    void* mesh = need(ttf_open_mesh(n, 0), "ttf_open_mesh");
    const uint64_t size = 65536, page = 2048;
    void* b = need(ttf_mesh_buffer_create_per_core(mesh, size, page, TTF_L1), "per-core mesh buffer");
    const int nbufs = ttf_buffer_num_device_buffers(b);
    if (nbufs != n) die("per-core mesh buffer must own one buffer per chip");
    for (int i = 0; i < nbufs; ++i) need(ttf_buffer_ptr(b, i), "ttf_buffer_ptr");
    const int64_t addr = need_addr(b, "address");
    need(ttf_buffer_free(b), "free");
    need(ttf_close_mesh(mesh), "close");
    Json j = header("mesh_per_core");
    j.boolean("supported", true).num("chips", n).str("type", "L1").unum("size_per_chip", size).num("address", addr);
    emit(j);
    return 0;
}

// matmul_multicore_reuse: one device, DRAM in0/in1/out, 3 CBs, one run, then
// a NO_DISPATCH capture that creates and frees 2 (hooked) buffers.
int scenario_matmul() {
    void* dev = need(ttf_open_device(0), "ttf_open_device");
    const uint64_t mat = 512ull * 512 * 2, page = 2048;  // 512x512 bf16 = 512 KiB
    void* in0 = need(ttf_buffer_create(dev, mat, page, TTF_DRAM), "in0");
    void* in1 = need(ttf_buffer_create(dev, mat, page, TTF_DRAM), "in1");
    void* out = need(ttf_buffer_create(dev, mat, page, TTF_DRAM), "out");
    std::vector<std::string> bufs = {
        buf_json("in0", TTF_DRAM, mat, page, need_addr(in0, "address")),
        buf_json("in1", TTF_DRAM, mat, page, need_addr(in1, "address")),
        buf_json("out", TTF_DRAM, mat, page, need_addr(out, "address")),
    };
    const std::vector<uint64_t> cbs = {32768, 32768, 16384};
    void* prog = need(ttf_program_create(), "ttf_program_create");
    for (uint64_t s : cbs) need(ttf_program_add_cb(prog, s, nullptr), "ttf_program_add_cb");
    need(ttf_program_run(prog, dev), "ttf_program_run");

    need(ttf_begin_capture(), "ttf_begin_capture");
    const uint64_t cap_dram = 1048576, cap_l1 = 65536;
    void* c0 = need(ttf_buffer_create(dev, cap_dram, page, TTF_DRAM), "captured DRAM buffer");
    void* c1 = need(ttf_buffer_create(dev, cap_l1, page, TTF_L1), "captured L1 buffer");
    std::vector<std::string> hooked = {
        buf_json("captured_dram", TTF_DRAM, cap_dram, page, need_addr(c0, "address")),
        buf_json("captured_l1", TTF_L1, cap_l1, page, need_addr(c1, "address")),
    };
    if (ttf_buffer_address(c0) != 0 || ttf_buffer_address(c1) != 0) die("captured buffers must have address 0");
    need(ttf_buffer_free(c0), "free captured DRAM");
    need(ttf_buffer_free(c1), "free captured L1");
    need(ttf_end_capture(), "ttf_end_capture");

    need(ttf_buffer_free(in0), "free in0");
    need(ttf_buffer_free(in1), "free in1");
    need(ttf_buffer_free(out), "free out");
    const uint64_t prog_id = ttf_program_id(prog);
    need(ttf_program_destroy(prog), "ttf_program_destroy");
    need(ttf_close_device(dev), "ttf_close_device");

    Json j = header("matmul_multicore_reuse");
    j.num("chip", 0)
        .raw("buffers", jarr(bufs))
        .unum("program_id", prog_id)
        .raw("cb_sizes", jnums(cbs))
        .raw("hooked", jarr(hooked));
    emit(j);
    return 0;
}

// threads T ITERS: each iteration creates one L1 (4 KiB) and one DRAM (8 KiB)
// buffer on chip 0 and frees both; addresses are reused across threads.
int scenario_threads(int nthreads, int iters) {
    void* dev = need(ttf_open_device(0), "ttf_open_device");
    const uint64_t l1_size = 4096, l1_page = 1024, dram_size = 8192, dram_page = 2048;
    std::atomic<int> ready{0};
    std::atomic<bool> failed{false};
    std::mutex m;
    std::set<int64_t> l1_addrs, dram_addrs;
    std::string first_error;
    std::vector<std::thread> threads;
    for (int t = 0; t < nthreads; ++t) {
        threads.emplace_back([&]() {
            std::set<int64_t> my_l1, my_dram;
            ready.fetch_add(1);
            while (ready.load() < nthreads) std::this_thread::yield();
            for (int i = 0; i < iters && !failed.load(); ++i) {
                void* a = ttf_buffer_create(dev, l1_size, l1_page, TTF_L1);
                void* b = ttf_buffer_create(dev, dram_size, dram_page, TTF_DRAM);
                if (!a || !b) {
                    std::lock_guard<std::mutex> lock(m);
                    if (first_error.empty()) first_error = ttf_last_error();
                    failed = true;
                    break;
                }
                my_l1.insert(ttf_buffer_address(a));
                my_dram.insert(ttf_buffer_address(b));
                if (ttf_buffer_free(a) != 0 || ttf_buffer_free(b) != 0) {
                    failed = true;
                    break;
                }
            }
            std::lock_guard<std::mutex> lock(m);
            l1_addrs.insert(my_l1.begin(), my_l1.end());
            dram_addrs.insert(my_dram.begin(), my_dram.end());
        });
    }
    for (auto& th : threads) th.join();
    if (failed) {
        std::fprintf(stderr, "ttfake_driver: threads failed: %s\n", first_error.c_str());
        return 1;
    }
    need(ttf_close_device(dev), "ttf_close_device");
    Json j = header("threads");
    j.num("threads", nthreads)
        .num("iters", iters)
        .num("chip", 0)
        .unum("l1_size", l1_size)
        .unum("dram_size", dram_size)
        .num("allocations", 2ll * nthreads * iters)
        .num("distinct_l1_addresses", static_cast<long long>(l1_addrs.size()))
        .num("distinct_dram_addresses", static_cast<long long>(dram_addrs.size()));
    emit(j);
    return 0;
}

// leak_at_close: 3 buffers are never freed; the device is closed.
int scenario_leak_at_close() {
    void* dev = need(ttf_open_device(0), "ttf_open_device");
    struct B {
        const char* name;
        int type;
        uint64_t size, page;
    };
    const B specs[] = {{"leak_dram_0", TTF_DRAM, 1048576, 2048},
                       {"leak_dram_1", TTF_DRAM, 262144, 2048},
                       {"leak_l1", TTF_L1, 65536, 2048}};
    std::vector<std::string> bufs;
    for (const B& s : specs) {
        void* b = need(ttf_buffer_create(dev, s.size, s.page, s.type), s.name);
        bufs.push_back(buf_json(s.name, s.type, s.size, s.page, need_addr(b, "address")));
    }
    need(ttf_close_device(dev), "ttf_close_device");
    Json j = header("leak_at_close");
    j.num("chip", 0).raw("leaked", jarr(bufs));
    emit(j);
    return 0;
}

// cb_clash: an L1 buffer low enough that the program's CBs overlap it.
int scenario_cb_clash() {
    void* dev = need(ttf_open_device(0), "ttf_open_device");
    const uint64_t base = ttf_constant("L1_UNRESERVED_BASE"), end = ttf_constant("L1_END");
    const uint64_t sys_l1 = ttf_constant("SYS_L1_SIZE");
    // Top-down: address = end - sys_l1 - size = base + 64 KiB.
    const uint64_t l1_size = end - sys_l1 - base - 65536, page = 1024;
    void* l1 = need(ttf_buffer_create(dev, l1_size, page, TTF_L1), "low L1 buffer");
    const int64_t l1_addr = need_addr(l1, "address");
    const uint64_t cb_size = 131072;  // CB region [base, base + 128 KiB) clashes
    void* prog = need(ttf_program_create(), "ttf_program_create");
    need(ttf_program_add_cb(prog, cb_size, nullptr), "ttf_program_add_cb");
    const int rc = ttf_program_run(prog, dev);
    const std::string msg = ttf_last_error();
    if (rc != -1) die("ttf_program_run was expected to throw (rc=" + std::to_string(rc) + ")");
    if (msg.find("clash with L1 buffers") == std::string::npos) die("unexpected exception: " + msg);
    const uint64_t prog_id = ttf_program_id(prog);
    need(ttf_program_destroy(prog), "ttf_program_destroy");
    need(ttf_buffer_free(l1), "free L1");
    need(ttf_close_device(dev), "ttf_close_device");
    Json j = header("cb_clash");
    j.num("chip", 0)
        .raw("buffers", jarr({buf_json("low_l1", TTF_L1, l1_size, page, l1_addr)}))
        .unum("program_id", prog_id)
        .raw("cb_sizes", jnums(std::vector<uint64_t>{cb_size}))
        .unum("cb_region_end", base + cb_size)
        .str("exception", msg);
    emit(j);
    return 0;
}

// oom: 64 MiB DRAM buffers until Out of Memory.
int scenario_oom() {
    void* dev = need(ttf_open_device(0), "ttf_open_device");
    const uint64_t size = 64ull << 20, page = 2048;
    std::vector<void*> bufs;
    std::vector<int64_t> addrs;
    std::string msg;
    for (int i = 0; i < 1000; ++i) {
        void* b = ttf_buffer_create(dev, size, page, TTF_DRAM);
        if (b == nullptr) {
            msg = ttf_last_error();
            break;
        }
        bufs.push_back(b);
        addrs.push_back(need_addr(b, "address"));
    }
    if (msg.rfind("Out of Memory", 0) != 0) die("expected an Out of Memory error, got: " + msg);
    for (void* b : bufs) need(ttf_buffer_free(b), "free");
    need(ttf_close_device(dev), "ttf_close_device");
    Json j = header("oom");
    j.num("chip", 0)
        .str("type", "DRAM")
        .unum("size", size)
        .num("allocated", static_cast<long long>(bufs.size()))
        .raw("addresses", jnums(addrs))
        .str("error", msg);
    emit(j);
    return 0;
}

// churn PAIRS: create+free of one 4 KiB DRAM buffer, timed.
int scenario_churn(long long pairs) {
    void* dev = need(ttf_open_device(0), "ttf_open_device");
    const uint64_t size = 4096, page = 2048;
    auto t0 = std::chrono::steady_clock::now();
    for (long long i = 0; i < pairs; ++i) {
        void* b = ttf_buffer_create(dev, size, page, TTF_DRAM);
        if (b == nullptr) die("ttf_buffer_create");
        if (ttf_buffer_free(b) != 0) die("ttf_buffer_free");
    }
    auto t1 = std::chrono::steady_clock::now();
    need(ttf_close_device(dev), "ttf_close_device");
    const double ns = std::chrono::duration<double, std::nano>(t1 - t0).count();
    Json j = header("churn");
    j.num("chip", 0).unum("size", size).num("pairs", pairs).flt("ns_per_pair", pairs > 0 ? ns / pairs : 0.0);
    emit(j);
    return 0;
}

// fork: parent allocates, forks; child allocates+frees and exits 0; parent
// waits and frees.
int scenario_fork() {
    void* dev = need(ttf_open_device(0), "ttf_open_device");
    const uint64_t parent_size = 1048576, child_size = 2097152, page = 2048;
    void* a = need(ttf_buffer_create(dev, parent_size, page, TTF_DRAM), "parent buffer");
    const int64_t a_addr = need_addr(a, "address");
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        void* b = ttf_buffer_create(dev, child_size, page, TTF_DRAM);
        if (b == nullptr || ttf_buffer_free(b) != 0) {
            std::fprintf(stderr, "ttfake_driver: child failed: %s\n", ttf_last_error());
            std::exit(1);
        }
        std::exit(0);  // normal exit: atexit handlers run in the child
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) die("waitpid");
    const bool child_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    need(ttf_buffer_free(a), "free parent buffer");
    need(ttf_close_device(dev), "ttf_close_device");
    Json j = header("fork");
    j.num("chip", 0)
        .raw("parent_buffer", buf_json("parent", TTF_DRAM, parent_size, page, a_addr))
        .unum("child_size", child_size)
        .num("child_pid", pid)
        .num("child_exit", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    emit(j);
    return child_ok ? 0 : 1;
}

// dfb [N] (v081): program with 2 dataflow buffers, each over two core ranges,
// run on chip 0 (N = 0) or on an N-chip mesh, then destroyed.
int scenario_dfb(int n) {
    if (ttf_constant("HAS_DATAFLOW_BUFFERS") == 0) {
        Json j = header("dfb");
        j.boolean("supported", false);
        emit(j);
        return 0;
    }
    void* dev = n > 0 ? need(ttf_open_mesh(n, 0), "ttf_open_mesh") : need(ttf_open_device(0), "ttf_open_device");
    const std::vector<uint64_t> dfbs = {32768, 16384};
    void* prog = need(ttf_program_create(), "ttf_program_create");
    for (uint64_t s : dfbs) need(ttf_program_add_dfb(prog, s), "ttf_program_add_dfb");
    need(ttf_program_run(prog, dev), "ttf_program_run");
    need(ttf_program_run(prog, dev), "ttf_program_run");  // placed once: the second run adds nothing
    const uint64_t prog_id = ttf_program_id(prog);
    need(ttf_program_destroy(prog), "ttf_program_destroy");
    if (n > 0) need(ttf_close_mesh(dev), "ttf_close_mesh");
    else need(ttf_close_device(dev), "ttf_close_device");
    Json j = header("dfb");
    j.boolean("supported", true).num("chips", n).unum("program_id", prog_id).raw("dfb_sizes", jnums(dfbs));
    emit(j);
    return 0;
}

// Tracker calls a signal handler or a forked child makes by hand on a spare
// buffer (the test library's tracker only counts them, lock-free). The
// handler frees then re-allocates, so the buffer stays live; a forked child,
// whose tracer starts empty, allocates then frees. Either pair is consistent
// whether or not a tracer records it.
namespace spare {
tt::tt_metal::Buffer* buffer = nullptr;
std::atomic<uint64_t> pairs{0};
void on_alarm(int) {
    auto& g = tt::tt_metal::GraphTracker::instance();
    g.track_deallocate(buffer);
    g.track_allocate(buffer);
    pairs.fetch_add(1, std::memory_order_relaxed);
}
void child_pair() {
    auto& g = tt::tt_metal::GraphTracker::instance();
    g.track_allocate(buffer);
    g.track_deallocate(buffer);
}
}  // namespace spare

// signals ITERS: one thread creates and frees an L1 (4 KiB) and a DRAM
// (8 KiB) buffer ITERS times while SIGALRM fires every 50 us; the handler
// calls the tracker itself (spare::on_alarm), so it lands inside hooks.
// Prints a sum of the addresses seen (deterministic) and, separately, how
// many handler calls happened (timing-dependent).
int scenario_signals(long long iters) {
    void* dev = need(ttf_open_device(0), "ttf_open_device");
    auto spare_buf = tt::tt_metal::Buffer::create(
        static_cast<tt::tt_metal::IDevice*>(dev), 4096, 1024, tt::tt_metal::BufferType::L1);
    spare::buffer = spare_buf.get();
    struct sigaction sa {};
    sa.sa_handler = spare::on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, nullptr) != 0) die("sigaction");
    itimerval it{{0, 50}, {0, 50}};
    if (setitimer(ITIMER_REAL, &it, nullptr) != 0) die("setitimer");
    uint64_t address_sum = 0;
    for (long long i = 0; i < iters; ++i) {
        void* a = ttf_buffer_create(dev, 4096, 1024, TTF_L1);
        void* b = ttf_buffer_create(dev, 8192, 2048, TTF_DRAM);
        if (!a || !b) die("ttf_buffer_create");
        address_sum += static_cast<uint64_t>(ttf_buffer_address(a)) + static_cast<uint64_t>(ttf_buffer_address(b));
        if (ttf_buffer_free(a) != 0 || ttf_buffer_free(b) != 0) die("ttf_buffer_free");
    }
    itimerval off{};
    setitimer(ITIMER_REAL, &off, nullptr);
    signal(SIGALRM, SIG_IGN);
    spare_buf.reset();
    need(ttf_close_device(dev), "ttf_close_device");
    Json j = header("signals");
    j.num("chip", 0)
        .num("iters", iters)
        .unum("address_sum", address_sum)
        .unum("handler_calls", spare::pairs.load())
        .unum("spare", reinterpret_cast<uintptr_t>(spare::buffer));
    emit(j);
    return 0;
}

// fork_busy CHILDREN: a worker thread creates and frees a DRAM buffer 200000
// times while the main thread forks CHILDREN children, one after another;
// each child makes one tracker pair on the spare buffer (spare::child_pair) and
// leaves with _exit(0), as forked workers do.
int scenario_fork_busy(int children) {
    void* dev = need(ttf_open_device(0), "ttf_open_device");
    auto spare_buf = tt::tt_metal::Buffer::create(
        static_cast<tt::tt_metal::IDevice*>(dev), 4096, 1024, tt::tt_metal::BufferType::L1);
    spare::buffer = spare_buf.get();
    const long long worker_iters = 200000;
    std::atomic<bool> worker_failed{false};
    std::thread worker([&]() {
        for (long long i = 0; i < worker_iters; ++i) {
            void* b = ttf_buffer_create(dev, 8192, 2048, TTF_DRAM);
            if (b == nullptr || ttf_buffer_free(b) != 0) {
                worker_failed = true;
                return;
            }
        }
    });
    int ok = 0;
    for (int c = 0; c < children; ++c) {
        std::fflush(stdout);
        std::fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            spare::child_pair();
            _exit(0);
        }
        int status = 0;
        if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0) ++ok;
        usleep(2000);
    }
    worker.join();
    if (worker_failed) die("worker");
    spare_buf.reset();
    need(ttf_close_device(dev), "ttf_close_device");
    Json j = header("fork_busy");
    j.num("chip", 0).num("children", children).num("children_ok", ok).num("worker_iters", worker_iters);
    emit(j);
    return ok == children ? 0 : 1;
}

int usage() {
    std::fprintf(stderr,
                 "usage: ttfake_driver mesh N | mesh_per_core N | matmul_multicore_reuse | threads T ITERS |\n"
                 "                     leak_at_close | cb_clash | oom | churn PAIRS | fork | dfb [N] |\n"
                 "                     signals ITERS | fork_busy CHILDREN\n");
    return 2;
}

long long arg_num(int argc, char** argv, int i, long long def) {
    if (i >= argc) return def;
    char* end = nullptr;
    long long v = std::strtoll(argv[i], &end, 10);
    if (end == argv[i] || *end != '\0' || v < 0) {
        std::fprintf(stderr, "ttfake_driver: bad number '%s'\n", argv[i]);
        std::exit(2);
    }
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage();
    const std::string s = argv[1];
    if (s == "mesh") return scenario_mesh(static_cast<int>(arg_num(argc, argv, 2, 8)));
    if (s == "mesh_per_core") return scenario_mesh_per_core(static_cast<int>(arg_num(argc, argv, 2, 8)));
    if (s == "matmul_multicore_reuse") return scenario_matmul();
    if (s == "threads")
        return scenario_threads(static_cast<int>(arg_num(argc, argv, 2, 4)), static_cast<int>(arg_num(argc, argv, 3, 1000)));
    if (s == "leak_at_close") return scenario_leak_at_close();
    if (s == "cb_clash") return scenario_cb_clash();
    if (s == "oom") return scenario_oom();
    if (s == "churn") return scenario_churn(arg_num(argc, argv, 2, 100000));
    if (s == "fork") return scenario_fork();
    if (s == "dfb") return scenario_dfb(static_cast<int>(arg_num(argc, argv, 2, 0)));
    if (s == "signals") return scenario_signals(arg_num(argc, argv, 2, 100000));
    if (s == "fork_busy") return scenario_fork_busy(static_cast<int>(arg_num(argc, argv, 2, 10)));
    return usage();
}
