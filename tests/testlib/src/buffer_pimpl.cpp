// 0.81 Buffer: a handle whose state lives in BufferImpl (Buffer+0x10).
#include <atomic>
#include <string>

#include "tt_metal_fake.hpp"

#if !TTFAKE_PIMPL
#error "buffer_pimpl.cpp is for the pimpl layout only"
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

BufferImpl* make_impl(
    IDevice* device, DeviceAddr size, DeviceAddr page_size, BufferType type, bool bottom_up, bool owns_data) {
    auto* impl = new BufferImpl();
    impl->device_ = device;
    impl->size_ = size;
    impl->buffer_type_ = type;
    impl->buffer_layout_ = TensorMemoryLayout::INTERLEAVED;
    impl->bottom_up_ = bottom_up;
    impl->sub_device_manager_id_ = std::nullopt;
    impl->allocator_ = device->allocator();
    impl->allocation_status_ = AllocationStatus::ALLOCATION_REQUESTED;
    impl->hooked_allocation_ = false;
    impl->owns_data_ = owns_data;
    impl->address_ = 0;
    impl->page_size_ = page_size;
    impl->unique_id_ = next_unique_id.fetch_add(1);
    return impl;
}
}  // namespace

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
void Buffer::check_layout() {
    static_assert(sizeof(std::enable_shared_from_this<Buffer>) == 0x10);
    static_assert(offsetof(Buffer, impl_) == 0x10);
    static_assert(offsetof(BufferImpl, device_) == 0x00);
    static_assert(offsetof(BufferImpl, size_) == 0x08);
    static_assert(offsetof(BufferImpl, buffer_type_) == 0x10);
    static_assert(offsetof(BufferImpl, buffer_layout_) == 0x14);
    static_assert(offsetof(BufferImpl, bottom_up_) == 0x18);
    static_assert(offsetof(BufferImpl, sub_device_manager_id_) == 0x20);
    static_assert(offsetof(BufferImpl, allocator_) == 0x30);
    static_assert(offsetof(BufferImpl, allocation_status_) == 0x38);
    static_assert(offsetof(BufferImpl, hooked_allocation_) == 0x39);
    static_assert(offsetof(BufferImpl, owns_data_) == 0x3A);
    static_assert(offsetof(BufferImpl, address_) == 0x40);
    static_assert(offsetof(BufferImpl, page_size_) == 0x48);
    static_assert(offsetof(BufferImpl, unique_id_) == 0x50);
    static_assert(sizeof(BufferType) == 4);
    static_assert(sizeof(AllocationStatus) == 1);
}
#pragma GCC diagnostic pop

Buffer::Buffer(BufferImpl* impl) : impl_(impl) {}

std::shared_ptr<Buffer> Buffer::create(
    IDevice* device, DeviceAddr size, DeviceAddr page_size, BufferType buffer_type, std::optional<bool> bottom_up) {
    validate_args(device, size, page_size, buffer_type);
    const bool bu = bottom_up.value_or(buffer_type != BufferType::L1);
    std::shared_ptr<Buffer> buffer(new Buffer(make_impl(device, size, page_size, buffer_type, bu, true)));
    if (size == 0) {
        buffer->impl_->allocation_status_ = AllocationStatus::ALLOCATED;
        return buffer;
    }
    buffer->impl_->allocate_impl(*buffer);  // may throw (OOM)
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
    std::shared_ptr<Buffer> buffer(new Buffer(make_impl(device, size, page_size, buffer_type, bu, false)));
    buffer->impl_->address_ = address;
    buffer->impl_->allocation_status_ = AllocationStatus::ALLOCATED;
    return buffer;
}

Buffer::~Buffer() {
    this->deallocate();
    delete impl_;
}

void BufferImpl::allocate_impl(Buffer& owner) {
    if (GraphTracker::instance().hook_allocate(&owner)) {
        address_ = 0;
        hooked_allocation_ = true;
    } else {
        address_ = allocator_->allocate(buffer_type_, size_, bottom_up_);
    }
    allocation_status_ = AllocationStatus::ALLOCATED;
    GraphTracker::instance().track_allocate(&owner);
}

void BufferImpl::deallocate_impl(Buffer& owner) {
    if (allocation_status_ != AllocationStatus::ALLOCATED) return;
    if (device_->is_initialized() && size_ != 0) {
        GraphTracker::instance().track_deallocate(&owner);
        if (!GraphTracker::instance().hook_deallocate(&owner) && !hooked_allocation_) {
            allocator_->deallocate(buffer_type_, address_);
        }
    }
    allocation_status_ = AllocationStatus::DEALLOCATED;
}

void Buffer::deallocate() {
    if (!impl_->owns_data_) {
        if (impl_->allocation_status_ == AllocationStatus::ALLOCATED) {
            impl_->allocation_status_ = AllocationStatus::DEALLOCATED;
        }
        return;
    }
    impl_->deallocate_impl(*this);
}

uint32_t Buffer::address() const {
    if (impl_->allocation_status_ == AllocationStatus::ALLOCATION_REQUESTED) {
        throw std::runtime_error(
            "TT_FATAL @ buffer.cpp: allocation_status_ != AllocationStatus::ALLOCATION_REQUESTED: "
            "Can only query the address of a buffer that has been allocated");
    }
    return static_cast<uint32_t>(impl_->address_);
}

DeviceAddr Buffer::size() const { return impl_->size_; }
BufferType Buffer::buffer_type() const { return impl_->buffer_type_; }
IDevice* Buffer::device() const { return impl_->device_; }
DeviceAddr Buffer::page_size() const { return impl_->page_size_; }
uint32_t Buffer::num_pages() const {
    return impl_->page_size_ == 0 ? 0 : static_cast<uint32_t>(impl_->size_ / impl_->page_size_);
}
std::size_t Buffer::unique_id() const { return impl_->unique_id_; }
bool Buffer::is_allocated() const { return impl_->allocation_status_ == AllocationStatus::ALLOCATED; }
bool Buffer::is_dram() const {
    return impl_->buffer_type_ == BufferType::DRAM || impl_->buffer_type_ == BufferType::TRACE;
}
bool Buffer::is_l1() const { return impl_->buffer_type_ == BufferType::L1 || impl_->buffer_type_ == BufferType::L1_SMALL; }
bool Buffer::is_trace() const { return impl_->buffer_type_ == BufferType::TRACE; }
BufferImpl* Buffer::impl() const {
    if (impl_ == nullptr) throw std::runtime_error("TT_FATAL @ buffer.cpp: impl_ != nullptr");
    return impl_;
}
Allocator* Buffer::allocator() const { return impl_->allocator_; }

void DeallocateBuffer(Buffer& buffer) { buffer.deallocate(); }

}  // namespace tt::tt_metal
