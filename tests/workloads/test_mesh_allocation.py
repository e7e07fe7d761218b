#!/usr/bin/env python3
"""Mesh allocation workload against the fake tt-metal (tests/testlib).

Loads libttnn_fake.so with ctypes.CDLL (RTLD_LOCAL, like Python importing
ttnn's extension; libtt_metal.so comes in as its DT_NEEDED dependency), opens
an N-chip mesh and:

  1. allocates an (N, 8, 512, 512) bf16 tensor sharded on dim 0
     -> DRAM MeshBuffer, 8*512*512*2 = 4 MiB per chip, page 2048 (one bf16 tile)
  2. allocates a replicated (1, 1, 1024, 1024) bf16 tensor
     -> DRAM MeshBuffer, 2 MiB per chip, page 2048
  3. allocates an L1 MeshBuffer of 128 KiB per chip, page 2048
  4. runs a matmul-like program with 3 CBs (16384, 16384, 8192 B) on the mesh
  5. frees the three buffers (in that order), destroys the program, closes the mesh

and prints one JSON line describing what it did. Stdlib only.

To watch it in `ttalloc-collect --monitor`, slow it down: `--step-ms MS` sleeps
after each step; `--hold-at-peak FILE` waits at the peak (after step 4) until
FILE exists (at most 300 s).

    python3 tests/workloads/test_mesh_allocation.py --lib target/testlib/v071 [--chips 8] [--step-ms 700]
    TTFAKE_LIB_DIR=target/testlib/v071 python3 tests/workloads/test_mesh_allocation.py
"""
import argparse
import ctypes
import json
import os
import sys
import time

DRAM, L1 = 0, 1
TILE_BYTES = 32 * 32 * 2  # one bf16 tile = 2048 B
CB_SIZES = [16384, 16384, 8192]
L1_SIZE = 131072

COUNTER_NAMES = [
    "track_allocate", "track_deallocate", "hook_allocate", "hook_allocate_true",
    "hook_deallocate", "hook_deallocate_true", "track_allocate_cb", "track_deallocate_cb",
    "track_allocate_bytes", "track_deallocate_bytes", "track_allocate_cb_bytes",
]


class TtfError(RuntimeError):
    pass


def load(lib_dir):
    path = os.path.join(lib_dir, "libttnn_fake.so")
    lib = ctypes.CDLL(path)  # RTLD_LOCAL by default
    vp, u64, i32 = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int
    sig = {
        "ttf_version": ([], ctypes.c_char_p),
        "ttf_variant": ([], ctypes.c_char_p),
        "ttf_last_error": ([], ctypes.c_char_p),
        "ttf_constant": ([ctypes.c_char_p], u64),
        "ttf_open_device": ([i32], vp),
        "ttf_open_mesh": ([i32, i32], vp),
        "ttf_mesh_devices": ([vp, ctypes.POINTER(vp), i32], i32),
        "ttf_device_id": ([vp], i32),
        "ttf_device_is_mesh": ([vp], i32),
        "ttf_close_device": ([vp], i32),
        "ttf_close_mesh": ([vp], i32),
        "ttf_buffer_create": ([vp, u64, u64, i32], vp),
        "ttf_buffer_create_at": ([vp, u64, u64, u64, i32], vp),
        "ttf_mesh_buffer_create_per_core": ([vp, u64, u64, i32], vp),
        "ttf_buffer_address": ([vp], ctypes.c_int64),
        "ttf_buffer_ptr": ([vp, i32], vp),
        "ttf_buffer_num_device_buffers": ([vp], i32),
        "ttf_buffer_free": ([vp], i32),
        "ttf_begin_capture": ([], i32),
        "ttf_end_capture": ([], i32),
        "ttf_program_create": ([], vp),
        "ttf_program_id": ([vp], u64),
        "ttf_program_add_cb": ([vp, u64, vp], i32),
        "ttf_program_add_dfb": ([vp, u64], i32),
        "ttf_program_run": ([vp, vp], i32),
        "ttf_program_destroy": ([vp], i32),
        "ttf_tracker_counter": ([i32], u64),
    }
    for name, (args, res) in sig.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    return lib


def check_ptr(lib, p, what):
    if not p:
        raise TtfError(f"{what} failed: {lib.ttf_last_error().decode()}")
    return p


def check_rc(lib, rc, what):
    if rc < 0:
        raise TtfError(f"{what} failed: {lib.ttf_last_error().decode()}")
    return rc


def run(lib, chips, step_s=0.0, hold_file=None):
    def step():
        if step_s > 0:
            time.sleep(step_s)

    mesh = check_ptr(lib, lib.ttf_open_mesh(chips, 0), "ttf_open_mesh")
    devs = (ctypes.c_void_p * chips)()
    n = check_rc(lib, lib.ttf_mesh_devices(mesh, devs, chips), "ttf_mesh_devices")
    if n != chips:
        raise TtfError(f"mesh has {n} devices, expected {chips}")
    chip_ids = [lib.ttf_device_id(devs[i]) for i in range(n)]
    mesh_id = lib.ttf_device_id(mesh)

    # (chips, 8, 512, 512) bf16 sharded on dim 0 -> 8*512*512*2 B per chip.
    sharded_per_chip = 8 * 512 * 512 * 2
    # (1, 1, 1024, 1024) bf16 replicated -> full tensor on every chip.
    replicated_per_chip = 1 * 1 * 1024 * 1024 * 2

    specs = [
        ("sharded", DRAM, sharded_per_chip, [chips, 8, 512, 512]),
        ("replicated", DRAM, replicated_per_chip, [1, 1, 1024, 1024]),
        ("l1", L1, L1_SIZE, None),
    ]
    handles, buffers = [], []
    for name, btype, size, shape in specs:
        h = check_ptr(lib, lib.ttf_buffer_create(mesh, size, TILE_BYTES, btype), f"create {name}")
        handles.append(h)
        step()
        entry = {
            "name": name,
            "type": "DRAM" if btype == DRAM else "L1",
            "size": size,
            "page_size": TILE_BYTES,
            "address": check_rc(lib, lib.ttf_buffer_address(h), "ttf_buffer_address"),
        }
        if shape is not None:
            entry["shape"] = shape
            entry["dtype"] = "bfloat16"
        buffers.append(entry)

    prog = check_ptr(lib, lib.ttf_program_create(), "ttf_program_create")
    for size in CB_SIZES:
        check_rc(lib, lib.ttf_program_add_cb(prog, size, None), "ttf_program_add_cb")
    check_rc(lib, lib.ttf_program_run(prog, mesh), "ttf_program_run")
    program_id = lib.ttf_program_id(prog)
    step()
    deadline = time.monotonic() + 300  # never outlive a test that forgot us
    while hold_file and not os.path.exists(hold_file) and time.monotonic() < deadline:
        time.sleep(0.02)

    for h, (name, *_rest) in zip(handles, specs):
        check_rc(lib, lib.ttf_buffer_free(h), f"free {name}")
        step()
    check_rc(lib, lib.ttf_program_destroy(prog), "ttf_program_destroy")
    step()
    check_rc(lib, lib.ttf_close_mesh(mesh), "ttf_close_mesh")

    return {
        "scenario": "mesh",
        "source": "test_mesh_allocation.py",
        "variant": lib.ttf_variant().decode(),
        "version": lib.ttf_version().decode(),
        "pid": os.getpid(),
        "chips": chips,
        "mesh_id": mesh_id,
        "chip_ids": chip_ids,
        "buffers": buffers,
        "program_id": program_id,
        "cb_sizes": CB_SIZES,
        "cb_bytes_per_chip": sum(CB_SIZES),
        "dram_bytes_per_chip": sharded_per_chip + replicated_per_chip,
        "l1_bytes_per_chip": L1_SIZE,
        "tracker": {name: lib.ttf_tracker_counter(i) for i, name in enumerate(COUNTER_NAMES)},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", default=os.environ.get("TTFAKE_LIB_DIR"),
                    help="variant dir holding libttnn_fake.so (default: $TTFAKE_LIB_DIR)")
    ap.add_argument("--chips", type=int, default=8, help="mesh size (default 8)")
    ap.add_argument("--step-ms", type=int, default=0, help="sleep this long after each step (default 0)")
    ap.add_argument("--hold-at-peak", metavar="FILE", help="at the peak, wait until FILE exists")
    args = ap.parse_args(argv)
    if not args.lib:
        ap.error("pass --lib DIR or set TTFAKE_LIB_DIR")
    if args.chips <= 0:
        ap.error("--chips must be positive")
    try:
        lib = load(args.lib)
        result = run(lib, args.chips, args.step_ms / 1000.0, args.hold_at_peak)
    except (OSError, TtfError) as e:
        print(f"test_mesh_allocation: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
