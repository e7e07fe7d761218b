// Device: one physical chip. Opening allocates the system buffers through the
// normal (tracked) Buffer path; close() frees two of them (tracked), marks the
// device uninitialized and then releases everything else without tracking.
#include <map>
#include <mutex>
#include <string>

#include "tt_metal_fake.hpp"

namespace tt::tt_metal {

namespace {
std::mutex& registry_mutex() {
    static std::mutex* m = new std::mutex();
    return *m;
}
std::map<int, Device*>& open_devices() {
    static auto* m = new std::map<int, Device*>();
    return *m;
}
}  // namespace

IDevice::~IDevice() = default;

Device::Device(int chip_id) : id_(chip_id), memory_(create_chip_memory(chip_id)) {
    allocator_ = new Allocator({memory_});
}

// Devices are never deleted by the C API (buffers may outlive close()).
Device::~Device() { delete allocator_; }

ARCH Device::arch() const { return ARCH::WORMHOLE_B0; }
int Device::id() const { return id_; }
uint32_t Device::build_id() const { return 0; }
uint8_t Device::num_hw_cqs() const { return 1; }
bool Device::is_initialized() const { return initialized_; }
Allocator* Device::allocator() const { return allocator_; }
std::size_t Device::num_chips() const { return 1; }

void Device::initialize() {
    initialized_ = true;
    // System buffers, in this order (all tracked, device = this Device*):
    sys_dram_a_ = Buffer::create(this, fake::SYS_DRAM_A_SIZE, fake::SYS_DRAM_A_PAGE, BufferType::DRAM);
    sys_dram_b_ = Buffer::create(this, fake::SYS_DRAM_B_SIZE, fake::SYS_DRAM_B_PAGE, BufferType::DRAM);
    sys_l1_ = Buffer::create(this, fake::SYS_L1_SIZE, fake::SYS_L1_PAGE, BufferType::L1);
}

bool Device::close() {
    if (!initialized_) return false;
    // 1. Freed normally while the device is still initialized: tracked.
    sys_l1_->deallocate();
    sys_dram_b_->deallocate();
    // 2. The device stops being initialized ...
    initialized_ = false;
    // 3. ... so this one (and every user buffer still alive) is released
    //    without track_deallocate.
    sys_dram_a_->deallocate();
    sys_l1_.reset();
    sys_dram_b_.reset();
    sys_dram_a_.reset();
    clear_chip_memory(memory_);
    {
        std::lock_guard<std::mutex> lock(registry_mutex());
        auto it = open_devices().find(id_);
        if (it != open_devices().end() && it->second == this) open_devices().erase(it);
    }
    return true;
}

IDevice* CreateDevice(int chip_id) {
    if (chip_id < 0) throw std::runtime_error("CreateDevice: invalid chip id " + std::to_string(chip_id));
    Device* dev = nullptr;
    {
        std::lock_guard<std::mutex> lock(registry_mutex());
        if (open_devices().count(chip_id)) {
            throw std::runtime_error("CreateDevice: chip " + std::to_string(chip_id) + " is already open");
        }
        dev = new Device(chip_id);
        open_devices()[chip_id] = dev;
    }
    dev->initialize();
    return dev;
}

bool CloseDevice(IDevice* device) { return device->close(); }

}  // namespace tt::tt_metal
