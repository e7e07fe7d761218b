/* load_metal LIB [CALLS]: load a real libtt_metal.so the way Python imports ttnn
 * (dlopen RTLD_NOW | RTLD_LOCAL, from any path, under any name) -- no device needed.
 * Under LD_PRELOAD=libttalloc.so that dlopen is what makes the shim resolve its originals
 * and accessors in the library.
 *
 * Then calls GraphTracker::track_deallocate_cb(this, NULL) CALLS times through the
 * library's own entry (dlsym on the handle: what a direct intra-library call reaches). It
 * does nothing without registered graph processors; with the shim's entry patched
 * (TTALLOC_INLINE=all) each call goes through the shim's hook and the trampoline instead,
 * and is recorded. Prints one JSON line. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#define TRACK_DEALLOCATE_CB "_ZN2tt8tt_metal12GraphTracker19track_deallocate_cbEPKNS0_7IDeviceE"

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
    printf("{\"loaded\":\"%s\",\"calls\":%d}\n", argv[1], calls);
    return 0;
}
