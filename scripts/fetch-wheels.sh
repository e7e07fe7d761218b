#!/usr/bin/env bash
# Fetch ttnn wheels and extract what ttalloc's real-library tests need. Idempotent.
#
#   scripts/fetch-wheels.sh 0.65.0 0.71.2 0.81.1
#
# For each VERSION, under ${TTALLOC_WHEEL_CACHE:-~/.cache/ttalloc/wheels}/VERSION/:
#   ttnn-VERSION-*.whl   the wheel (pip download, cp312, no deps)
#   lib/libtt_metal.so   the library alone (ELF analysis tests)
#   site/                a minimal site-packages: ttnn/build/lib/*.so*, ttnn.libs/*,
#                        ttnn-VERSION.dist-info/METADATA — enough to dlopen libtt_metal.so
#                        (its RPATH is $ORIGIN:$ORIGIN/../../../ttnn.libs) and to read its version.
# Then checks with ldd that every DT_NEEDED library of site/.../libtt_metal.so resolves: the
# wheel brings MPI, hwloc, numa, tracy, UMD and tt_stl; the system must provide glibc >= 2.34,
# libstdc++ with GLIBCXX_3.4.29 (gcc 11+), libgcc_s and zlib (Debian: libc6 libstdc++6
# libgcc-s1 zlib1g). Anything missing fails here, naming it.
# Prints the path of each lib/libtt_metal.so.
set -euo pipefail

CACHE="${TTALLOC_WHEEL_CACHE:-$HOME/.cache/ttalloc/wheels}"
PY_VERSION="${TTALLOC_WHEEL_PY:-3.12}"

if [ "$#" -eq 0 ]; then
    echo "usage: $0 VERSION..." >&2
    exit 2
fi

for v in "$@"; do
    dir="$CACHE/$v"
    mkdir -p "$dir"
    whl=$(ls "$dir"/ttnn-"$v"-*.whl 2>/dev/null | head -n1 || true)
    if [ -z "$whl" ]; then
        echo "downloading ttnn==$v ..." >&2
        pip download --no-deps --only-binary=:all: --python-version "$PY_VERSION" "ttnn==$v" -d "$dir" >&2
        whl=$(ls "$dir"/ttnn-"$v"-*.whl | head -n1)
    fi
    if [ ! -s "$dir/lib/libtt_metal.so" ]; then
        unzip -o -q -j "$whl" '*/libtt_metal.so' -d "$dir/lib"
    fi
    if [ ! -s "$dir/site/ttnn/build/lib/libtt_metal.so" ] || [ ! -d "$dir/site/ttnn.libs" ]; then
        unzip -o -q "$whl" 'ttnn/build/lib/*.so*' 'ttnn.libs/*' '*.dist-info/METADATA' -d "$dir/site" \
            -x 'ttnn/build/lib/_ttnncpp.so'
    fi
    missing=$(ldd "$dir/site/ttnn/build/lib/libtt_metal.so" 2>&1 | grep -E 'not found|No such' || true)
    if [ -n "$missing" ]; then
        echo "ttnn $v: libtt_metal.so cannot be loaded here; unresolved:" >&2
        echo "$missing" >&2
        exit 1
    fi
    echo "$dir/lib/libtt_metal.so"
done
