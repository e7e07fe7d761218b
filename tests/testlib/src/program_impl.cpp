// detail::ProgramImpl: circular buffers (and 0.81 dataflow buffers).
//
// CB region: every program places its local CBs from the chip's L1 unreserved
// base upwards, so CBs of different programs overlap by design. Globally
// allocated CBs alias an existing L1 Buffer and take no region space.
//
// 0.65/0.68 (TTFAKE_CB_PER_PHYS=0): track_allocate_cb once per CB with the
//   device passed in (may be a MeshDevice); nothing is reported when the CBs
//   die (in ~ProgramImpl); track_deallocate_cb is never called.
// 0.71+ (TTFAKE_CB_PER_PHYS=1): on a MeshDevice, once per CB per physical
//   device; ~ProgramImpl -> deallocate_circular_buffers() ->
//   track_deallocate_cb(dev) once per device the CBs were tracked on.
#include <algorithm>
#include <atomic>
#include <sstream>

#include "tt_metal_fake.hpp"

namespace tt::tt_metal::detail {

namespace {
std::atomic<uint64_t> next_program_id{0};

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

std::vector<const IDevice*> physical_devices(const IDevice* device) {
    std::vector<const IDevice*> out;
    if (const auto* mesh = dynamic_cast<const distributed::MeshDevice*>(device)) {
        for (IDevice* d : mesh->get_devices()) out.push_back(d);
    } else {
        out.push_back(device);
    }
    return out;
}

bool contains(const std::vector<const IDevice*>& v, const IDevice* d) {
    return std::find(v.begin(), v.end(), d) != v.end();
}
}  // namespace

ProgramImpl::ProgramImpl() : id_(next_program_id.fetch_add(1)) {}

ProgramImpl::~ProgramImpl() {
#if TTFAKE_CB_PER_PHYS
    this->deallocate_circular_buffers();
#endif
    // 0.65/0.68: the CBs simply end here; no tracker call.
}

uint64_t ProgramImpl::get_id() const { return id_; }

std::size_t ProgramImpl::add_circular_buffer(const CoreRangeSet& core_ranges, const CircularBufferConfig& config) {
    if (config.total_size == 0) throw std::runtime_error("Circular buffer total size must be greater than 0");
    if (cb_addresses_computed_) {
        throw std::runtime_error("ttfake: cannot add a circular buffer after the program's CBs were allocated");
    }
#if TTFAKE_DFB
    if (!dataflow_buffers_.empty()) {
        throw std::runtime_error(
            "Cannot use both circular buffers and dataflow buffers on the same core. local_cb_mask: 0, num_dfbs: " +
            std::to_string(dataflow_buffers_.size()));
    }
#endif
    circular_buffers_.push_back(CircularBufferEntry{core_ranges, config, 0});
    return circular_buffers_.size() - 1;
}

std::size_t ProgramImpl::num_circular_buffers() const { return circular_buffers_.size(); }

void ProgramImpl::allocate_circular_buffers(const IDevice* device) {
    if (circular_buffers_.empty()) return;

    if (!cb_addresses_computed_) {
        uint64_t addr = fake::L1_UNRESERVED_BASE;
        for (auto& cb : circular_buffers_) {
            if (cb.config.globally_allocated_address) {
                cb.address = *cb.config.globally_allocated_address;
            } else {
                cb.address = addr;
                addr += align_up(cb.config.total_size, fake::L1_ALIGNMENT);
            }
        }
        if (addr > fake::L1_SIZE) {
            std::ostringstream os;
            os << "Statically allocated circular buffers on core range "
               << circular_buffers_.front().core_ranges.str() << " grow to " << addr
               << " B which is beyond max L1 size of " << fake::L1_SIZE << " B";
            throw std::runtime_error(os.str());
        }
        cb_region_end_ = addr;
        cb_addresses_computed_ = true;
    }

#if TTFAKE_CB_PER_PHYS
    const std::vector<const IDevice*> targets = physical_devices(device);
#else
    const std::vector<const IDevice*> targets{device};
#endif
    for (const IDevice* target : targets) {
        if (contains(cb_devices_, target)) continue;  // already allocated on this device
        for (const auto& cb : circular_buffers_) {
            GraphTracker::instance().track_allocate_cb(
                cb.core_ranges, cb.address, cb.config.total_size, cb.config.globally_allocated_address.has_value(),
                target);
        }
        cb_devices_.push_back(target);
    }

    // Like tt-metal's L1/CB clash check; runs after the CBs were tracked, so
    // the program owns them even when this throws.
    this->validate_circular_buffer_region(device);
}

void ProgramImpl::validate_circular_buffer_region(const IDevice* device) {
    if (cb_region_end_ <= fake::L1_UNRESERVED_BASE) return;  // no local CBs
    for (const IDevice* chip : physical_devices(device)) {
        std::optional<DeviceAddr> lowest = chip->allocator()->lowest_occupied_l1_address();
        if (lowest && cb_region_end_ > *lowest) {
            std::ostringstream os;
            os << "Statically allocated circular buffers in program " << id_ << " clash with L1 buffers on core range "
               << circular_buffers_.front().core_ranges.str() << ". L1 buffer allocated at " << *lowest
               << " and static circular buffer region ends at " << cb_region_end_;
            throw std::runtime_error(os.str());
        }
    }
}

#if TTFAKE_CB_PER_PHYS
void ProgramImpl::deallocate_circular_buffers() {
    if (cb_devices_.empty() || circular_buffers_.empty()) return;
    for (const IDevice* d : cb_devices_) GraphTracker::instance().track_deallocate_cb(d);
    cb_devices_.clear();
}
#endif

#if TTFAKE_DFB
namespace {
bool same_range(const CoreRange& a, const CoreRange& b) {
    return a.start_coord.x == b.start_coord.x && a.start_coord.y == b.start_coord.y && a.end_coord.x == b.end_coord.x &&
           a.end_coord.y == b.end_coord.y;
}
}  // namespace

std::size_t ProgramImpl::add_dataflow_buffer(const CoreRangeSet& core_ranges, uint64_t size) {
    if (size == 0) throw std::runtime_error("Dataflow buffer size must be greater than 0");
    if (!circular_buffers_.empty()) throw std::runtime_error("Cannot add dataflow buffer to a program with circular buffers");
    if (!dfb_allocation_needed_) {
        throw std::runtime_error("ttfake: cannot add a dataflow buffer after the program's DFBs were allocated");
    }
    for (const CoreRange& r : core_ranges.ranges()) {
        bool known = false;
        for (const auto& a : dfb_allocators_) known = known || same_range(a.core_range, r);
        if (!known) dfb_allocators_.push_back(CircularBufferAllocator{r, {}});
    }
    dataflow_buffers_.push_back(DataflowBufferEntry{core_ranges, size, 0});
    return dataflow_buffers_.size() - 1;
}

std::size_t ProgramImpl::num_dataflow_buffers() const { return dataflow_buffers_.size(); }

uint64_t ProgramImpl::CircularBufferAllocator::region_end(uint64_t base_address) const {
    return l1_regions.empty() ? base_address : l1_regions.back().second;
}

// As in tt-metal 0.71+: places every DFB once per program (later calls, for
// other devices, return at once), marking it in the allocator of each of its
// core ranges through the exported `mark_address` -- and calls NO GraphTracker
// function. Then checks the clash with L1 buffers on every physical chip.
void ProgramImpl::allocate_dataflow_buffers(const IDevice* device) {
    if (dataflow_buffers_.empty()) return;
    const uint64_t base = fake::L1_UNRESERVED_BASE;
    if (dfb_allocation_needed_) {
        for (auto& dfb : dataflow_buffers_) {
            uint64_t addr = base;
            for (const CoreRange& r : dfb.core_ranges.ranges()) {
                for (const auto& a : dfb_allocators_) {
                    if (same_range(a.core_range, r)) addr = std::max(addr, a.region_end(base));
                }
            }
            addr = align_up(addr, fake::L1_ALIGNMENT);
            for (const CoreRange& r : dfb.core_ranges.ranges()) {
                for (auto& a : dfb_allocators_) {
                    if (same_range(a.core_range, r)) a.mark_address(addr, dfb.size, base);
                }
            }
            dfb.address = addr;
        }
        dfb_allocation_needed_ = false;
    }
    uint64_t region_end = base;
    for (const auto& a : dfb_allocators_) region_end = std::max(region_end, a.region_end(base));
    if (region_end > fake::L1_SIZE) {
        std::ostringstream os;
        os << "Statically allocated dataflow buffers on core range " << dataflow_buffers_.front().core_ranges.str()
           << " grow to " << region_end << " B which is beyond max L1 size of " << fake::L1_SIZE << " B";
        throw std::runtime_error(os.str());
    }
    for (const IDevice* chip : physical_devices(device)) {
        std::optional<DeviceAddr> lowest = chip->allocator()->lowest_occupied_l1_address();
        if (lowest && region_end > *lowest) {
            std::ostringstream os;
            os << "Statically allocated dataflow buffers in program " << id_ << " clash with L1 buffers on core range "
               << dataflow_buffers_.front().core_ranges.str() << ". L1 buffer allocated at " << *lowest
               << " and static dataflow buffer region ends at " << region_end;
            throw std::runtime_error(os.str());
        }
    }
}
#endif

}  // namespace tt::tt_metal::detail
