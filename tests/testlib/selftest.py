#!/usr/bin/env python3
"""Self-test of the fake tt-metal itself (no shim): checks the lifecycle rules
documented in README.md against the fake GraphTracker's own counters.

    python3 tests/testlib/selftest.py [OUT_DIR]     # default: target/testlib

Each case runs in a fresh subprocess (the fake keeps global state).
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "workloads"))
import test_mesh_allocation as tma  # noqa: E402

DRAM, L1 = 0, 1
TA, TD, HA, HAT, HD, HDT, TCB, TDCB, TAB, TDB, TCBB = range(11)
SYS_DRAM_A, SYS_DRAM_B, SYS_L1 = 1048576, 131072, 32768


def counters(lib):
    return [lib.ttf_tracker_counter(i) for i in range(11)]


def case_sizes_and_preallocated(lib):
    dev = lib.ttf_open_device(3)
    assert dev and lib.ttf_device_id(dev) == 3 and lib.ttf_device_is_mesh(dev) == 0
    c = counters(lib)
    assert c[TA] == 3 and c[TAB] == SYS_DRAM_A + SYS_DRAM_B + SYS_L1, c
    z = lib.ttf_buffer_create(dev, 0, 2048, DRAM)  # size 0: never tracked
    p = lib.ttf_buffer_create_at(dev, 0x100000, 4096, 2048, DRAM)  # pre-allocated: never tracked
    assert z and p and lib.ttf_buffer_address(p) == 0x100000
    assert lib.ttf_buffer_free(z) == 0 and lib.ttf_buffer_free(p) == 0
    assert counters(lib)[TA] == 3 and counters(lib)[TD] == 0 and counters(lib)[HA] == 3
    bad = lib.ttf_buffer_create(dev, 3000, 2048, DRAM)
    assert not bad and b"divisible" in lib.ttf_last_error()
    # address reuse
    a = lib.ttf_buffer_create(dev, 4096, 2048, DRAM)
    addr = lib.ttf_buffer_address(a)
    lib.ttf_buffer_free(a)
    b = lib.ttf_buffer_create(dev, 4096, 2048, DRAM)
    assert lib.ttf_buffer_address(b) == addr
    lib.ttf_buffer_free(b)
    assert lib.ttf_close_device(dev) == 0 and lib.ttf_close_device(dev) == 1
    c = counters(lib)
    assert c[TD] == 2 + 2 and c[TDB] == SYS_DRAM_B + SYS_L1 + 2 * 4096, c
    # reopen the chip: fresh memory, same addresses
    dev2 = lib.ttf_open_device(3)
    assert dev2 and counters(lib)[TA] == 2 + 3 + 3


def case_free_after_close(lib):
    dev = lib.ttf_open_device(0)
    a = lib.ttf_buffer_create(dev, 8192, 2048, L1)
    assert lib.ttf_close_device(dev) == 0
    before = counters(lib)
    assert lib.ttf_buffer_free(a) == 0
    after = counters(lib)
    assert after[TD] == before[TD] and after[HD] == before[HD], (before, after)


def case_capture(lib):
    dev = lib.ttf_open_device(0)
    mesh = lib.ttf_open_mesh(2, 4)
    assert lib.ttf_device_id(mesh) >= 1000
    assert lib.ttf_begin_capture() == 0
    assert lib.ttf_begin_capture() == -1  # nested capture is an error
    a = lib.ttf_buffer_create(dev, 1 << 20, 2048, DRAM)
    m = lib.ttf_buffer_create(mesh, 1 << 20, 2048, DRAM)
    assert lib.ttf_buffer_address(a) == 0 and lib.ttf_buffer_address(m) == 0
    assert lib.ttf_end_capture() == 0
    c = counters(lib)
    assert c[HAT] == 2
    # freed after the capture ended: hook_deallocate is false, still not freed in the allocator
    assert lib.ttf_buffer_free(a) == 0 and lib.ttf_buffer_free(m) == 0
    c2 = counters(lib)
    assert c2[TD] == c[TD] + 2 and c2[HDT] == 0
    x = lib.ttf_buffer_create(dev, 4096, 2048, DRAM)
    assert lib.ttf_buffer_address(x) == 0x40 + SYS_DRAM_A + SYS_DRAM_B


def case_mesh(lib):
    mesh = lib.ttf_open_mesh(4, 0)
    single = lib.ttf_open_device(7)
    devs = (tma.ctypes.c_void_p * 4)()
    assert lib.ttf_mesh_devices(mesh, devs, 4) == 4
    assert lib.ttf_close_device(devs[0]) == -1  # member of an open mesh
    # chip 1 only: occupies the address a mesh buffer would otherwise get
    d1 = lib.ttf_buffer_create(devs[1], 4096, 2048, DRAM)
    m = lib.ttf_buffer_create(mesh, 4096, 2048, DRAM)
    assert lib.ttf_buffer_address(m) != lib.ttf_buffer_address(d1)
    assert lib.ttf_buffer_num_device_buffers(m) == 4
    backing = lib.ttf_buffer_ptr(m, -1)
    views = [lib.ttf_buffer_ptr(m, i) for i in range(4)]
    assert backing and all(views) and backing not in views
    # global CB aliases an L1 mesh buffer and takes no region space
    l1 = lib.ttf_buffer_create(mesh, 65536, 2048, L1)
    prog = lib.ttf_program_create()
    assert lib.ttf_program_add_cb(prog, 65536, l1) == 0
    assert lib.ttf_program_add_cb(prog, 4096, None) == 1
    c0 = counters(lib)
    assert lib.ttf_program_run(prog, mesh) == 0
    assert lib.ttf_program_run(prog, mesh) == 0  # second run: nothing new
    c1 = counters(lib)
    per_phys = lib.ttf_constant(b"CB_PER_PHYSICAL_DEVICE")
    assert c1[TCB] - c0[TCB] == (8 if per_phys else 2), (c0, c1)
    assert lib.ttf_program_add_cb(prog, 4096, None) == -1  # after allocation
    if per_phys:
        assert lib.ttf_program_run(prog, single) == 0  # now also on chip 7
        assert counters(lib)[TCB] - c0[TCB] == 10
    lib.ttf_program_destroy(prog)
    c2 = counters(lib)
    assert c2[TDCB] - c1[TDCB] == (5 if per_phys else 0), (c1, c2)
    for h in (d1, m, l1):
        assert lib.ttf_buffer_free(h) == 0
    assert lib.ttf_close_mesh(mesh) == 0


def case_per_core(lib):
    mesh = lib.ttf_open_mesh(3, 0)
    h = lib.ttf_mesh_buffer_create_per_core(mesh, 65536, 2048, L1)
    if not lib.ttf_constant(b"PIMPL_BUFFER"):
        assert not h and b"0.81" in lib.ttf_last_error()
        assert lib.ttf_program_add_dfb(lib.ttf_program_create(), 4096) == -1
        return
    c0 = counters(lib)
    assert h and lib.ttf_buffer_ptr(h, -1) is None and lib.ttf_buffer_num_device_buffers(h) == 3
    assert lib.ttf_buffer_free(h) == 0
    assert counters(lib)[TD] - c0[TD] == 3
    # DFBs: no tracker call at all; clash check like CBs
    prog = lib.ttf_program_create()
    assert lib.ttf_program_add_dfb(prog, 4096) == 0
    assert lib.ttf_program_add_cb(prog, 4096, None) == -1  # no CBs next to DFBs
    c1 = counters(lib)
    assert lib.ttf_program_run(prog, mesh) == 0
    assert lib.ttf_program_destroy(prog) == 0
    assert counters(lib) == c1


def case_oom_no_track(lib):
    dev = lib.ttf_open_device(0)
    c0 = counters(lib)
    h = lib.ttf_buffer_create(dev, 2 << 30, 2048, DRAM)
    assert not h and lib.ttf_last_error().startswith(b"Out of Memory")
    c1 = counters(lib)
    assert c1[HA] == c0[HA] + 1 and c1[TA] == c0[TA]


CASES = [case_sizes_and_preallocated, case_free_after_close, case_capture, case_mesh, case_per_core,
         case_oom_no_track]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "target", "testlib")
    if len(sys.argv) > 2:  # child: VARIANT_DIR CASE
        lib = tma.load(sys.argv[1])
        globals()[sys.argv[2]](lib)
        return 0
    failed = 0
    for v in ("v065", "v071", "v081", "v081-symbolic"):
        d = os.path.join(out, v)
        for case in CASES:
            r = subprocess.run([sys.executable, __file__, d, case.__name__], capture_output=True, text=True)
            status = "ok" if r.returncode == 0 else "FAIL"
            failed += r.returncode != 0
            print(f"{v:14} {case.__name__:30} {status}")
            if r.returncode != 0:
                print(r.stderr, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
