// GraphTracker: the functions the ttalloc shim interposes. They live in their
// own translation unit so that every call from buffer/program code goes
// through the PLT (unless linked with -Bsymbolic-functions).
#include <atomic>
#include <mutex>

#include "tt_metal_fake.hpp"

namespace tt::tt_metal {

IGraphHooks::~IGraphHooks() = default;

struct GraphTracker::State {
    std::atomic<uint64_t> counters[GTC_COUNT];
    std::mutex hook_mutex;
    std::shared_ptr<IGraphHooks> hook;  // global: visible from every thread
    State() {
        for (auto& c : counters) c.store(0, std::memory_order_relaxed);
    }
};

namespace {
inline void bump(std::atomic<uint64_t>& c, uint64_t v = 1) { c.fetch_add(v, std::memory_order_relaxed); }

uint64_t buffer_size_of(const Buffer* buffer) {
#if TTFAKE_PIMPL
    return buffer->impl()->size_;
#else
    return buffer->size();
#endif
}
}  // namespace

GraphTracker::GraphTracker() : state_(new State()) {}

GraphTracker& GraphTracker::instance() {
    static GraphTracker* tracker = new GraphTracker();  // never destroyed
    return *tracker;
}

void GraphTracker::track_allocate(const Buffer* buffer) {
    bump(state_->counters[GTC_TRACK_ALLOCATE]);
    bump(state_->counters[GTC_TRACK_ALLOCATE_BYTES], buffer_size_of(buffer));
}

void GraphTracker::track_deallocate(Buffer* buffer) {
    bump(state_->counters[GTC_TRACK_DEALLOCATE]);
    bump(state_->counters[GTC_TRACK_DEALLOCATE_BYTES], buffer_size_of(buffer));
}

void GraphTracker::track_allocate_cb(
    const CoreRangeSet& core_range_set, uint64_t addr, uint64_t size, bool is_globally_allocated,
    const IDevice* device) {
    (void)core_range_set;
    (void)addr;
    (void)is_globally_allocated;
    (void)device;
    bump(state_->counters[GTC_TRACK_ALLOCATE_CB]);
    bump(state_->counters[GTC_TRACK_ALLOCATE_CB_BYTES], size);
}

void GraphTracker::track_deallocate_cb(const IDevice* device) {
    (void)device;
    bump(state_->counters[GTC_TRACK_DEALLOCATE_CB]);
}

#if TTFAKE_DFB
void GraphTracker::track_allocate_dataflow_buffer(
    const CoreRangeSet& core_range_set, uint64_t addr, uint64_t size, bool is_globally_allocated,
    const IDevice* device) {
    // Exported for ABI parity with 0.77+; tt-metal does not call it and neither do we.
    (void)core_range_set;
    (void)addr;
    (void)size;
    (void)is_globally_allocated;
    (void)device;
}
#endif

bool GraphTracker::hook_allocate(const Buffer* buffer) {
    bump(state_->counters[GTC_HOOK_ALLOCATE]);
    std::shared_ptr<IGraphHooks> hook;
    {
        std::lock_guard<std::mutex> lock(state_->hook_mutex);
        hook = state_->hook;
    }
    if (!hook) return false;
    bool r = hook->hook_allocate(buffer);
    if (r) bump(state_->counters[GTC_HOOK_ALLOCATE_TRUE]);
    return r;
}

bool GraphTracker::hook_deallocate(Buffer* buffer) {
    bump(state_->counters[GTC_HOOK_DEALLOCATE]);
    std::shared_ptr<IGraphHooks> hook;
    {
        std::lock_guard<std::mutex> lock(state_->hook_mutex);
        hook = state_->hook;
    }
    if (!hook) return false;
    bool r = hook->hook_deallocate(buffer);
    if (r) bump(state_->counters[GTC_HOOK_DEALLOCATE_TRUE]);
    return r;
}

void GraphTracker::add_hook(const std::shared_ptr<IGraphHooks>& hook) {
    std::lock_guard<std::mutex> lock(state_->hook_mutex);
    if (state_->hook) throw std::runtime_error("GraphTracker::add_hook: a hook is already installed");
    state_->hook = hook;
}

void GraphTracker::clear_hook() {
    std::lock_guard<std::mutex> lock(state_->hook_mutex);
    state_->hook.reset();
}

bool GraphTracker::is_enabled() const {
    std::lock_guard<std::mutex> lock(state_->hook_mutex);
    return state_->hook != nullptr;
}

uint64_t GraphTracker::get_counter(int which) const {
    if (which < 0 || which >= GTC_COUNT) return 0;
    return state_->counters[which].load(std::memory_order_relaxed);
}

const char* fake_version() { return TTFAKE_VERSION; }
const char* fake_variant() { return TTFAKE_VARIANT; }

}  // namespace tt::tt_metal
