// MeshBuffer: one tracked backing Buffer on the MeshDevice + untracked
// per-device Buffers at the same address; or (0.81 per-core / HYBRID) one
// owning, tracked Buffer per physical device.
#include "tt_metal_fake.hpp"

namespace tt::tt_metal::distributed {

std::shared_ptr<MeshBuffer> MeshBuffer::create(
    MeshDevice* mesh_device, DeviceAddr per_device_size, DeviceAddr page_size, BufferType buffer_type) {
    if (mesh_device == nullptr) throw std::runtime_error("MeshBuffer::create: mesh device is null");
    std::shared_ptr<MeshBuffer> mb(new MeshBuffer());
    mb->mesh_device_ = mesh_device;
    // Backing buffer: device() is the MeshDevice, size is the per-device size.
    mb->backing_buffer_ = Buffer::create(mesh_device, per_device_size, page_size, buffer_type);
    const DeviceAddr address = mb->backing_buffer_->address();
    for (IDevice* dev : mesh_device->get_devices()) {
        // Pre-allocated-address buffers: never tracked.
        mb->device_buffers_.push_back(Buffer::create(dev, address, per_device_size, page_size, buffer_type));
    }
    return mb;
}

#if TTFAKE_PIMPL
std::shared_ptr<MeshBuffer> MeshBuffer::create_per_core(
    MeshDevice* mesh_device, DeviceAddr per_device_size, DeviceAddr page_size, BufferType buffer_type) {
    if (mesh_device == nullptr) throw std::runtime_error("MeshBuffer::create_per_core: mesh device is null");
    std::shared_ptr<MeshBuffer> mb(new MeshBuffer());
    mb->mesh_device_ = mesh_device;
    mb->per_core_ = true;
    // Owning buffers per physical device, each tracked with its Device*.
    // On OOM the already created ones are released (tracked) by ~MeshBuffer.
    for (IDevice* dev : mesh_device->get_devices()) {
        mb->device_buffers_.push_back(Buffer::create(dev, per_device_size, page_size, buffer_type));
    }
    return mb;
}
#endif

MeshBuffer::~MeshBuffer() { this->deallocate(); }

void MeshBuffer::deallocate() {
    // Per-device views first (untracked), then the backing buffer (one
    // track_deallocate with the same Buffer* that was tracked).
    for (auto& b : device_buffers_) {
        if (b) b->deallocate();
    }
    if (backing_buffer_) backing_buffer_->deallocate();
}

bool MeshBuffer::is_per_core() const { return per_core_; }
MeshDevice* MeshBuffer::device() const { return mesh_device_; }
Buffer* MeshBuffer::get_backing_buffer() const { return backing_buffer_.get(); }
Buffer* MeshBuffer::get_device_buffer(std::size_t index) const {
    return index < device_buffers_.size() ? device_buffers_[index].get() : nullptr;
}
std::size_t MeshBuffer::num_device_buffers() const { return device_buffers_.size(); }
uint32_t MeshBuffer::address() const {
    if (backing_buffer_) return backing_buffer_->address();
    if (!device_buffers_.empty()) return device_buffers_.front()->address();
    return 0;
}

}  // namespace tt::tt_metal::distributed
