// Program (public handle) and the host API that drives ProgramImpl. Kept
// apart from program_impl.cpp so that ~Program -> ~ProgramImpl (D1) and
// EnqueueProgram -> allocate_circular_buffers go through the PLT.
#include <sstream>

#include "tt_metal_fake.hpp"

namespace tt::tt_metal {

CoreRangeSet::CoreRangeSet() = default;
CoreRangeSet::CoreRangeSet(const CoreRange& range) : ranges_{range} {}
CoreRangeSet::CoreRangeSet(std::vector<CoreRange> ranges) : ranges_(std::move(ranges)) {}
const std::vector<CoreRange>& CoreRangeSet::ranges() const { return ranges_; }
std::size_t CoreRangeSet::num_cores() const {
    std::size_t n = 0;
    for (const auto& r : ranges_) n += (r.end_coord.x - r.start_coord.x + 1) * (r.end_coord.y - r.start_coord.y + 1);
    return n;
}
std::string CoreRangeSet::str() const {
    std::ostringstream os;
    os << "{";
    for (std::size_t i = 0; i < ranges_.size(); ++i) {
        const auto& r = ranges_[i];
        if (i) os << ", ";
        os << "[(x=" << r.start_coord.x << ",y=" << r.start_coord.y << ") - (x=" << r.end_coord.x
           << ",y=" << r.end_coord.y << ")]";
    }
    os << "}";
    return os.str();
}

Program::Program() : pimpl_(new detail::ProgramImpl()) {}
Program::~Program() { delete pimpl_; }  // calls ProgramImpl::~ProgramImpl() (D1) through the PLT
detail::ProgramImpl& Program::impl() { return *pimpl_; }

std::size_t CreateCircularBuffer(Program& program, const CoreRangeSet& core_ranges, const CircularBufferConfig& config) {
    return program.impl().add_circular_buffer(core_ranges, config);
}

#if TTFAKE_DFB
std::size_t CreateDataflowBuffer(Program& program, const CoreRangeSet& core_ranges, uint64_t size) {
    return program.impl().add_dataflow_buffer(core_ranges, size);
}
#endif

void EnqueueProgram(IDevice* device, Program& program) {
    if (device == nullptr) throw std::runtime_error("EnqueueProgram: device is null");
    if (!device->is_initialized()) throw std::runtime_error("EnqueueProgram: device is not initialized");
    program.impl().allocate_circular_buffers(device);
#if TTFAKE_DFB
    program.impl().allocate_dataflow_buffers(device);
#endif
}

}  // namespace tt::tt_metal
