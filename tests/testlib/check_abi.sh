#!/bin/sh
# check_abi.sh VARIANT DIR -- verify that a built ttfake variant mirrors the
# tt-metal ABI facts the ttalloc shim depends on. Exits non-zero on mismatch.
set -u
V="$1"
D="$2"
LIB="$D/libtt_metal.so"
fail=0
err() { echo "check_abi[$V]: $*" >&2; fail=1; }

DYN=$(nm -D --defined-only "$LIB" | awk '{print $3}')
JS=$(readelf -rW "$LIB" | awk '/JUMP_SLOT/ {print $5}')

has_sym() { echo "$DYN" | grep -qx "$1"; }
has_js() { echo "$JS" | grep -qx "$1"; }

T_ALLOC=_ZN2tt8tt_metal12GraphTracker14track_allocateEPKNS0_6BufferE
T_DEALLOC=_ZN2tt8tt_metal12GraphTracker16track_deallocateEPNS0_6BufferE
H_ALLOC=_ZN2tt8tt_metal12GraphTracker13hook_allocateEPKNS0_6BufferE
H_DEALLOC=_ZN2tt8tt_metal12GraphTracker15hook_deallocateEPNS0_6BufferE
T_CB=_ZN2tt8tt_metal12GraphTracker17track_allocate_cbERKNS0_12CoreRangeSetEmmbPKNS0_7IDeviceE
T_DCB=_ZN2tt8tt_metal12GraphTracker19track_deallocate_cbEPKNS0_7IDeviceE
INST=_ZN2tt8tt_metal12GraphTracker8instanceEv
ACB=_ZN2tt8tt_metal6detail11ProgramImpl25allocate_circular_buffersEPKNS0_7IDeviceE
DCB=_ZN2tt8tt_metal6detail11ProgramImpl27deallocate_circular_buffersEv
PD1=_ZN2tt8tt_metal6detail11ProgramImplD1Ev
PD2=_ZN2tt8tt_metal6detail11ProgramImplD2Ev
ADFB=_ZN2tt8tt_metal6detail11ProgramImpl25allocate_dataflow_buffersEPKNS0_7IDeviceE
MARK=_ZN2tt8tt_metal6detail11ProgramImpl23CircularBufferAllocator12mark_addressEmmm
T_DFB=_ZN2tt8tt_metal12GraphTracker30track_allocate_dataflow_bufferERKNS0_12CoreRangeSetEmmbPKNS0_7IDeviceE
GETDEV=_ZNK2tt8tt_metal11distributed10MeshDevice11get_devicesEv
DCLOSE=_ZN2tt8tt_metal6Device5closeEv
MCLOSE=_ZN2tt8tt_metal11distributed10MeshDevice5closeEv
VT_DEV=_ZTVN2tt8tt_metal6DeviceE
VT_MESH=_ZTVN2tt8tt_metal11distributed10MeshDeviceE
B=_ZNK2tt8tt_metal6Buffer

case "$V" in
    v065) LEGACY=1 CB071=0 DFB=0 SYMB=0 ;;
    v071) LEGACY=1 CB071=1 DFB=0 SYMB=0 ;;
    v081) LEGACY=0 CB071=1 DFB=1 SYMB=0 ;;
    v081-symbolic) LEGACY=0 CB071=1 DFB=1 SYMB=1 ;;
    *) echo "unknown variant $V" >&2; exit 2 ;;
esac

# --- exported symbols -------------------------------------------------------
for s in $T_ALLOC $T_DEALLOC $H_ALLOC $H_DEALLOC $T_CB $T_DCB $INST $ACB $PD1 $PD2 $GETDEV $DCLOSE $MCLOSE \
         $VT_DEV $VT_MESH ${B}7addressEv ${B}9num_pagesEv ${B}9page_sizeEv ${B}12is_allocatedEv ${B}7is_dramEv \
         ${B}5is_l1Ev ${B}8is_traceEv; do
    has_sym "$s" || err "missing export $s"
done
if [ "$CB071" = 1 ]; then has_sym $DCB || err "missing export $DCB"; else has_sym $DCB && err "unexpected export $DCB"; fi
if [ "$DFB" = 1 ]; then
    has_sym $ADFB || err "missing export $ADFB"
    has_sym $MARK || err "missing export $MARK"
    has_sym $T_DFB || err "missing export $T_DFB"
else
    has_sym $ADFB && err "unexpected export $ADFB"
    has_sym $T_DFB && err "unexpected export $T_DFB"
fi
for s in ${B}4sizeEv ${B}11buffer_typeEv ${B}6deviceEv ${B}9unique_idEv ${B}4implEv; do
    if [ "$LEGACY" = 1 ]; then has_sym "$s" && err "legacy layout must not export $s"
    else has_sym "$s" || err "missing export $s"; fi
done
# Device::id() is hidden in tt-metal (only reachable through vtable slot 3).
has_sym _ZNK2tt8tt_metal6Device2idEv && err "Device::id() must not be exported"
has_sym _ZNK2tt8tt_metal11distributed10MeshDevice2idEv || err "missing export MeshDevice::id()"

# --- PLT relocations ----------------------------------------------------------
PLT_TARGETS="$T_ALLOC $T_DEALLOC $H_ALLOC $H_DEALLOC $T_CB $INST $ACB $PD1 $GETDEV $DCLOSE"
[ "$CB071" = 1 ] && PLT_TARGETS="$PLT_TARGETS $T_DCB $DCB"
[ "$DFB" = 1 ] && PLT_TARGETS="$PLT_TARGETS $ADFB $MARK"
for s in $PLT_TARGETS; do
    if [ "$SYMB" = 1 ]; then has_js "$s" && err "JUMP_SLOT for $s must not exist with -Bsymbolic-functions"
    else has_js "$s" || err "no JUMP_SLOT for $s"; fi
done
# 0.65/0.68 never call track_deallocate_cb: no PLT slot, like the real library.
if [ "$CB071" = 0 ]; then has_js $T_DCB && err "v065 must not call track_deallocate_cb"; fi
if [ "$SYMB" = 1 ]; then
    for s in $T_ALLOC $T_DEALLOC $H_ALLOC $H_DEALLOC $T_CB $T_DCB $INST $ACB $DCB $ADFB $MARK $PD1 $PD2 $GETDEV $DCLOSE $MCLOSE; do
        has_js "$s" && err "JUMP_SLOT for $s in symbolic build"
    done
fi

# --- Buffer::is_dram() bytes ----------------------------------------------------
addr=$(nm -D --defined-only "$LIB" | awk -v s="${B}7is_dramEv" '$3 == s {print $1}')
bytes=$(objdump -d --start-address=0x$addr --stop-address=$(printf '0x%x' $((0x$addr + 11))) "$LIB" |
        awk -F'\t' '/^ *[0-9a-f]+:\t/ {printf "%s", $2}' | tr -d ' ')
if [ "$LEGACY" = 1 ]; then
    [ "$bytes" = "f74720fbffffff0f94c0c3" ] || err "Buffer::is_dram() bytes are $bytes, want f74720fbffffff 0f94c0 c3"
else
    case "$bytes" in f74720fbffffff*) err "pimpl Buffer::is_dram() must not match the legacy pattern" ;; esac
fi

# --- dynamic section ------------------------------------------------------------
readelf -d "$LIB" | grep -q 'Library soname: \[libtt_metal.so\]' || err "SONAME of libtt_metal.so"
for f in libttnn_fake.so ttfake_driver; do
    readelf -d "$D/$f" | grep -q 'Library runpath: \[\$ORIGIN\]' || err "RUNPATH \$ORIGIN missing in $f"
    readelf -d "$D/$f" | grep -q 'Shared library: \[libtt_metal.so\]' || err "$f does not link libtt_metal.so"
done
readelf -d "$D/ttfake_driver" | grep -q 'Shared library: \[libttnn_fake.so\]' || err "driver does not link libttnn_fake.so"

[ "$fail" = 0 ] && echo "check_abi[$V]: ok"
exit "$fail"
