# tern: the two commands are `make run` and `make check` (see README.md).
BUILD ?= build
MESON_OPTS ?= -Dwerror=true
PREFIX ?= /usr/local

.PHONY: all run check install deps clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

deps:
	scripts/install-deps

run: deps
	$(MAKE) all
	scripts/run-demo

check: deps
	scripts/check

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 0755 $(BUILD)/tern $(DESTDIR)$(PREFIX)/bin/tern
	install -m 0644 docs/tern.1 $(DESTDIR)$(PREFIX)/share/man/man1/tern.1
	install -m 0644 docs/tern.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/tern.conf.5

clean:
	rm -rf build build-asan build-fuzz
