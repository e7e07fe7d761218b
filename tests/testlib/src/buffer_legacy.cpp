// 0.65 - 0.77 Buffer: all state lives in the Buffer itself.
#include <atomic>
#include <string>

#include "tt_metal_fake.hpp"

#if TTFAKE_PIMPL
#error "buffer_legacy.cpp is for the legacy layout only"
#endif

namespace tt::tt_metal {

namespace {
std::atomic<std::size_t> next_unique_id{0};

void validate_args(IDevice* device, DeviceAddr size, DeviceAddr page_size, BufferType type) {
    if (device == nullptr) throw std::runtime_error("Buffer::create: device is null");
    if (static_cast<uint32_t>(type) > static_cast<uint32_t>(BufferType::TRACE)) {
        throw std::runtime_error("Buffer::create: invalid buffer type " + std::to_string(static_cast<uint32_t>(type)));
    }
    if (size != 0 && (page_size == 0 || size % page_size != 0)) {
        throw std::runtime_error(
            "Buffer size " + std::to_string(size) + " must be divisible by page size " + std::to_string(page_size));
    }
    if (!device->is_initialized()) throw std::runtime_error("Buffer::create: device is not initialized");
}
}  // namespace

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
void Buffer::check_layout() {
    static_assert(sizeof(std::enable_shared_from_this<Buffer>) == 0x10);
    static_assert(offsetof(Buffer, device_) == 0x10);
    static_assert(offsetof(Buffer, size_) == 0x18);
    static_assert(offsetof(Buffer, buffer_type_) == 0x20);
    static_assert(offsetof(Buffer, buffer_layout_) == 0x24);
    static_assert(offsetof(Buffer, bottom_up_) == 0x28);
    static_assert(offsetof(Buffer, sub_device_manager_id_) == 0x30);
    static_assert(offsetof(Buffer, allocator_) == 0x40);
    static_assert(offsetof(Buffer, allocation_status_) == 0x48);
    static_assert(offsetof(Buffer, hooked_allocation_) == 0x49);
    static_assert(offsetof(Buffer, owns_data_) == 0x4A);
    static_assert(offsetof(Buffer, address_) == 0x50);
    static_assert(offsetof(Buffer, page_size_) == 0x58);
    static_assert(offsetof(Buffer, unique_id_) == 0x60);
    static_assert(sizeof(BufferType) == 4);
    static_assert(sizeof(AllocationStatus) == 1);
}
#pragma GCC diagnostic pop

Buffer::Buffer(
    IDevice* device, DeviceAddr size, DeviceAddr page_size, BufferType type, bool bottom_up, bool owns_data) :
    device_(device),
    size_(size),
    buffer_type_(type),
    buffer_layout_(TensorMemoryLayout::INTERLEAVED),
    bottom_up_(bottom_up),
    sub_device_manager_id_(std::nullopt),
    allocator_(device->allocator()),
    allocation_status_(AllocationStatus::ALLOCATION_REQUESTED),
    hooked_allocation_(false),
    owns_data_(owns_data),
    address_(0),
    page_size_(page_size),
    unique_id_(next_unique_id.fetch_add(1)) {}

std::shared_ptr<Buffer> Buffer::create(
    IDevice* device, DeviceAddr size, DeviceAddr page_size, BufferType buffer_type, std::optional<bool> bottom_up) {
    validate_args(device, size, page_size, buffer_type);
    const bool bu = bottom_up.value_or(buffer_type != BufferType::L1);
    std::shared_ptr<Buffer> buffer(new Buffer(device, size, page_size, buffer_type, bu, /*owns_data=*/true));
    if (size == 0) {
        // Size-0 buffers never reach allocate_impl (and so are never tracked).
        buffer->allocation_status_ = AllocationStatus::ALLOCATED;
        return buffer;
    }
    buffer->allocate_impl();  // may throw (OOM); the Buffer is then destroyed untracked
    return buffer;
}

std::shared_ptr<Buffer> Buffer::create(
    IDevice* device,
    DeviceAddr address,
    DeviceAddr size,
    DeviceAddr page_size,
    BufferType buffer_type,
    std::optional<bool> bottom_up) {
    validate_args(device, size, page_size, buffer_type);
    const bool bu = bottom_up.value_or(buffer_type != BufferType::L1);
    std::shared_ptr<Buffer> buffer(new Buffer(device, size, page_size, buffer_type, bu, /*owns_data=*/false));
    buffer->address_ = address;
    buffer->allocation_status_ = AllocationStatus::ALLOCATED;
    return buffer;
}

Buffer::~Buffer() { this->deallocate(); }

void Buffer::allocate_impl() {
    if (GraphTracker::instance().hook_allocate(this)) {
        address_ = 0;
        hooked_allocation_ = true;
    } else {
        address_ = allocator_->allocate(buffer_type_, size_, bottom_up_);
    }
    allocation_status_ = AllocationStatus::ALLOCATED;
    GraphTracker::instance().track_allocate(this);
}

void Buffer::deallocate_impl() {
    if (allocation_status_ != AllocationStatus::ALLOCATED) return;
    if (device_->is_initialized() && size_ != 0) {
        GraphTracker::instance().track_deallocate(this);
        if (!GraphTracker::instance().hook_deallocate(this) && !hooked_allocation_) {
            allocator_->deallocate(buffer_type_, address_);
        }
    }
    allocation_status_ = AllocationStatus::DEALLOCATED;
}

void Buffer::deallocate() {
    if (!owns_data_) {
        // Pre-allocated-address buffers: neither track function, no allocator.
        if (allocation_status_ == AllocationStatus::ALLOCATED) allocation_status_ = AllocationStatus::DEALLOCATED;
        return;
    }
    this->deallocate_impl();
}

uint32_t Buffer::address() const {
    if (allocation_status_ == AllocationStatus::ALLOCATION_REQUESTED) {
        throw std::runtime_error(
            "TT_FATAL @ buffer.cpp: allocation_status_ != AllocationStatus::ALLOCATION_REQUESTED: "
            "Can only query the address of a buffer that has been allocated");
    }
    return static_cast<uint32_t>(address_);
}

DeviceAddr Buffer::page_size() const { return page_size_; }

uint32_t Buffer::num_pages() const { return page_size_ == 0 ? 0 : static_cast<uint32_t>(size_ / page_size_); }

bool Buffer::is_allocated() const { return allocation_status_ == AllocationStatus::ALLOCATED; }

// Must compile to `testl $0xfffffffb,0x20(%rdi); sete %al; ret` (checked by the Makefile).
bool Buffer::is_dram() const { return buffer_type_ == BufferType::DRAM || buffer_type_ == BufferType::TRACE; }

bool Buffer::is_l1() const { return buffer_type_ == BufferType::L1 || buffer_type_ == BufferType::L1_SMALL; }

bool Buffer::is_trace() const { return buffer_type_ == BufferType::TRACE; }

Allocator* Buffer::allocator() const { return allocator_; }

void DeallocateBuffer(Buffer& buffer) { buffer.deallocate(); }

}  // namespace tt::tt_metal
