// seed_baseline: a faithful reimplementation of the seeds' tracking design,
// for ttalloc's benchmarks only (tests/e2e/benches/shim_overhead.rs).
//
// The seeds (AllocationClient, allocation_server_poc) patch tt-metal so that
// GraphTracker::track_allocate / track_deallocate call
// AllocationClient::report_allocation / report_deallocation, which send ONE
// fixed-size message per event with a blocking send() on a connected
// AF_UNIX SOCK_STREAM socket to a separate server process. Here the same
// thing is done from outside tt-metal, as an LD_PRELOAD library that defines
// the two GraphTracker symbols (so libtt_metal.so's own PLT calls land here),
// reads the buffer through tt-metal's exported accessors exactly like the
// patch does (buffer->device()->id(), size(), buffer_type(), address()),
// sends the message, then forwards to the original found with
// dlopen("libtt_metal.so", RTLD_NOLOAD) + dlsym.
//
//   g++ -O2 -std=c++17 -shared -fPIC seed_baseline.cpp -o libseed_baseline.so -ldl
//   g++ -O2 -std=c++17 -DSEED_BASELINE_READER seed_baseline.cpp -o seed_reader
//
//   seed_reader SOCKET_PATH        # serves one client until EOF, prints JSON stats
//   SEED_SOCKET=SOCKET_PATH LD_PRELOAD=libseed_baseline.so <tt-metal program>
//
// The reader is the allocation_server_poc's core: accept, recv fixed-size
// messages, keep per-device/per-type totals and an address -> size map.
// Only the v081 (0.81-style, pimpl) test library exports every accessor used.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

// The seeds' message (allocation_server_poc's AllocMessage): packed, fixed size.
struct __attribute__((packed)) AllocMessage {
    enum Type : uint8_t { ALLOC = 1, FREE = 2, QUERY = 3, RESPONSE = 4 };
    Type type;
    uint8_t pad1[3];
    int32_t device_id;
    uint64_t size;
    uint8_t buffer_type;
    uint8_t pad2[3];
    int32_t process_id;
    uint64_t address;
    uint64_t timestamp;
    // Response fields (unused by ALLOC/FREE, sent anyway: fixed size).
    uint64_t dram_allocated;
    uint64_t l1_allocated;
    uint64_t l1_small_allocated;
    uint64_t trace_allocated;
};
static_assert(sizeof(AllocMessage) == 72, "AllocMessage is 72 bytes");

#ifdef SEED_BASELINE_READER

#include <unordered_map>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: seed_reader SOCKET_PATH\n");
        return 2;
    }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", argv[1]);
    unlink(argv[1]);
    if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(s, 16) != 0) {
        std::perror("seed_reader: bind/listen");
        return 1;
    }
    std::printf("{\"listening\":\"%s\"}\n", argv[1]);
    std::fflush(stdout);
    int c = accept(s, nullptr, nullptr);
    if (c < 0) {
        std::perror("seed_reader: accept");
        return 1;
    }
    std::unordered_map<uint64_t, std::pair<int32_t, uint64_t>> live;  // address -> (device, size)
    uint64_t allocs = 0, frees = 0, unknown = 0, totals[8][5] = {};
    AllocMessage m;
    for (;;) {
        size_t got = 0;
        while (got < sizeof m) {
            ssize_t r = recv(c, reinterpret_cast<char*>(&m) + got, sizeof m - got, 0);
            if (r <= 0) goto done;
            got += static_cast<size_t>(r);
        }
        if (m.type == AllocMessage::ALLOC) {
            ++allocs;
            const int32_t dev = m.device_id;
            const uint64_t sz = m.size;
            live[m.address] = {dev, sz};
            if (dev >= 0 && dev < 8 && m.buffer_type < 5) totals[dev][m.buffer_type] += sz;
        } else if (m.type == AllocMessage::FREE) {
            ++frees;
            auto it = live.find(m.address);
            if (it == live.end()) {
                ++unknown;
            } else {
                live.erase(it);
            }
        }
    }
done:
    std::printf("{\"allocs\":%llu,\"frees\":%llu,\"unknown_frees\":%llu,\"live\":%zu}\n",
                static_cast<unsigned long long>(allocs), static_cast<unsigned long long>(frees),
                static_cast<unsigned long long>(unknown), live.size());
    close(c);
    close(s);
    unlink(argv[1]);
    return 0;
}

#else  // the preloaded client

#include <dlfcn.h>

#include <mutex>

namespace {

using TrackFn = void (*)(void*, const void*);
using U32Fn = uint32_t (*)(const void*);
using U64Fn = uint64_t (*)(const void*);
using PtrFn = void* (*)(const void*);

struct Client {
    int fd = -1;
    bool enabled = false;
    std::mutex mutex;  // one socket shared by every thread of the process
    TrackFn orig_alloc = nullptr, orig_free = nullptr;
    U32Fn address = nullptr, buffer_type = nullptr;
    U64Fn size = nullptr;
    PtrFn device = nullptr;
    pid_t pid = 0;

    Client() {
        pid = getpid();
        // The original library, already loaded by the program: never load another copy.
        void* h = dlopen("libtt_metal.so", RTLD_NOLOAD | RTLD_LAZY);
        if (h != nullptr) {
            orig_alloc = reinterpret_cast<TrackFn>(dlsym(h, "_ZN2tt8tt_metal12GraphTracker14track_allocateEPKNS0_6BufferE"));
            orig_free = reinterpret_cast<TrackFn>(dlsym(h, "_ZN2tt8tt_metal12GraphTracker16track_deallocateEPNS0_6BufferE"));
            address = reinterpret_cast<U32Fn>(dlsym(h, "_ZNK2tt8tt_metal6Buffer7addressEv"));
            size = reinterpret_cast<U64Fn>(dlsym(h, "_ZNK2tt8tt_metal6Buffer4sizeEv"));
            buffer_type = reinterpret_cast<U32Fn>(dlsym(h, "_ZNK2tt8tt_metal6Buffer11buffer_typeEv"));
            device = reinterpret_cast<PtrFn>(dlsym(h, "_ZNK2tt8tt_metal6Buffer6deviceEv"));
        }
        // AllocationClient: enabled by an env var, connects once.
        const char* path = std::getenv("SEED_SOCKET");
        if (path == nullptr || !address || !size || !buffer_type || !device) return;
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
        if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
            enabled = true;
        } else {
            std::fprintf(stderr, "seed_baseline: cannot connect to %s\n", path);
        }
    }

    static uint64_t now_ns() {
        return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
    }

    void send_msg(const AllocMessage& m) {
        std::lock_guard<std::mutex> lock(mutex);
        // Blocking send of the whole message, as report_allocation does.
        const char* p = reinterpret_cast<const char*>(&m);
        size_t left = sizeof m;
        while (left > 0) {
            ssize_t n = send(fd, p, left, MSG_NOSIGNAL);
            if (n <= 0) {
                enabled = false;
                return;
            }
            p += n;
            left -= static_cast<size_t>(n);
        }
    }

    // IDevice::id() is vtable slot 3 (vptr + 24), as the patch's device()->id() calls it.
    static int32_t device_id(void* dev) {
        using IdFn = int (*)(const void*);
        void** vtbl = *reinterpret_cast<void***>(dev);
        return reinterpret_cast<IdFn>(vtbl[3])(dev);
    }

    void report_allocation(const void* buffer) {
        void* dev = device(buffer);
        if (!enabled || dev == nullptr) return;
        AllocMessage m{};
        m.type = AllocMessage::ALLOC;
        m.device_id = device_id(dev);
        m.size = size(buffer);
        m.buffer_type = static_cast<uint8_t>(buffer_type(buffer));
        m.process_id = pid;
        m.address = address(buffer);
        m.timestamp = now_ns();
        send_msg(m);
    }

    void report_deallocation(const void* buffer) {
        if (!enabled || device(buffer) == nullptr) return;
        AllocMessage m{};
        m.type = AllocMessage::FREE;
        m.process_id = pid;
        m.address = address(buffer);
        m.timestamp = now_ns();
        send_msg(m);
    }
};

Client& client() {
    static Client* c = new Client();  // never destroyed: hooks may run during exit
    return *c;
}

}  // namespace

extern "C" {

// GraphTracker::track_allocate(const Buffer*)
void _ZN2tt8tt_metal12GraphTracker14track_allocateEPKNS0_6BufferE(void* self, const void* buffer) {
    Client& c = client();
    c.report_allocation(buffer);
    if (c.orig_alloc) c.orig_alloc(self, buffer);
}

// GraphTracker::track_deallocate(Buffer*)
void _ZN2tt8tt_metal12GraphTracker16track_deallocateEPNS0_6BufferE(void* self, const void* buffer) {
    Client& c = client();
    c.report_deallocation(buffer);
    if (c.orig_free) c.orig_free(self, buffer);
}

}  // extern "C"

#endif
