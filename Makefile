# ttalloc — build, demo, test. Everything a fresh machine needs is installed from here.
CARGO ?= cargo
PYTHON ?= python3
RELEASE := target/release
TESTLIB := $(CURDIR)/target/testlib
DEMO_TRACE := target/demo.msgpack

.PHONY: all build testlib demo deps test test-fast wheels bench clean

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

## system packages the tests need: Debian's headless-capable Chromium renders
## the HTML report in tests/e2e/tests/report_html.rs (installed only if missing)
deps:
	@test -x /usr/bin/chromium || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-dejavu-core; }

## every test: unit, end-to-end against the test library, and the real-wheel tier
test: all wheels deps
	$(CARGO) test --release --workspace

bench: all
	$(CARGO) bench -p ttalloc-e2e

clean:
	$(CARGO) clean
	$(MAKE) -C tests/testlib clean OUT=$(TESTLIB)
