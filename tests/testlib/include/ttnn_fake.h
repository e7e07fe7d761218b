/* libttnn_fake.so: C API over the fake libtt_metal.so (like ttnn's _ttnn.so,
 * it calls into libtt_metal's C++ API). Every function catches C++
 * exceptions; on failure it returns NULL / -1 and ttf_last_error() holds the
 * message (thread-local; reset to "" at the start of every fallible call).
 *
 * NOT tt-metal: a faithful stand-in for the ABI the ttalloc shim touches.
 */
#ifndef TTNN_FAKE_H
#define TTNN_FAKE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Buffer types: same values as tt::tt_metal::BufferType. */
enum {
    TTF_DRAM = 0,
    TTF_L1 = 1,
    TTF_SYSTEM_MEMORY = 2,
    TTF_L1_SMALL = 3,
    TTF_TRACE = 4
};

/* Indices for ttf_tracker_counter() (the fake GraphTracker's own counters). */
enum {
    TTF_CNT_TRACK_ALLOCATE = 0,
    TTF_CNT_TRACK_DEALLOCATE = 1,
    TTF_CNT_HOOK_ALLOCATE = 2,
    TTF_CNT_HOOK_ALLOCATE_TRUE = 3,
    TTF_CNT_HOOK_DEALLOCATE = 4,
    TTF_CNT_HOOK_DEALLOCATE_TRUE = 5,
    TTF_CNT_TRACK_ALLOCATE_CB = 6,
    TTF_CNT_TRACK_DEALLOCATE_CB = 7,
    TTF_CNT_TRACK_ALLOCATE_BYTES = 8,
    TTF_CNT_TRACK_DEALLOCATE_BYTES = 9,
    TTF_CNT_TRACK_ALLOCATE_CB_BYTES = 10,
    TTF_CNT_COUNT = 11
};

const char* ttf_version(void);    /* mirrored tt-metal version: "0.65.0", "0.71.2", "0.81.1" */
const char* ttf_variant(void);    /* "v065", "v071", "v081", "v081-symbolic" */
const char* ttf_last_error(void); /* never NULL */
uint64_t ttf_constant(const char* name); /* memory-map constants, 0 if unknown (see README) */

/* Devices. Handles are tt::tt_metal::IDevice* and stay valid after close. */
void* ttf_open_device(int chip);
void* ttf_open_mesh(int n_chips, int first_chip);
int ttf_mesh_devices(void* mesh, void** out, int cap); /* returns #chips (fills min(cap, n)), -1 on error */
int ttf_device_id(void* dev);        /* IDevice::id() via vtable slot 3: chip id, or mesh id (>= 1000) */
int ttf_device_is_mesh(void* dev);   /* 1 / 0 / -1 */
int ttf_close_device(void* dev);     /* 0 closed, 1 already closed, -1 error (also accepts a mesh) */
int ttf_close_mesh(void* mesh);      /* 0 closed, 1 already closed, -1 error */

/* Buffers. dev may be a MeshDevice: that creates a MeshBuffer (backing
 * buffer on the mesh + untracked per-device buffers at the same address). */
void* ttf_buffer_create(void* dev, uint64_t size, uint64_t page_size, int type);
void* ttf_buffer_create_at(void* dev, uint64_t addr, uint64_t size, uint64_t page_size, int type);
void* ttf_mesh_buffer_create_per_core(void* mesh, uint64_t size, uint64_t page_size, int type); /* v081 only */
int64_t ttf_buffer_address(void* buf); /* u32 address, -1 on error */
/* tt::tt_metal::Buffer* behind a handle: index -1 = the tracked buffer (the
 * buffer itself, or a MeshBuffer's backing buffer; NULL for per-core mesh
 * buffers); index i >= 0 = per-device buffer i of a mesh buffer. */
void* ttf_buffer_ptr(void* buf, int index);
int ttf_buffer_num_device_buffers(void* buf);
int ttf_buffer_free(void* buf); /* 0 / -1; the handle is invalid afterwards */

/* NO_DISPATCH graph capture: GraphTracker::hook_allocate returns true (any thread). */
int ttf_begin_capture(void);
int ttf_end_capture(void);

/* Programs. */
void* ttf_program_create(void);
uint64_t ttf_program_id(void* prog);
int ttf_program_add_cb(void* prog, uint64_t size, void* global_buf_or_null); /* CB index or -1 */
int ttf_program_add_dfb(void* prog, uint64_t size);                          /* v081 only; DFB index or -1 */
int ttf_program_run(void* prog, void* dev); /* 0, or -1 if a C++ exception came out */
int ttf_program_destroy(void* prog);        /* 0 / -1 */

/* The fake GraphTracker's own counters (prove that an interposer chained). */
uint64_t ttf_tracker_counter(int which);

#ifdef __cplusplus
}
#endif

#endif /* TTNN_FAKE_H */
