// detail::ProgramImpl::CircularBufferAllocator: its own translation unit so
// that allocate_dataflow_buffers reaches mark_address through the PLT, as in
// the real 0.71.2 / 0.81.1 libraries (one JUMP_SLOT call site each).
#include <stdexcept>

#include "tt_metal_fake.hpp"

namespace tt::tt_metal::detail {

#if TTFAKE_DFB
void ProgramImpl::CircularBufferAllocator::mark_address(uint64_t address, uint64_t size, uint64_t base_address) {
    if (address < base_address) throw std::runtime_error("ttfake: dataflow buffer below the L1 base");
    if (!l1_regions.empty() && address < l1_regions.back().second) {
        throw std::runtime_error("ttfake: dataflow buffer overlaps the previous one in its core range");
    }
    l1_regions.emplace_back(address, address + size);
}
#endif

}  // namespace tt::tt_metal::detail
