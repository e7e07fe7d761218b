# ttalloc — build, demo, test. Everything a fresh machine needs is installed from here.
CARGO ?= cargo
PYTHON ?= python3
RELEASE := target/release
TESTLIB := $(CURDIR)/target/testlib
DEMO_TRACE := target/demo.msgpack

FUZZ_SECONDS ?= 20

.PHONY: all build testlib demo test test-fast wheels bench fuzz clean

all: build testlib

## libttalloc.so, ttalloc-collect and ttalloc in target/release/
build:
	$(CARGO) build --release --workspace --bins --lib

## the faithful tt-metal stand-in (tests/testlib) in four ABI variants
testlib:
	$(MAKE) -C tests/testlib OUT=$(TESTLIB)

## run the collector over the built-in 8-chip mesh workload and print what it saw
demo: all
	$(RELEASE)/ttalloc-collect --out $(DEMO_TRACE) -- $(PYTHON) tests/workloads/test_mesh_allocation.py --lib $(TESTLIB)/v081
	$(RELEASE)/ttalloc replay $(DEMO_TRACE)

## the real ttnn wheels' libtt_metal.so (0.65.0, 0.71.2, 0.81.1) into ~/.cache/ttalloc/wheels
wheels:
	bash scripts/fetch-wheels.sh 0.65.0 0.71.2 0.81.1

## every test: unit, end-to-end against the test library, the real-wheel tier,
## and a short fuzzing run of the trace and ring readers
test: all wheels
	$(CARGO) test --release --workspace
	$(MAKE) fuzz FUZZ_SECONDS=20

## coverage-guided fuzzing (cargo-fuzz, installed into target/tools), FUZZ_SECONDS per target;
## a crash fails and is kept in fuzz/regressions/ (docs/reliability.md)
fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

bench: all
	$(CARGO) bench -p ttalloc-e2e

clean:
	$(CARGO) clean
	$(MAKE) -C tests/testlib clean OUT=$(TESTLIB)
