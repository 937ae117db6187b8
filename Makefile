# Thin front over CMake. README's two commands: `make demo` and `make test`.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan
PREFIX ?= /usr/local

.PHONY: all deps build build-asan test test-normal test-asan demo bench soak fuzz install clean format

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIPGUARD_WERROR=ON \
	    -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@# another prefix than the normal build's, so that the install test sees the units and
	@# man pages name the paths the build was given, not ones written into them
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSIPGUARD_WERROR=ON -DSIPGUARD_SANITIZE=ON \
	    -DCMAKE_INSTALL_PREFIX=/opt/sipguard >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

test-normal: build
	@echo "== tests: normal build (-Wall -Wextra -Werror)"
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	@echo "== tests: AddressSanitizer + UndefinedBehaviorSanitizer build"
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

test: test-normal test-asan

demo: build
	@./scripts/demo.sh $(BUILD)

bench: build
	@./bench/run.sh $(BUILD)
	@./bench/edge.sh $(BUILD)
	@./bench/overlay.sh $(BUILD)

# an edge's memory while its tables turn over (SOAK_SECONDS, default 180; SOAK_RATE, 5000)
soak: build
	@./bench/soak.sh $(BUILD)

# programs, man pages, docs and systemd units under PREFIX; configuration in /etc/sipguard,
# kept when it is already there; DESTDIR stages the whole tree (for packaging)
install: build
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD)

fuzz: deps
	@./scripts/fuzz.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz demo-out
