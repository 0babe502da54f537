# venue-gateway: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
NODE_BIN := node_modules/.bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps system-deps build test test-unit test-integration test-e2e demo bench soak vectors clean

all: build

# npm ci only when the lock file changed: native addons (better-sqlite3) build from source.
# npm writes node_modules/.package-lock.json itself, so an `npm ci` run by hand counts too.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci
	touch $@

deps: node_modules/.package-lock.json

system-deps:
	@if [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null; then :; else \
	  echo "installing mosquitto (apt-get)"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y mosquitto; \
	fi
	@if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then :; else \
	  echo "installing postgresql (apt-get)"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y postgresql; \
	fi
	@if command -v chromium >/dev/null; then :; else \
	  echo "installing chromium (apt-get): the fleet page test renders it headless"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium; \
	fi

build: deps
	$(NODE_BIN)/tsc -p tsconfig.json
	chmod +x dist/cli/main.js

test: system-deps build
	$(NODE_BIN)/tsc -p tsconfig.test.json
	$(NODE_BIN)/vitest run

# The suite in three parts: unit (pure code and SQLite files, in process: seconds), integration
# (a broker, the CLI or the radio stack in processes) and e2e (whole units and collectors).
test-unit: deps
	$(NODE_BIN)/vitest run test/unit

test-integration: system-deps build
	$(NODE_BIN)/vitest run test/integration

test-e2e: system-deps build
	$(NODE_BIN)/vitest run test/e2e

demo: system-deps build
	node dist/cli/main.js demo

# strace counts the pipeline's fsyncs (the figure is left out without it)
bench: system-deps build
	@command -v strace >/dev/null || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y strace; }
	node dist/bench/run.js

# Rewrites docs/vectors from a fresh live capture (gateway, collector, Mosquitto); commit the result
vectors: system-deps build
	VGW_WRITE_VECTORS=1 $(NODE_BIN)/vitest run test/e2e/protocol-spec.test.ts

soak: system-deps build
	VGW_SOAK=1 $(NODE_BIN)/vitest run

clean:
	rm -rf dist node_modules bench/report.json
