/* load_metal LIB [CALLS]: load a real libtt_metal.so the way Python imports ttnn
 * (dlopen RTLD_NOW | RTLD_LOCAL, from any path, under any name) -- no device needed.
 * Under LD_PRELOAD=libttalloc.so that dlopen is what makes the shim resolve its originals
 * and accessors in the library.
 *
 * Then calls GraphTracker::track_deallocate_cb(this, NULL) CALLS times through the
 * library's own entry (dlsym on the handle: what a direct intra-library call reaches). It
 * does nothing without registered graph processors; with the shim's entry patched
 * (TTALLOC_INLINE=all) each call goes through the shim's hook and the trampoline instead,
 * and is recorded.
 *
 * On a pimpl (0.81+) library it then builds one Buffer by hand, laid out as
 * docs/tt-metal-abi.md says (BufferImpl* at +0x10; in the impl: device +0,
 * size +0x8, type +0x10, status +0x38, address +0x40, page size +0x48), reads
 * it with the library's own accessors, and passes it to the GraphTracker
 * track_allocate / track_deallocate found in the global scope: the shim's
 * hooks when preloaded (which forward to the real ones, a no-op without
 * graph processors). Prints one JSON line with what the accessors returned.
 *
 * On a legacy (0.65-0.77) library it does the same with a legacy Buffer: the
 * fields in the Buffer itself (device +0x10, size +0x18, type +0x20, status
 * +0x48, address +0x50, page size +0x58), read back with is_allocated(),
 * address(), page_size(), num_pages() and is_l1()/is_dram(). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TRACK_DEALLOCATE_CB "_ZN2tt8tt_metal12GraphTracker19track_deallocate_cbEPKNS0_7IDeviceE"
#define TRACK_ALLOCATE "_ZN2tt8tt_metal12GraphTracker14track_allocateEPKNS0_6BufferE"
#define TRACK_DEALLOCATE "_ZN2tt8tt_metal12GraphTracker16track_deallocateEPNS0_6BufferE"
#define DEVICE_VTABLE "_ZTVN2tt8tt_metal6DeviceE"

typedef uint64_t (*get_u64)(const void *);
typedef uint32_t (*get_u32)(const void *);
typedef _Bool (*get_bool)(const void *);
typedef void *(*get_ptr)(const void *);
typedef void (*track)(void *, void *);

/* Passes a hand-built Buffer to the GraphTracker track_allocate / track_deallocate found
 * in the global scope (the shim's hooks when preloaded); closes the "buffer" object. */
static void hand_to_tracker(void *tracker, void *buffer) {
    track alloc = (track)dlsym(RTLD_DEFAULT, TRACK_ALLOCATE);
    track dealloc = (track)dlsym(RTLD_DEFAULT, TRACK_DEALLOCATE);
    printf(",\"tracked\":%s}", alloc && dealloc ? "true" : "false");
    if (alloc && dealloc) {
        alloc(tracker, buffer);
        dealloc(tracker, buffer);
    }
}

/* The hand-built pimpl Buffer (see above); prints the accessors' view of it. */
static void pimpl_buffer(void *h, void *tracker) {
    get_u64 size = (get_u64)dlsym(h, "_ZNK2tt8tt_metal6Buffer4sizeEv");
    get_u32 type = (get_u32)dlsym(h, "_ZNK2tt8tt_metal6Buffer11buffer_typeEv");
    get_ptr device = (get_ptr)dlsym(h, "_ZNK2tt8tt_metal6Buffer6deviceEv");
    get_bool allocated = (get_bool)dlsym(h, "_ZNK2tt8tt_metal6Buffer12is_allocatedEv");
    get_u32 address = (get_u32)dlsym(h, "_ZNK2tt8tt_metal6Buffer7addressEv");
    get_u64 page_size = (get_u64)dlsym(h, "_ZNK2tt8tt_metal6Buffer9page_sizeEv");
    char *vtable = (char *)dlsym(h, DEVICE_VTABLE);
    if (!size || !type || !device || !allocated || !address || !page_size || !vtable) return;
    static void *dev[512]; /* a Device: its vptr, then zeros (Device::id() reads 0) */
    static uint64_t impl[32], buffer[8];
    dev[0] = vtable + 16;
    buffer[2] = (uint64_t)(uintptr_t)impl;
    impl[0] = (uint64_t)(uintptr_t)dev;
    impl[1] = 3u << 20;                      /* size */
    impl[2] = 1;                             /* type: L1 */
    impl[7] = 1;                             /* status: allocated */
    impl[8] = 0x12340;                       /* address (u32) */
    impl[9] = 2048;                          /* page size */
    printf(",\"buffer\":{\"size\":%llu,\"type\":%u,\"device_ok\":%s,\"allocated\":%s,\"address\":%u,\"page_size\":%llu",
           (unsigned long long)size(buffer), type(buffer), device(buffer) == (void *)dev ? "true" : "false",
           allocated(buffer) ? "true" : "false", address(buffer), (unsigned long long)page_size(buffer));
    hand_to_tracker(tracker, buffer);
}

/* The hand-built legacy Buffer (see above); prints the accessors' view of it. */
static void legacy_buffer(void *h, void *tracker) {
    get_u32 num_pages = (get_u32)dlsym(h, "_ZNK2tt8tt_metal6Buffer9num_pagesEv");
    get_bool is_l1 = (get_bool)dlsym(h, "_ZNK2tt8tt_metal6Buffer5is_l1Ev");
    get_bool is_dram = (get_bool)dlsym(h, "_ZNK2tt8tt_metal6Buffer7is_dramEv");
    get_bool allocated = (get_bool)dlsym(h, "_ZNK2tt8tt_metal6Buffer12is_allocatedEv");
    get_u32 address = (get_u32)dlsym(h, "_ZNK2tt8tt_metal6Buffer7addressEv");
    get_u64 page_size = (get_u64)dlsym(h, "_ZNK2tt8tt_metal6Buffer9page_sizeEv");
    char *vtable = (char *)dlsym(h, DEVICE_VTABLE);
    if (!num_pages || !is_l1 || !is_dram || !allocated || !address || !page_size || !vtable) return;
    static void *dev[512]; /* a Device: its vptr, then zeros (Device::id() reads 0) */
    static uint64_t buffer[32];
    dev[0] = vtable + 16;
    buffer[2] = (uint64_t)(uintptr_t)dev;
    buffer[3] = 5u << 20;                    /* size */
    buffer[4] = 1;                           /* type: L1 */
    buffer[9] = 1;                           /* status: allocated */
    buffer[10] = 0x23450;                    /* address (u32) */
    buffer[11] = 4096;                       /* page size */
    unsigned type = is_l1(buffer) ? 1 : is_dram(buffer) ? 0 : 99;
    /* No device() accessor before 0.81: the trace's chip 0 shows the shim read +0x10. */
    printf(",\"buffer\":{\"size\":%llu,\"type\":%u,\"allocated\":%s,\"address\":%u,\"page_size\":%llu",
           (unsigned long long)num_pages(buffer) * (unsigned long long)page_size(buffer), type,
           allocated(buffer) ? "true" : "false", address(buffer), (unsigned long long)page_size(buffer));
    hand_to_tracker(tracker, buffer);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: load_metal LIB [CALLS]\n");
        return 2;
    }
    int calls = argc > 2 ? atoi(argv[2]) : 0;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "load_metal: dlopen: %s\n", dlerror());
        return 1;
    }
    void (*cb_free)(void *, const void *) = (void (*)(void *, const void *))dlsym(h, TRACK_DEALLOCATE_CB);
    if (calls > 0 && !cb_free) {
        fprintf(stderr, "load_metal: %s not found\n", TRACK_DEALLOCATE_CB);
        return 1;
    }
    /* A stand-in GraphTracker: before 0.74 the processors vector is its first member
     * (begin == end == NULL: empty); later releases keep processors thread_local. */
    static void *tracker[16];
    for (int i = 0; i < calls; i++) cb_free(tracker, NULL);
    printf("{\"loaded\":\"%s\",\"calls\":%d", argv[1], calls);
    if (dlsym(h, "_ZNK2tt8tt_metal6Buffer4sizeEv"))
        pimpl_buffer(h, tracker);
    else
        legacy_buffer(h, tracker);
    printf("}\n");
    return 0;
}
