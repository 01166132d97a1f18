# edgeproxy: `make run` serves on conf/ defaults; `make test` runs every test.
# Both install what they need (Debian packages with apt-get, Python test libraries with pip).

SWIFT      ?= swift
PYTHON     ?= python3
CONFIG     ?= conf/edgeproxy.yaml
APT_RUN    := libssl-dev pkg-config
APT_TEST   := $(APT_RUN) libnghttp2-dev openssl curl nghttp2-client pebble etcd-server etcd-client haproxy nginx-light wrk bind9 bind9-dnsutils gcc slowhttptest
PIP_TEST   := pytest cryptography h2
APT_BENCH  := $(APT_TEST) golang-go h2o
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run build release test unit integration deps-run deps-test deps-bench bench clean

run: deps-run release
	.build/release/edgeproxy run --config $(CONFIG)

release:
	$(SWIFT) build -c release --product edgeproxy

build:
	$(SWIFT) build

# The release binary too: allocation counts are checked in what ships (test_allocations.py).
test: deps-test
	$(SWIFT) build --build-tests
	$(SWIFT) build -c release --product edgeproxy
	$(MAKE) unit integration

unit:
	$(SWIFT) test --skip-build

integration:
	EDGEPROXY_BIN=$(CURDIR)/.build/debug/edgeproxy EDGEPROXY_RELEASE_BIN=$(CURDIR)/.build/release/edgeproxy \
	  $(PYTHON) -m pytest -q Tests/Integration

bench: deps-bench release
	bench/run.sh

# Installs only what is missing, so a prepared machine pays nothing.
deps-run:
	@missing=$$(for p in $(APT_RUN); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

deps-test:
	@missing=$$(for p in $(APT_TEST); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi
	@$(PYTHON) -c 'import pytest, cryptography, h2' 2>/dev/null || $(PYTHON) -m pip install -q $(PIP_TEST)

# The benchmarks' own client (bench/hsclient) is built with Go; h2o is one of the peers.
deps-bench: deps-test
	@missing=$$(for p in $(APT_BENCH); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

clean:
	rm -rf .build
