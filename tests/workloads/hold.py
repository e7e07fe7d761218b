#!/usr/bin/env python3
"""Holds buffers live while a test attaches, kills or restarts collectors.

Opens chip 0, creates N DRAM buffers (size 65536, page 2048), frees every
other one, prints one JSON line with what is live, then waits for a line on
stdin before freeing the rest and closing the device. Loads the test
library with ctypes (RTLD_LOCAL), like Python importing ttnn."""
import argparse, ctypes, json, os, sys

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("-n", type=int, default=100)
args = ap.parse_args()
lib = ctypes.CDLL(os.path.join(args.lib, "libttnn_fake.so"))
lib.ttf_open_device.restype = ctypes.c_void_p
lib.ttf_buffer_create.restype = ctypes.c_void_p
lib.ttf_buffer_create.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int]
lib.ttf_buffer_free.argtypes = [ctypes.c_void_p]
lib.ttf_close_device.argtypes = [ctypes.c_void_p]
dev = lib.ttf_open_device(0)
bufs = [lib.ttf_buffer_create(dev, 65536, 2048, 0) for _ in range(args.n)]
for b in bufs[::2]:
    lib.ttf_buffer_free(b)
live = bufs[1::2]
print(json.dumps({"pid": os.getpid(), "live_user_buffers": len(live), "live_user_bytes": 65536 * len(live)}), flush=True)
sys.stdin.readline()
for b in live:
    lib.ttf_buffer_free(b)
lib.ttf_close_device(dev)
print(json.dumps({"done": True}), flush=True)
