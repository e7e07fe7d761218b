// ttfake: a small stand-in for Tenstorrent's libtt_metal.so.
//
// This is NOT tt-metal. It mirrors the *ABI and call structure* of the real
// library for exactly the functions and object layouts that the ttalloc shim
// touches (see ../README.md and /work/shared/docs/tt-metal-abi.md). Everything
// else is simplified or absent.
//
// Variant switches (set by the Makefile):
//   TTFAKE_PIMPL        0: 0.65-0.77 legacy Buffer layout, 1: 0.81 Buffer -> BufferImpl pimpl
//   TTFAKE_CB_PER_PHYS  0: 0.65/0.68 CB semantics, 1: 0.71+ CB semantics
//   TTFAKE_DFB          1: ProgramImpl::allocate_dataflow_buffers exists (0.81)
//   TTFAKE_VERSION      mirrored tt-metal version string, e.g. "0.71.2"
//   TTFAKE_VARIANT      variant name, e.g. "v071"
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef TTFAKE_PIMPL
#error "TTFAKE_PIMPL must be defined (0 or 1)"
#endif
#ifndef TTFAKE_CB_PER_PHYS
#error "TTFAKE_CB_PER_PHYS must be defined (0 or 1)"
#endif
#ifndef TTFAKE_DFB
#error "TTFAKE_DFB must be defined (0 or 1)"
#endif

#define TTFAKE_HIDDEN __attribute__((visibility("hidden")))

namespace tt::tt_metal {

using DeviceAddr = uint64_t;

enum class BufferType : uint32_t { DRAM = 0, L1 = 1, SYSTEM_MEMORY = 2, L1_SMALL = 3, TRACE = 4 };
enum class TensorMemoryLayout : uint32_t { INTERLEAVED = 0, HEIGHT_SHARDED = 2, WIDTH_SHARDED = 3, BLOCK_SHARDED = 4 };
// Same values as tt-metal: address() asserts status != ALLOCATION_REQUESTED,
// is_allocated() is status == ALLOCATED.
enum class AllocationStatus : uint8_t { ALLOCATION_REQUESTED = 0, ALLOCATED = 1, DEALLOCATED = 2 };
enum class ARCH : int { GRAYSKULL = 1, WORMHOLE_B0 = 2, BLACKHOLE = 3 };

// ---------------------------------------------------------------------------
// Fixed memory map of one fake chip (documented in README.md).
namespace fake {
inline constexpr DeviceAddr DRAM_UNRESERVED_BASE = 0x40;            // 64 B reserved at the bottom
inline constexpr DeviceAddr DRAM_END = 0x40000000;                  // 1 GiB
inline constexpr DeviceAddr TRACE_BASE = 0x40000000;                // trace region sits above DRAM buffers
inline constexpr DeviceAddr TRACE_END = 0x44000000;                 // 64 MiB
inline constexpr DeviceAddr L1_SIZE = 1464 * 1024;                  // 0x16E000, per core
inline constexpr DeviceAddr L1_UNRESERVED_BASE = 0x19000;           // CB / DFB region starts here
inline constexpr DeviceAddr L1_SMALL_SIZE = 64 * 1024;
inline constexpr DeviceAddr L1_SMALL_BASE = L1_SIZE - L1_SMALL_SIZE;  // 0x15E000
inline constexpr DeviceAddr L1_END = L1_SMALL_BASE;                 // L1 buffers: [0x19000, 0x15E000), top-down
inline constexpr DeviceAddr SYSMEM_BASE = 0x0;
inline constexpr DeviceAddr SYSMEM_END = 0x10000000;                // 256 MiB host sysmem
inline constexpr DeviceAddr DRAM_ALIGNMENT = 32;
inline constexpr DeviceAddr L1_ALIGNMENT = 16;

// System buffers every physical Device allocates when it opens (tracked).
inline constexpr DeviceAddr SYS_DRAM_A_SIZE = 1048576;   // released at close WITHOUT track_deallocate
inline constexpr DeviceAddr SYS_DRAM_A_PAGE = 2048;
inline constexpr DeviceAddr SYS_DRAM_B_SIZE = 131072;    // freed by close() with track_deallocate
inline constexpr DeviceAddr SYS_DRAM_B_PAGE = 2048;
inline constexpr DeviceAddr SYS_L1_SIZE = 32768;         // freed by close() with track_deallocate
inline constexpr DeviceAddr SYS_L1_PAGE = 1024;

inline constexpr int FIRST_MESH_ID = 1000;                 // mesh ids never look like chip ids
}  // namespace fake

// ---------------------------------------------------------------------------
struct CoreCoord {
    std::size_t x = 0;
    std::size_t y = 0;
};
struct CoreRange {
    CoreCoord start_coord;
    CoreCoord end_coord;
};
class CoreRangeSet {
public:
    CoreRangeSet();
    explicit CoreRangeSet(const CoreRange& range);
    explicit CoreRangeSet(std::vector<CoreRange> ranges);
    const std::vector<CoreRange>& ranges() const;
    std::size_t num_cores() const;
    std::string str() const;

private:
    std::vector<CoreRange> ranges_;
};

class Allocator;
class Buffer;
class Program;
namespace detail {
class ProgramImpl;
}
namespace distributed {
class MeshDevice;
}

// ---------------------------------------------------------------------------
// IDevice: slot 0/1 dtor, 2 arch, 3 id (vptr+24), 4 build_id, 5 num_hw_cqs,
// 6 is_initialized, then fake-specific slots.
class IDevice {
public:
    virtual ~IDevice();
    virtual ARCH arch() const = 0;
    virtual int id() const = 0;
    virtual uint32_t build_id() const = 0;
    virtual uint8_t num_hw_cqs() const = 0;
    virtual bool is_initialized() const = 0;
    virtual bool close() = 0;
    virtual Allocator* allocator() const = 0;
    virtual std::size_t num_chips() const = 0;
};

class ChipMemory;  // per-chip address spaces (allocator.cpp)

class Allocator {
public:
    // A device allocator spans one chip; a MeshDevice allocator spans all of
    // the mesh's chips and reserves the same address on every one of them.
    explicit Allocator(std::vector<ChipMemory*> chips);
    ~Allocator();
    // Throws std::runtime_error("Out of Memory: ...") when no range fits.
    DeviceAddr allocate(BufferType type, DeviceAddr size, bool bottom_up);
    void deallocate(BufferType type, DeviceAddr address);
    // Lowest start address of a live L1 buffer over all chips, if any.
    std::optional<DeviceAddr> lowest_occupied_l1_address() const;
    std::size_t num_chips() const;

private:
    std::vector<ChipMemory*> chips_;
};

// Returns a fresh, empty per-chip memory map (never freed).
ChipMemory* create_chip_memory(int chip_id);
void clear_chip_memory(ChipMemory* mem);

class Device final : public IDevice {
public:
    explicit Device(int chip_id);
    ~Device() override;
    ARCH arch() const override;
    TTFAKE_HIDDEN int id() const override;            // hidden, as in tt-metal
    TTFAKE_HIDDEN uint32_t build_id() const override;
    TTFAKE_HIDDEN uint8_t num_hw_cqs() const override;
    TTFAKE_HIDDEN bool is_initialized() const override;
    bool close() override;
    Allocator* allocator() const override;
    std::size_t num_chips() const override;

    // Opens the device: marks it initialized and allocates the system buffers.
    void initialize();
    TTFAKE_HIDDEN ChipMemory* memory() const { return memory_; }

private:
    int id_;
    bool initialized_ = false;
    ChipMemory* memory_;
    Allocator* allocator_;
    std::shared_ptr<Buffer> sys_dram_a_;
    std::shared_ptr<Buffer> sys_dram_b_;
    std::shared_ptr<Buffer> sys_l1_;
};

// Device-level API (device.cpp). CreateDevice throws if the chip is already open.
IDevice* CreateDevice(int chip_id);
bool CloseDevice(IDevice* device);

namespace distributed {

class MeshDevice final : public IDevice {
public:
    static MeshDevice* create(int num_chips, int first_chip);
    ~MeshDevice() override;
    ARCH arch() const override;
    int id() const override;  // the mesh id, NOT a chip id
    uint32_t build_id() const override;
    uint8_t num_hw_cqs() const override;
    bool is_initialized() const override;
    bool close() override;
    Allocator* allocator() const override;
    std::size_t num_chips() const override;

    std::vector<IDevice*> get_devices() const;

private:
    MeshDevice(int mesh_id, std::vector<Device*> devices);
    int mesh_id_;
    bool initialized_ = false;
    std::vector<Device*> devices_;
    Allocator* allocator_;
};

}  // namespace distributed

// ---------------------------------------------------------------------------
#if !TTFAKE_PIMPL

// 0.65 - 0.77 layout. Offsets are static_assert'ed in buffer_legacy.cpp.
class Buffer final : public std::enable_shared_from_this<Buffer> {  // +0x00 weak_ptr
public:
    static std::shared_ptr<Buffer> create(
        IDevice* device, DeviceAddr size, DeviceAddr page_size, BufferType buffer_type,
        std::optional<bool> bottom_up = std::nullopt);
    // Pre-allocated address: owns_data = false, never tracked.
    static std::shared_ptr<Buffer> create(
        IDevice* device, DeviceAddr address, DeviceAddr size, DeviceAddr page_size, BufferType buffer_type,
        std::optional<bool> bottom_up = std::nullopt);
    ~Buffer();

    uint32_t address() const;
    DeviceAddr page_size() const;
    uint32_t num_pages() const;
    bool is_allocated() const;
    bool is_dram() const;
    bool is_l1() const;
    bool is_trace() const;
    Allocator* allocator() const;
    void deallocate();

    // Internal accessors: hidden (the legacy library exports none of these).
    TTFAKE_HIDDEN DeviceAddr size() const { return size_; }
    TTFAKE_HIDDEN BufferType buffer_type() const { return buffer_type_; }
    TTFAKE_HIDDEN IDevice* device() const { return device_; }
    TTFAKE_HIDDEN std::size_t unique_id() const { return unique_id_; }
    TTFAKE_HIDDEN bool owns_data() const { return owns_data_; }

    TTFAKE_HIDDEN static void check_layout();

private:
    Buffer(IDevice* device, DeviceAddr size, DeviceAddr page_size, BufferType type, bool bottom_up, bool owns_data);
    void allocate_impl();
    void deallocate_impl();

    IDevice* device_;                                      // +0x10
    DeviceAddr size_;                                      // +0x18
    BufferType buffer_type_;                               // +0x20
    TensorMemoryLayout buffer_layout_;                     // +0x24
    bool bottom_up_;                                       // +0x28
    std::optional<uint64_t> sub_device_manager_id_;        // +0x30 (engaged flag +0x38)
    Allocator* allocator_;                                 // +0x40
    AllocationStatus allocation_status_;                   // +0x48
    bool hooked_allocation_;                               // +0x49
    bool owns_data_;                                       // +0x4A
    DeviceAddr address_;                                   // +0x50
    DeviceAddr page_size_;                                 // +0x58
    std::size_t unique_id_;                                // +0x60
};

#else  // TTFAKE_PIMPL

class BufferImpl {
public:
    // allocate_impl/deallocate_impl live here but report the owning Buffer*.
    void allocate_impl(Buffer& owner);
    void deallocate_impl(Buffer& owner);

    IDevice* device_;                                      // +0x00
    DeviceAddr size_;                                      // +0x08
    BufferType buffer_type_;                               // +0x10
    TensorMemoryLayout buffer_layout_;                     // +0x14
    bool bottom_up_;                                       // +0x18
    std::optional<uint64_t> sub_device_manager_id_;        // +0x20 (engaged flag +0x28)
    Allocator* allocator_;                                 // +0x30
    AllocationStatus allocation_status_;                   // +0x38
    bool hooked_allocation_;                               // +0x39
    bool owns_data_;                                       // +0x3A
    DeviceAddr address_;                                   // +0x40
    DeviceAddr page_size_;                                 // +0x48
    std::size_t unique_id_;                                // +0x50
};

// 0.81 layout: the Buffer is a thin handle over BufferImpl (+0x10).
class Buffer final : public std::enable_shared_from_this<Buffer> {  // +0x00 weak_ptr
public:
    static std::shared_ptr<Buffer> create(
        IDevice* device, DeviceAddr size, DeviceAddr page_size, BufferType buffer_type,
        std::optional<bool> bottom_up = std::nullopt);
    static std::shared_ptr<Buffer> create(
        IDevice* device, DeviceAddr address, DeviceAddr size, DeviceAddr page_size, BufferType buffer_type,
        std::optional<bool> bottom_up = std::nullopt);
    ~Buffer();

    uint32_t address() const;
    DeviceAddr size() const;
    BufferType buffer_type() const;
    IDevice* device() const;
    DeviceAddr page_size() const;
    uint32_t num_pages() const;
    std::size_t unique_id() const;
    bool is_allocated() const;
    bool is_dram() const;
    bool is_l1() const;
    bool is_trace() const;
    BufferImpl* impl() const;
    Allocator* allocator() const;
    void deallocate();

    TTFAKE_HIDDEN bool owns_data() const { return impl_->owns_data_; }
    TTFAKE_HIDDEN static void check_layout();

private:
    explicit Buffer(BufferImpl* impl);
    BufferImpl* impl_;                                     // +0x10
};

#endif  // TTFAKE_PIMPL

// DeallocateBuffer(buffer): frees the device memory now (tracked if owning).
void DeallocateBuffer(Buffer& buffer);

namespace distributed {

// Replicated/sharded MeshBuffer: one backing Buffer allocated on the MeshDevice
// (device = MeshDevice*, size = per-device size) plus untracked per-device
// Buffers created at the backing address. Per-core (HYBRID, 0.81 only):
// owning Buffers per physical device, no backing buffer.
class MeshBuffer {
public:
    static std::shared_ptr<MeshBuffer> create(
        MeshDevice* mesh_device, DeviceAddr per_device_size, DeviceAddr page_size, BufferType buffer_type);
#if TTFAKE_PIMPL
    static std::shared_ptr<MeshBuffer> create_per_core(
        MeshDevice* mesh_device, DeviceAddr per_device_size, DeviceAddr page_size, BufferType buffer_type);
#endif
    ~MeshBuffer();
    void deallocate();
    bool is_per_core() const;
    MeshDevice* device() const;
    Buffer* get_backing_buffer() const;  // nullptr for per-core mesh buffers
    Buffer* get_device_buffer(std::size_t index) const;
    std::size_t num_device_buffers() const;
    uint32_t address() const;

private:
    MeshBuffer() = default;
    MeshDevice* mesh_device_ = nullptr;
    bool per_core_ = false;
    std::shared_ptr<Buffer> backing_buffer_;
    std::vector<std::shared_ptr<Buffer>> device_buffers_;
};

}  // namespace distributed

// ---------------------------------------------------------------------------
class IGraphHooks {
public:
    virtual ~IGraphHooks();
    virtual bool hook_allocate(const Buffer* buffer) = 0;
    virtual bool hook_deallocate(Buffer* buffer) = 0;
};

// Counters kept by the fake's own tracker (stand-in for tt-metal's own graph
// processors); lets tests prove that an interposer chained to the original.
enum GraphTrackerCounter : int {
    GTC_TRACK_ALLOCATE = 0,
    GTC_TRACK_DEALLOCATE = 1,
    GTC_HOOK_ALLOCATE = 2,         // calls
    GTC_HOOK_ALLOCATE_TRUE = 3,    // calls that returned true
    GTC_HOOK_DEALLOCATE = 4,
    GTC_HOOK_DEALLOCATE_TRUE = 5,
    GTC_TRACK_ALLOCATE_CB = 6,
    GTC_TRACK_DEALLOCATE_CB = 7,
    GTC_TRACK_ALLOCATE_BYTES = 8,  // sum of Buffer sizes seen by track_allocate
    GTC_TRACK_DEALLOCATE_BYTES = 9,
    GTC_TRACK_ALLOCATE_CB_BYTES = 10,
    GTC_COUNT = 11
};

class GraphTracker {
public:
    static GraphTracker& instance();

    void track_allocate(const Buffer* buffer);
    void track_deallocate(Buffer* buffer);
    void track_allocate_cb(
        const CoreRangeSet& core_range_set, uint64_t addr, uint64_t size, bool is_globally_allocated,
        const IDevice* device);
    void track_deallocate_cb(const IDevice* device);
#if TTFAKE_DFB
    // Exported like 0.77+; nothing calls it.
    void track_allocate_dataflow_buffer(
        const CoreRangeSet& core_range_set, uint64_t addr, uint64_t size, bool is_globally_allocated,
        const IDevice* device);
#endif
    bool hook_allocate(const Buffer* buffer);
    bool hook_deallocate(Buffer* buffer);

    // Throws if a hook is already installed (like tt-metal's add_hook).
    void add_hook(const std::shared_ptr<IGraphHooks>& hook);
    void clear_hook();
    bool is_enabled() const;

    uint64_t get_counter(int which) const;

private:
    GraphTracker();
    struct State;
    State* state_;
};

// ---------------------------------------------------------------------------
struct CircularBufferConfig {
    uint64_t total_size = 0;
    std::optional<uint32_t> globally_allocated_address;  // set => globally allocated CB
};

namespace detail {

struct CircularBufferEntry {
    CoreRangeSet core_ranges;
    CircularBufferConfig config;
    uint64_t address = 0;
};

class ProgramImpl {
public:
    ProgramImpl();
    ~ProgramImpl();

    uint64_t get_id() const;
    std::size_t add_circular_buffer(const CoreRangeSet& core_ranges, const CircularBufferConfig& config);
    std::size_t num_circular_buffers() const;
    void allocate_circular_buffers(const IDevice* device);
#if TTFAKE_CB_PER_PHYS
    void deallocate_circular_buffers();
#endif
    void validate_circular_buffer_region(const IDevice* device);
#if TTFAKE_DFB
    std::size_t add_dataflow_buffer(const CoreRangeSet& core_ranges, uint64_t size);
    std::size_t num_dataflow_buffers() const;
    void allocate_dataflow_buffers(const IDevice* device);

    // One per core range of the program's DFBs: the L1 regions placed there.
    // Like tt-metal 0.71+, `mark_address` is exported and called through the
    // PLT, and only from allocate_dataflow_buffers.
    struct CircularBufferAllocator {
        CoreRange core_range;
        std::vector<std::pair<uint64_t, uint64_t>> l1_regions;
        void mark_address(uint64_t address, uint64_t size, uint64_t base_address);
        uint64_t region_end(uint64_t base_address) const;
    };
#endif

private:
    uint64_t id_;
    std::vector<CircularBufferEntry> circular_buffers_;
    bool cb_addresses_computed_ = false;
    uint64_t cb_region_end_ = 0;
    std::vector<const IDevice*> cb_devices_;  // devices the CBs were tracked on
#if TTFAKE_DFB
    struct DataflowBufferEntry {
        CoreRangeSet core_ranges;
        uint64_t size = 0;
        uint64_t address = 0;
    };
    std::vector<DataflowBufferEntry> dataflow_buffers_;
    std::vector<CircularBufferAllocator> dfb_allocators_;
    bool dfb_allocation_needed_ = true;
#endif
};

}  // namespace detail

class Program {
public:
    Program();
    ~Program();
    Program(const Program&) = delete;
    Program& operator=(const Program&) = delete;
    detail::ProgramImpl& impl();

private:
    detail::ProgramImpl* pimpl_;
};

// Adds a CB over the full 8x8 worker grid. Returns the CB index.
std::size_t CreateCircularBuffer(Program& program, const CoreRangeSet& core_ranges, const CircularBufferConfig& config);
#if TTFAKE_DFB
std::size_t CreateDataflowBuffer(Program& program, const CoreRangeSet& core_ranges, uint64_t size);
#endif
// "Runs" the program: allocates its CBs (and DFBs) on device (Device or MeshDevice).
void EnqueueProgram(IDevice* device, Program& program);

const char* fake_version();
const char* fake_variant();

}  // namespace tt::tt_metal
