# ttalloc — build, demo, test. Everything a fresh machine needs is installed from here.
CARGO ?= cargo
PYTHON ?= python3
RELEASE := target/release
TESTLIB := $(CURDIR)/target/testlib
DEMO_TRACE := target/demo.msgpack

FUZZ_SECONDS ?= 20

.PHONY: all build testlib demo watch deps test test-fast wheels bench fuzz clean

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

## watch the mesh workload's memory rise and fall per chip in the live view (q quits)
watch: all
	$(RELEASE)/ttalloc-collect --monitor -r 200 --out target/watch.msgpack -- $(PYTHON) tests/workloads/test_mesh_allocation.py --lib $(TESTLIB)/v081 --step-ms 700

## the real ttnn wheels' libtt_metal.so (0.65.0, 0.71.2, 0.81.1) into ~/.cache/ttalloc/wheels
wheels:
	bash scripts/fetch-wheels.sh 0.65.0 0.71.2 0.81.1

## system packages the tests use that a fresh machine may lack, installed with
## apt-get only when missing: tmux (the live view's terminal test) and Debian's
## Chromium (renders the HTML report in tests/e2e/tests/report_html.rs)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
deps:
	@command -v tmux >/dev/null 2>&1 && test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq tmux chromium fonts-dejavu-core; }

## every test: unit, end-to-end against the test library, the real-wheel tier,
## and a short fuzzing run of the trace and ring readers
test: all wheels deps
	$(CARGO) test --release --workspace
	$(MAKE) fuzz FUZZ_SECONDS=10

## coverage-guided fuzzing (libFuzzer + ASan, built by scripts/fuzz.sh), FUZZ_SECONDS per target;
## a crash fails and is kept in fuzz/regressions/ (docs/reliability.md)
fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

bench: all
	$(CARGO) bench -p ttalloc-e2e

clean:
	$(CARGO) clean
	$(MAKE) -C tests/testlib clean OUT=$(TESTLIB)
