// MeshDevice: a set of physical Devices plus an allocator that reserves the
// same address on every chip of the mesh. id() is the mesh id (>= 1000), never
// a chip id.
#include <atomic>

#include "tt_metal_fake.hpp"

namespace tt::tt_metal::distributed {

namespace {
std::atomic<int> next_mesh_id{fake::FIRST_MESH_ID};
}

MeshDevice::MeshDevice(int mesh_id, std::vector<Device*> devices) :
    mesh_id_(mesh_id), devices_(std::move(devices)) {
    std::vector<ChipMemory*> chips;
    for (Device* d : devices_) chips.push_back(d->memory());
    allocator_ = new Allocator(std::move(chips));
    initialized_ = true;
}

MeshDevice::~MeshDevice() { delete allocator_; }

MeshDevice* MeshDevice::create(int num_chips, int first_chip) {
    if (num_chips <= 0) throw std::runtime_error("MeshDevice::create: num_chips must be positive");
    std::vector<Device*> devices;
    try {
        for (int i = 0; i < num_chips; ++i) devices.push_back(static_cast<Device*>(CreateDevice(first_chip + i)));
    } catch (...) {
        for (Device* d : devices) d->close();
        throw;
    }
    return new MeshDevice(next_mesh_id.fetch_add(1), std::move(devices));
}

ARCH MeshDevice::arch() const { return ARCH::WORMHOLE_B0; }
int MeshDevice::id() const { return mesh_id_; }
uint32_t MeshDevice::build_id() const { return 0; }
uint8_t MeshDevice::num_hw_cqs() const { return 1; }
bool MeshDevice::is_initialized() const { return initialized_; }
Allocator* MeshDevice::allocator() const { return allocator_; }
std::size_t MeshDevice::num_chips() const { return devices_.size(); }

std::vector<IDevice*> MeshDevice::get_devices() const {
    return std::vector<IDevice*>(devices_.begin(), devices_.end());
}

bool MeshDevice::close() {
    if (!initialized_) return false;
    // Live mesh buffers are released without track_deallocate from here on.
    initialized_ = false;
    for (Device* d : devices_) d->close();  // Device is final: direct call through the PLT
    return true;
}

}  // namespace tt::tt_metal::distributed
