# pkgcache: packaging and the demonstration. `make help` lists the targets.
# The Python tests run with ./scripts/test.sh (see README.md).

SHELL := /bin/sh
BUILD ?= build
VERSION := $(shell dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null || sed -n '1s/.*(\(.*\)).*/\1/p' debian/changelog)
DEB := $(BUILD)/pkgcache_$(VERSION)_all.deb
CHANGES := $(BUILD)/pkgcache_$(VERSION)_$(shell dpkg --print-architecture).changes

.PHONY: help deb lint demo test-deb clean

help:
	@echo "make deb       build $(DEB) (installs the build dependencies with apt-get; root)"
	@echo "make lint      lintian on the built package: 0 errors, 0 warnings"
	@echo "make demo      the main job: build, install into a fresh Debian 12 root, provision twice"
	@echo "make test-deb  the .deb tests (tests/deb, needs root and the Debian archive)"
	@echo "make clean     remove $(BUILD)/"

deb:
	sh scripts/build-deb.sh $(abspath $(BUILD))

lint: deb
	@command -v lintian >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends lintian
	lintian --fail-on error,warning --display-level '>=warning' $(CHANGES)
	@echo "lintian: 0 errors, 0 warnings"

demo:
	sh scripts/demo.sh

test-deb:
	./scripts/test.sh tests/deb

clean:
	rm -rf $(BUILD)
