# edgeproxy: `make run` serves on conf/ defaults; `make test` runs every test.
# Both install what they need (Debian packages with apt-get, Python test libraries with pip).

SWIFT      ?= swift
PYTHON     ?= python3
CONFIG     ?= conf/edgeproxy.yaml
APT_RUN    := libssl-dev pkg-config
APT_TEST   := $(APT_RUN) libnghttp2-dev openssl curl nghttp2-client pebble etcd-server etcd-client haproxy nginx-light wrk bind9 bind9-dnsutils gcc testssl.sh chromium slowhttptest
PIP_TEST   := pytest cryptography h2 pyyaml jsonschema openapi-spec-validator
APT_BENCH  := $(APT_TEST) golang-go h2o linux-perf
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The commit `edgeproxy version` reports (Package.swift reads it); a plain `swift build` says "unknown".
export EDGEPROXY_COMMIT ?= $(shell git describe --always --dirty --abbrev=12 2>/dev/null)

.PHONY: run build release openssl-static bench-sni test unit integration fuzz fuzz-build fuzz-check asan-build sanitize sanitize-address sanitize-thread deps-run deps-test deps-bench bench clean

run: deps-run release
	.build/release/edgeproxy run --config $(CONFIG)

# Release builds link the Swift runtime, Foundation and Dispatch, and OpenSSL from libssl-dev's
# static archives, into the binary: calls into them (every retain and release, the thousands of
# calls a handshake makes between libssl and libcrypto) are direct instead of through the dynamic
# linker's tables: ~1 % (the runtime) and 3-4 % (OpenSSL) less CPU per handshake (bench/history.md).
# The archives are linked from a directory that holds only them, searched before the system's.
# SwiftPM does not notice a changed system library (and dpkg keeps the package's file times), so
# when the archives' checksums differ from the last link's, the binary is removed and linked again;
# a running node takes it with a binary upgrade (README).
OPENSSL_STATIC := $(CURDIR)/.build/openssl-static
RELEASE_BUILD  := $(SWIFT) build -c release --static-swift-stdlib -Xlinker -L$(OPENSSL_STATIC)

release: openssl-static
	$(RELEASE_BUILD) --product edgeproxy

openssl-static:
	@libdir=$$(pkg-config --variable=libdir libssl) && [ -f "$$libdir/libssl.a" ] && [ -f "$$libdir/libcrypto.a" ] || \
	  { echo "release: OpenSSL's static archives (libssl.a, libcrypto.a) not found: install libssl-dev and pkg-config"; exit 1; }; \
	  mkdir -p $(OPENSSL_STATIC) && ln -sf "$$libdir/libssl.a" "$$libdir/libcrypto.a" $(OPENSSL_STATIC)/ && \
	  sums=$$(cat "$$libdir/libssl.a" "$$libdir/libcrypto.a" | sha256sum) && \
	  if [ "$$sums" != "$$(cat $(OPENSSL_STATIC)/linked 2>/dev/null)" ]; then \
	    rm -f .build/release/edgeproxy .build/release/bench-sni && echo "$$sums" > $(OPENSSL_STATIC)/linked; \
	  fi

# The in-process SNI benchmark (bench/certs100k.py), built as the release binary is.
bench-sni: openssl-static
	$(RELEASE_BUILD) --product bench-sni

build:
	$(SWIFT) build

# The release binary too: allocation counts are checked in what ships (test_allocations.py), and
# the AddressSanitizer build, in which test_leaks.py looks for memory leaked per connection or reload.
test: deps-test
	$(SWIFT) build --build-tests
	$(MAKE) release asan-build unit fuzz-check integration

unit:
	$(SWIFT) test --skip-build

integration:
	EDGEPROXY_BIN=$(CURDIR)/.build/debug/edgeproxy EDGEPROXY_RELEASE_BIN=$(CURDIR)/.build/release/edgeproxy \
	  $(PYTHON) -m pytest -q Tests/Integration

# libFuzzer targets (Tests/Fuzz): built with the toolchain's fuzzer and address sanitizer in a
# scratch path of their own; -DFUZZING makes each start libFuzzer instead of reading files.
FUZZ_TARGETS := HTTP1Request HTTP1Session HTTP1Response HTTP2 ProxyProtocol Certificates Config ACME Etcd
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := $(SWIFT) build -c release --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address \
                -Xswiftc -DFUZZING -Xswiftc -enable-testing -Xswiftc -enforce-exclusivity=checked
# Each target's dictionary; the Swift runtime's backtracer is off so libFuzzer reports crashes itself,
# hashing is seeded alike in every run so that coverage, and a fixed-seed run, repeat, and leaks
# inside the toolchain's libraries are not ours to report (Tests/Fuzz/lsan.supp).
FUZZ_RUN      = SWIFT_BACKTRACE=enable=no SWIFT_DETERMINISTIC_HASHING=1 LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/Fuzz/lsan.supp \
                .build-fuzz/release/Fuzz$$t -dict=Tests/Fuzz/dict/$$(case $$t in \
                HTTP1*) echo http1;; HTTP2) echo http2;; ProxyProtocol) echo proxy;; Certificates) echo pem;; \
                Config) echo yaml;; ACME) echo json;; Etcd) echo etcd;; esac).dict -timeout=10 -artifact_prefix=.build-fuzz/artifacts/$$t-

fuzz-build:
	@ls $$(dirname $$(command -v swiftc))/../lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 || \
	  { echo "fuzz: the Swift toolchain has no libFuzzer runtime (lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a); install the swift.org toolchain"; exit 1; }
	@for t in $(FUZZ_TARGETS); do $(FUZZ_BUILD) --product Fuzz$$t || exit 1; done
	@mkdir -p .build-fuzz/artifacts

# Every committed corpus input, then a fixed-seed run of mutations from it: deterministic, and
# any crash or broken invariant fails. What the mutations add goes to a scratch directory.
fuzz-check: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzz-check: Fuzz$$t"; \
	  rm -rf .build-fuzz/check/$$t && mkdir -p .build-fuzz/check/$$t; \
	  out=$$($(FUZZ_RUN) -seed=1 -runs=3000 .build-fuzz/check/$$t Tests/Fuzz/corpus/Fuzz$$t 2>&1) || \
	    { echo "$$out" | grep -a -v -E "^#[0-9]+ +(NEW|REDUCE|pulse)" | tail -60; echo "fuzz-check: Fuzz$$t failed"; exit 1; }; \
	  echo "$$out" | grep -a -E "^Done"; \
	done

# Each target for FUZZ_SECONDS from its committed corpus. New inputs go to .build-fuzz/corpus/,
# crashes to .build-fuzz/artifacts/ (see Tests/Fuzz/README.md for keeping them).
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p .build-fuzz/corpus/Fuzz$$t; \
	  echo "fuzz: Fuzz$$t for $(FUZZ_SECONDS) s"; \
	  nice -n 5 env $(FUZZ_RUN) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    .build-fuzz/corpus/Fuzz$$t Tests/Fuzz/corpus/Fuzz$$t || exit 1; \
	done

# Sanitizers, each build in a scratch path of its own. `make sanitize`: the unit tests and the whole
# end-to-end suite on the AddressSanitizer build (LeakSanitizer in test_leaks.py), then the unit tests
# and the end-to-end tests of the multi-threaded parts (reload, admin, health checks, ACME, cluster,
# OCSP) on the ThreadSanitizer build. conftest fails a test whose proxy printed a sanitizer report.
SAN_SUPP := $(CURDIR)/Tests/Sanitizers
ASAN_ENV := EDGEPROXY_SANITIZER=address SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0:quarantine_size_mb=16:suppressions=$(SAN_SUPP)/asan.supp
TSAN_ENV := EDGEPROXY_SANITIZER=thread SWIFT_BACKTRACE=enable=no TSAN_OPTIONS=halt_on_error=0:suppressions=$(SAN_SUPP)/tsan.supp
TSAN_E2E := test_reload test_admin test_health test_acme test_acme_on_demand test_cluster test_ocsp
ASAN_BUILD := $(SWIFT) build --scratch-path .build-asan -Xswiftc -sanitize=address
TSAN_BUILD := $(SWIFT) build --scratch-path .build-tsan -Xswiftc -sanitize=thread

asan-build:
	$(ASAN_BUILD) --product edgeproxy

sanitize: sanitize-address sanitize-thread

sanitize-address: deps-test release
	$(ASAN_BUILD) --build-tests
	$(ASAN_ENV) $(SWIFT) test --skip-build --scratch-path .build-asan
	$(ASAN_ENV) EDGEPROXY_BIN=$(CURDIR)/.build-asan/debug/edgeproxy EDGEPROXY_RELEASE_BIN=$(CURDIR)/.build/release/edgeproxy \
	  $(PYTHON) -m pytest -q Tests/Integration

sanitize-thread: deps-test release
	$(TSAN_BUILD) --build-tests
	$(TSAN_ENV) $(SWIFT) test --skip-build --scratch-path .build-tsan
	$(TSAN_ENV) EDGEPROXY_BIN=$(CURDIR)/.build-tsan/debug/edgeproxy EDGEPROXY_RELEASE_BIN=$(CURDIR)/.build/release/edgeproxy \
	  $(PYTHON) -m pytest -q $(patsubst %,Tests/Integration/%.py,$(TSAN_E2E))

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
	@$(PYTHON) -c 'import pytest, cryptography, h2, yaml, jsonschema, openapi_spec_validator' 2>/dev/null || $(PYTHON) -m pip install -q $(PIP_TEST)

# The benchmarks' own client (bench/hsclient) is built with Go; h2o is one of the peers.
deps-bench: deps-test
	@missing=$$(for p in $(APT_BENCH); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

clean:
	rm -rf .build .build-fuzz .build-asan .build-tsan
