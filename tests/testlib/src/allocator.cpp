// Per-(chip, buffer type) first-fit allocator with address reuse.
#include <algorithm>
#include <map>
#include <mutex>
#include <sstream>

#include "tt_metal_fake.hpp"

namespace tt::tt_metal {

namespace {

std::mutex& alloc_mutex() {
    static std::mutex* m = new std::mutex();  // never destroyed (safe at exit / after fork)
    return *m;
}

DeviceAddr align_up(DeviceAddr v, DeviceAddr a) { return (v + a - 1) / a * a; }

const char* type_name(BufferType t) {
    switch (t) {
        case BufferType::DRAM: return "DRAM";
        case BufferType::L1: return "L1";
        case BufferType::SYSTEM_MEMORY: return "SYSTEM_MEMORY";
        case BufferType::L1_SMALL: return "L1_SMALL";
        case BufferType::TRACE: return "TRACE";
    }
    return "UNKNOWN";
}

// One contiguous address range [base, end) with first-fit placement.
struct BankManager {
    DeviceAddr base = 0;
    DeviceAddr end = 0;
    DeviceAddr alignment = 32;
    bool top_down = false;
    std::map<DeviceAddr, DeviceAddr> allocated;  // start -> aligned size

    bool is_free(DeviceAddr a, DeviceAddr size) const {
        if (a < base || a + size > end || a + size < a) return false;
        auto it = allocated.upper_bound(a);
        if (it != allocated.end() && it->first < a + size) return false;
        if (it != allocated.begin()) {
            --it;
            if (it->first + it->second > a) return false;
        }
        return true;
    }
    // Free gaps, ascending.
    std::vector<std::pair<DeviceAddr, DeviceAddr>> gaps() const {
        std::vector<std::pair<DeviceAddr, DeviceAddr>> out;
        DeviceAddr cur = base;
        for (const auto& [a, s] : allocated) {
            if (a > cur) out.emplace_back(cur, a);
            cur = std::max(cur, a + s);
        }
        if (cur < end) out.emplace_back(cur, end);
        return out;
    }
    DeviceAddr allocated_bytes() const {
        DeviceAddr t = 0;
        for (const auto& kv : allocated) t += kv.second;
        return t;
    }
    DeviceAddr largest_free() const {
        DeviceAddr l = 0;
        for (const auto& g : gaps()) l = std::max(l, g.second - g.first);
        return l;
    }
};

}  // namespace

class ChipMemory {
public:
    explicit ChipMemory(int chip) : chip_id(chip) { reset(); }
    void reset() {
        dram = BankManager{fake::DRAM_UNRESERVED_BASE, fake::DRAM_END, fake::DRAM_ALIGNMENT, false, {}};
        l1 = BankManager{fake::L1_UNRESERVED_BASE, fake::L1_END, fake::L1_ALIGNMENT, true, {}};
        l1_small = BankManager{fake::L1_SMALL_BASE, fake::L1_SIZE, fake::L1_ALIGNMENT, false, {}};
        trace = BankManager{fake::TRACE_BASE, fake::TRACE_END, fake::DRAM_ALIGNMENT, false, {}};
        sysmem = BankManager{fake::SYSMEM_BASE, fake::SYSMEM_END, fake::DRAM_ALIGNMENT, false, {}};
    }
    BankManager& bank(BufferType t) {
        switch (t) {
            case BufferType::DRAM: return dram;
            case BufferType::L1: return l1;
            case BufferType::L1_SMALL: return l1_small;
            case BufferType::TRACE: return trace;
            case BufferType::SYSTEM_MEMORY: return sysmem;
        }
        throw std::runtime_error("invalid BufferType");
    }
    int chip_id;
    BankManager dram, l1, l1_small, trace, sysmem;
};

ChipMemory* create_chip_memory(int chip_id) { return new ChipMemory(chip_id); }

void clear_chip_memory(ChipMemory* mem) {
    std::lock_guard<std::mutex> lock(alloc_mutex());
    mem->reset();
}

Allocator::Allocator(std::vector<ChipMemory*> chips) : chips_(std::move(chips)) {}
Allocator::~Allocator() = default;

std::size_t Allocator::num_chips() const { return chips_.size(); }

DeviceAddr Allocator::allocate(BufferType type, DeviceAddr size, bool bottom_up) {
    std::lock_guard<std::mutex> lock(alloc_mutex());
    if (chips_.empty()) throw std::runtime_error("Allocator has no chips");
    const BankManager& first = chips_.front()->bank(type);
    const DeviceAddr aligned = align_up(size == 0 ? 1 : size, first.alignment);
    const bool top_down = first.top_down && !bottom_up;

    // Candidate addresses: the lowest (or highest) fitting start of every gap
    // on every chip. The first candidate that is free on all chips wins, so a
    // mesh allocation gets the same address on every chip of the mesh.
    std::vector<DeviceAddr> candidates;
    for (ChipMemory* chip : chips_) {
        for (const auto& [gs, ge] : chip->bank(type).gaps()) {
            if (ge - gs < aligned) continue;
            if (top_down) {
                candidates.push_back((ge - aligned) / first.alignment * first.alignment);
            } else {
                candidates.push_back(gs);
            }
        }
    }
    if (top_down) {
        std::sort(candidates.begin(), candidates.end(), std::greater<DeviceAddr>());
    } else {
        std::sort(candidates.begin(), candidates.end());
    }
    for (DeviceAddr c : candidates) {
        bool ok = true;
        for (ChipMemory* chip : chips_) {
            if (!chip->bank(type).is_free(c, aligned)) {
                ok = false;
                break;
            }
        }
        if (ok) {
            for (ChipMemory* chip : chips_) chip->bank(type).allocated.emplace(c, aligned);
            return c;
        }
    }
    const BankManager& b = chips_.front()->bank(type);
    std::ostringstream os;
    os << "Out of Memory: Not enough space to allocate " << size << " B " << type_name(type)
       << " buffer across 1 banks, where each bank needs to store " << aligned << " B, but bank size is "
       << (b.end - b.base) << " B (allocated: " << b.allocated_bytes() << " B, free: "
       << (b.end - b.base - b.allocated_bytes()) << " B, largest free block: " << b.largest_free() << " B)";
    throw std::runtime_error(os.str());
}

void Allocator::deallocate(BufferType type, DeviceAddr address) {
    std::lock_guard<std::mutex> lock(alloc_mutex());
    for (ChipMemory* chip : chips_) chip->bank(type).allocated.erase(address);
}

std::optional<DeviceAddr> Allocator::lowest_occupied_l1_address() const {
    std::lock_guard<std::mutex> lock(alloc_mutex());
    std::optional<DeviceAddr> lowest;
    for (ChipMemory* chip : chips_) {
        const auto& m = chip->l1.allocated;
        if (!m.empty() && (!lowest || m.begin()->first < *lowest)) lowest = m.begin()->first;
    }
    return lowest;
}

}  // namespace tt::tt_metal
