// libttnn_fake.so: extern "C" wrapper over the fake libtt_metal C++ API.
#include "ttnn_fake.h"

#include <cstring>
#include <exception>
#include <mutex>
#include <set>
#include <string>

#include "tt_metal_fake.hpp"

using namespace tt::tt_metal;

namespace {

thread_local std::string g_last_error;

void set_error(const char* msg) { g_last_error = msg ? msg : "unknown error"; }

struct TtfBuffer {
    std::shared_ptr<Buffer> buffer;                      // single buffer
    std::shared_ptr<distributed::MeshBuffer> mesh;       // mesh buffer
};

std::mutex& mesh_members_mutex() {
    static std::mutex* m = new std::mutex();
    return *m;
}
// Physical devices that belong to a mesh which has not been closed yet.
std::set<IDevice*>& mesh_members() {
    static auto* s = new std::set<IDevice*>();
    return *s;
}

class NoDispatchHooks final : public IGraphHooks {
public:
    bool hook_allocate(const Buffer*) override { return true; }
    bool hook_deallocate(Buffer*) override { return true; }
};

distributed::MeshDevice* as_mesh(void* dev) {
    return dynamic_cast<distributed::MeshDevice*>(static_cast<IDevice*>(dev));
}

BufferType to_type(int type) {
    if (type < 0 || type > 4) throw std::runtime_error("invalid buffer type " + std::to_string(type));
    return static_cast<BufferType>(type);
}

template <typename R, typename F>
R guarded(R on_error, F&& f) {
    g_last_error.clear();
    try {
        return f();
    } catch (const std::exception& e) {
        set_error(e.what());
    } catch (...) {
        set_error("unknown C++ exception");
    }
    return on_error;
}

#define TTF_REQUIRE(cond, msg) \
    do {                       \
        if (!(cond)) throw std::runtime_error(msg); \
    } while (0)

}  // namespace

extern "C" {

const char* ttf_version(void) { return fake_version(); }
const char* ttf_variant(void) { return fake_variant(); }
const char* ttf_last_error(void) { return g_last_error.c_str(); }

uint64_t ttf_constant(const char* name) {
    if (name == nullptr) return 0;
    struct Entry {
        const char* name;
        uint64_t value;
    };
    static const Entry table[] = {
        {"DRAM_UNRESERVED_BASE", fake::DRAM_UNRESERVED_BASE},
        {"DRAM_END", fake::DRAM_END},
        {"TRACE_BASE", fake::TRACE_BASE},
        {"TRACE_END", fake::TRACE_END},
        {"L1_SIZE", fake::L1_SIZE},
        {"L1_UNRESERVED_BASE", fake::L1_UNRESERVED_BASE},
        {"L1_END", fake::L1_END},
        {"L1_SMALL_BASE", fake::L1_SMALL_BASE},
        {"L1_SMALL_SIZE", fake::L1_SMALL_SIZE},
        {"DRAM_ALIGNMENT", fake::DRAM_ALIGNMENT},
        {"L1_ALIGNMENT", fake::L1_ALIGNMENT},
        {"SYS_DRAM_A_SIZE", fake::SYS_DRAM_A_SIZE},
        {"SYS_DRAM_A_PAGE", fake::SYS_DRAM_A_PAGE},
        {"SYS_DRAM_B_SIZE", fake::SYS_DRAM_B_SIZE},
        {"SYS_DRAM_B_PAGE", fake::SYS_DRAM_B_PAGE},
        {"SYS_L1_SIZE", fake::SYS_L1_SIZE},
        {"SYS_L1_PAGE", fake::SYS_L1_PAGE},
        {"FIRST_MESH_ID", static_cast<uint64_t>(fake::FIRST_MESH_ID)},
        {"CB_PER_PHYSICAL_DEVICE", TTFAKE_CB_PER_PHYS},
        {"HAS_TRACK_DEALLOCATE_CB_CALLS", TTFAKE_CB_PER_PHYS},
        {"PIMPL_BUFFER", TTFAKE_PIMPL},
        {"HAS_DATAFLOW_BUFFERS", TTFAKE_DFB},
    };
    for (const auto& e : table) {
        if (std::strcmp(e.name, name) == 0) return e.value;
    }
    return 0;
}

void* ttf_open_device(int chip) {
    return guarded<void*>(nullptr, [&]() -> void* { return CreateDevice(chip); });
}

void* ttf_open_mesh(int n_chips, int first_chip) {
    return guarded<void*>(nullptr, [&]() -> void* {
        distributed::MeshDevice* mesh = distributed::MeshDevice::create(n_chips, first_chip);
        std::lock_guard<std::mutex> lock(mesh_members_mutex());
        for (IDevice* d : mesh->get_devices()) mesh_members().insert(d);
        return static_cast<IDevice*>(mesh);
    });
}

int ttf_mesh_devices(void* mesh, void** out, int cap) {
    return guarded<int>(-1, [&]() -> int {
        distributed::MeshDevice* m = as_mesh(mesh);
        TTF_REQUIRE(m != nullptr, "ttf_mesh_devices: not a MeshDevice");
        std::vector<IDevice*> devs = m->get_devices();
        for (int i = 0; i < cap && i < static_cast<int>(devs.size()); ++i) out[i] = devs[i];
        return static_cast<int>(devs.size());
    });
}

int ttf_device_id(void* dev) {
    return guarded<int>(-1, [&]() -> int {
        TTF_REQUIRE(dev != nullptr, "ttf_device_id: null device");
        return static_cast<IDevice*>(dev)->id();
    });
}

int ttf_device_is_mesh(void* dev) {
    return guarded<int>(-1, [&]() -> int {
        TTF_REQUIRE(dev != nullptr, "ttf_device_is_mesh: null device");
        return as_mesh(dev) != nullptr ? 1 : 0;
    });
}

static int close_mesh_impl(distributed::MeshDevice* mesh) {
    std::vector<IDevice*> devs = mesh->get_devices();
    bool closed = CloseDevice(mesh);  // virtual MeshDevice::close()
    std::lock_guard<std::mutex> lock(mesh_members_mutex());
    for (IDevice* d : devs) mesh_members().erase(d);
    return closed ? 0 : 1;
}

int ttf_close_device(void* dev) {
    return guarded<int>(-1, [&]() -> int {
        TTF_REQUIRE(dev != nullptr, "ttf_close_device: null device");
        if (distributed::MeshDevice* mesh = as_mesh(dev)) return close_mesh_impl(mesh);
        {
            std::lock_guard<std::mutex> lock(mesh_members_mutex());
            TTF_REQUIRE(
                mesh_members().count(static_cast<IDevice*>(dev)) == 0,
                "ttf_close_device: device belongs to an open mesh; close the mesh");
        }
        return CloseDevice(static_cast<IDevice*>(dev)) ? 0 : 1;  // virtual Device::close()
    });
}

int ttf_close_mesh(void* mesh) {
    return guarded<int>(-1, [&]() -> int {
        distributed::MeshDevice* m = as_mesh(mesh);
        TTF_REQUIRE(m != nullptr, "ttf_close_mesh: not a MeshDevice");
        return close_mesh_impl(m);
    });
}

void* ttf_buffer_create(void* dev, uint64_t size, uint64_t page_size, int type) {
    return guarded<void*>(nullptr, [&]() -> void* {
        TTF_REQUIRE(dev != nullptr, "ttf_buffer_create: null device");
        auto* h = new TtfBuffer();
        try {
            if (distributed::MeshDevice* mesh = as_mesh(dev)) {
                h->mesh = distributed::MeshBuffer::create(mesh, size, page_size, to_type(type));
            } else {
                h->buffer = Buffer::create(static_cast<IDevice*>(dev), size, page_size, to_type(type));
            }
        } catch (...) {
            delete h;
            throw;
        }
        return h;
    });
}

void* ttf_buffer_create_at(void* dev, uint64_t addr, uint64_t size, uint64_t page_size, int type) {
    return guarded<void*>(nullptr, [&]() -> void* {
        TTF_REQUIRE(dev != nullptr, "ttf_buffer_create_at: null device");
        auto* h = new TtfBuffer();
        try {
            h->buffer = Buffer::create(static_cast<IDevice*>(dev), addr, size, page_size, to_type(type));
        } catch (...) {
            delete h;
            throw;
        }
        return h;
    });
}

void* ttf_mesh_buffer_create_per_core(void* mesh, uint64_t size, uint64_t page_size, int type) {
    return guarded<void*>(nullptr, [&]() -> void* {
#if TTFAKE_PIMPL
        distributed::MeshDevice* m = as_mesh(mesh);
        TTF_REQUIRE(m != nullptr, "ttf_mesh_buffer_create_per_core: not a MeshDevice");
        auto* h = new TtfBuffer();
        try {
            h->mesh = distributed::MeshBuffer::create_per_core(m, size, page_size, to_type(type));
        } catch (...) {
            delete h;
            throw;
        }
        return h;
#else
        (void)mesh;
        (void)size;
        (void)page_size;
        (void)type;
        throw std::runtime_error(std::string("per-core (HYBRID) mesh buffers need tt-metal 0.81; this is ") +
                                 fake_version());
#endif
    });
}

int64_t ttf_buffer_address(void* buf) {
    return guarded<int64_t>(-1, [&]() -> int64_t {
        TTF_REQUIRE(buf != nullptr, "ttf_buffer_address: null buffer");
        auto* h = static_cast<TtfBuffer*>(buf);
        if (h->mesh) return h->mesh->address();
        return h->buffer->address();
    });
}

void* ttf_buffer_ptr(void* buf, int index) {
    return guarded<void*>(nullptr, [&]() -> void* {
        TTF_REQUIRE(buf != nullptr, "ttf_buffer_ptr: null buffer");
        auto* h = static_cast<TtfBuffer*>(buf);
        if (!h->mesh) {
            TTF_REQUIRE(index == -1, "ttf_buffer_ptr: a single buffer only has index -1");
            return h->buffer.get();
        }
        if (index == -1) return h->mesh->get_backing_buffer();
        TTF_REQUIRE(
            index >= 0 && static_cast<std::size_t>(index) < h->mesh->num_device_buffers(),
            "ttf_buffer_ptr: index out of range");
        return h->mesh->get_device_buffer(static_cast<std::size_t>(index));
    });
}

int ttf_buffer_num_device_buffers(void* buf) {
    return guarded<int>(-1, [&]() -> int {
        TTF_REQUIRE(buf != nullptr, "ttf_buffer_num_device_buffers: null buffer");
        auto* h = static_cast<TtfBuffer*>(buf);
        return h->mesh ? static_cast<int>(h->mesh->num_device_buffers()) : 0;
    });
}

int ttf_buffer_free(void* buf) {
    return guarded<int>(-1, [&]() -> int {
        TTF_REQUIRE(buf != nullptr, "ttf_buffer_free: null buffer");
        auto* h = static_cast<TtfBuffer*>(buf);
        if (h->mesh) {
            h->mesh->deallocate();
        } else {
            DeallocateBuffer(*h->buffer);
        }
        delete h;  // drops the last references: ~Buffer finds nothing left to free
        return 0;
    });
}

int ttf_begin_capture(void) {
    return guarded<int>(-1, [&]() -> int {
        GraphTracker::instance().add_hook(std::make_shared<NoDispatchHooks>());
        return 0;
    });
}

int ttf_end_capture(void) {
    return guarded<int>(-1, [&]() -> int {
        GraphTracker::instance().clear_hook();
        return 0;
    });
}

void* ttf_program_create(void) {
    return guarded<void*>(nullptr, [&]() -> void* { return new Program(); });
}

uint64_t ttf_program_id(void* prog) {
    return guarded<uint64_t>(UINT64_MAX, [&]() -> uint64_t {
        TTF_REQUIRE(prog != nullptr, "ttf_program_id: null program");
        return static_cast<Program*>(prog)->impl().get_id();
    });
}

static CoreRangeSet full_grid() { return CoreRangeSet(CoreRange{CoreCoord{0, 0}, CoreCoord{7, 7}}); }

int ttf_program_add_cb(void* prog, uint64_t size, void* global_buf_or_null) {
    return guarded<int>(-1, [&]() -> int {
        TTF_REQUIRE(prog != nullptr, "ttf_program_add_cb: null program");
        CircularBufferConfig config;
        config.total_size = size;
        if (global_buf_or_null != nullptr) {
            auto* h = static_cast<TtfBuffer*>(global_buf_or_null);
            Buffer* b = h->mesh ? h->mesh->get_backing_buffer() : h->buffer.get();
            if (b == nullptr && h->mesh) b = h->mesh->get_device_buffer(0);
            TTF_REQUIRE(b != nullptr, "ttf_program_add_cb: global buffer has no Buffer");
            TTF_REQUIRE(b->is_l1(), "ttf_program_add_cb: a globally allocated CB needs an L1 buffer");
            config.globally_allocated_address = b->address();
        }
        return static_cast<int>(CreateCircularBuffer(*static_cast<Program*>(prog), full_grid(), config));
    });
}

#if TTFAKE_DFB
// The same grid as two core ranges: a DFB on it is marked in two allocators
// (two mark_address calls at one address), as on a real multi-range program.
static CoreRangeSet grid_halves() {
    return CoreRangeSet(std::vector<CoreRange>{CoreRange{CoreCoord{0, 0}, CoreCoord{3, 7}},
                                               CoreRange{CoreCoord{4, 0}, CoreCoord{7, 7}}});
}
#endif

int ttf_program_add_dfb(void* prog, uint64_t size) {
    return guarded<int>(-1, [&]() -> int {
        TTF_REQUIRE(prog != nullptr, "ttf_program_add_dfb: null program");
#if TTFAKE_DFB
        return static_cast<int>(CreateDataflowBuffer(*static_cast<Program*>(prog), grid_halves(), size));
#else
        (void)size;
        throw std::runtime_error(std::string("dataflow buffers need tt-metal 0.81; this is ") + fake_version());
#endif
    });
}

int ttf_program_run(void* prog, void* dev) {
    return guarded<int>(-1, [&]() -> int {
        TTF_REQUIRE(prog != nullptr, "ttf_program_run: null program");
        TTF_REQUIRE(dev != nullptr, "ttf_program_run: null device");
        EnqueueProgram(static_cast<IDevice*>(dev), *static_cast<Program*>(prog));
        return 0;
    });
}

int ttf_program_destroy(void* prog) {
    return guarded<int>(-1, [&]() -> int {
        TTF_REQUIRE(prog != nullptr, "ttf_program_destroy: null program");
        delete static_cast<Program*>(prog);  // ~Program (libtt_metal) -> ~ProgramImpl
        return 0;
    });
}

uint64_t ttf_tracker_counter(int which) { return GraphTracker::instance().get_counter(which); }

}  // extern "C"
