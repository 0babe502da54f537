# venue-gateway: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
NODE_BIN := node_modules/.bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps system-deps demo-deps docs build lint test test-unit test-integration test-e2e demo bench soak vectors release clean

all: build

# npm ci only when the lock file changed: native addons (better-sqlite3) build from source.
# npm writes node_modules/.package-lock.json itself, so an `npm ci` run by hand counts too.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci
	touch $@

deps: node_modules/.package-lock.json

# Every Debian package the suite uses, and why: mosquitto (the broker every test starts); postgresql
# (the collector's fleet store, run as the postgres user on a free port); chromium (the fleet page,
# rendered headless); bluez-test-tools (btvirt, the cross-check); socat (TCP and serial transports);
# faketime (clock steps, power cuts two days later); gcc (the power-cut recorder and btvirt's AF_ALG
# stand-in, compiled at test time); strace (the benchmarks' fsync counts); openssl (certificates for
# mutual TLS); systemd (systemd-analyze on the unit); python3-cbor2, -paho-mqtt, -cryptography (the
# Python consumer in clients/python, run by Debian's /usr/bin/python3); mosquitto-dev and
# libmosquitto-dev (the headers of the broker's shared-subscription guard, built by the mTLS test).
TEST_PACKAGES := mosquitto postgresql chromium bluez-test-tools socat faketime gcc strace openssl \
  systemd python3 python3-cbor2 python3-paho-mqtt python3-cryptography mosquitto-dev libmosquitto-dev
DEMO_PACKAGES := mosquitto
# `make soak` also cross-builds a release for arm64 (Pi 4/5, Zero 2 W): a cross compiler.
SOAK_PACKAGES := crossbuild-essential-arm64

# Installs only what dpkg does not already have, so a second run asks apt nothing.
define apt_install
	@command -v dpkg-query >/dev/null || { echo "dpkg-query not found: install these Debian packages by hand: $(1)"; exit 1; }
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing with apt-get:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

system-deps:
	$(call apt_install,$(TEST_PACKAGES))

demo-deps:
	$(call apt_install,$(DEMO_PACKAGES))

# dist/build-info.json: the commit built, which every status reports (core/software/build-info.ts).
build: deps
	$(NODE_BIN)/tsc -p tsconfig.json
	chmod +x dist/cli/main.js
	@commit=$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown); \
	if [ "$$commit" != unknown ] && [ -n "$$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$$commit-dirty"; fi; \
	printf '{"commit":"%s"}\n' "$$commit" > dist/build-info.json

test: system-deps build lint
	$(NODE_BIN)/vitest run

# Types of the tests too, then typescript-eslint with type information (eslint.config.js): floating
# promises, unused code; zero warnings.
lint: deps
	$(NODE_BIN)/tsc -p tsconfig.test.json
	$(NODE_BIN)/eslint --max-warnings 0 .

# The suite in three parts: unit (pure code and SQLite files, in process: seconds), integration
# (a broker, the CLI or the radio stack in processes) and e2e (whole units and collectors).
test-unit: deps
	$(NODE_BIN)/vitest run test/unit

test-integration: system-deps build
	$(NODE_BIN)/vitest run test/integration

test-e2e: system-deps build
	$(NODE_BIN)/vitest run test/e2e

demo: demo-deps build
	node dist/cli/main.js demo

# strace counts the pipeline's fsyncs (the figure is left out without it)
# The tarball a unit runs and its signed manifest, in release/ (RELEASE_KEY: the release key file;
# RELEASE_ARCH=arm64 cross-compiles the native addons for a Pi 4/5 or Zero 2 W, with crossbuild-essential-arm64).
release: build
	bash packaging/release.sh

bench: system-deps build
	node dist/bench/run.js
	node dist/bench/docs-table.js

# The generated documents: docs/configuration.md from the config schema (a test fails when they
# disagree); docs/benchmarks.md's figures are rewritten by `make bench` itself.
docs: build
	node dist/cli/main.js config docs > docs/configuration.md

# Rewrites docs/vectors from a fresh live capture (gateway, collector, Mosquitto); commit the result
vectors: system-deps build
	VGW_WRITE_VECTORS=1 $(NODE_BIN)/vitest run test/e2e/protocol-spec.test.ts

soak: system-deps build
	$(call apt_install,$(SOAK_PACKAGES))
	VGW_SOAK=1 $(NODE_BIN)/vitest run

clean:
	rm -rf dist node_modules bench/report.json
