# ec1 — thin wrapper over Meson/Ninja. On a fresh Debian 12 machine, as root:
#   make run    install missing packages, build library, CLI, init, root and guest kernel, run a VM
#   make test   the same set-up, then every test suite
PREFIX ?= /usr/local
BUILD ?= build
ASAN_BUILD ?= build-asan
RUN_CMD ?= uname -a
FUZZ_SECONDS ?= 600

.PHONY: all deps kernel build asan run test unit-test vm-test bench fuzz install clean format debian-root

all: build

deps:
	@scripts/install-deps

kernel: deps
	@scripts/build-kernel >/dev/null

$(BUILD)/build.ninja:
	meson setup $(BUILD) --prefix=$(PREFIX)

build: deps kernel $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false

asan: deps kernel $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

run: build
	@echo "make run: ec1 run -- $(RUN_CMD)"
	@scripts/ec1-vm run -- $(RUN_CMD)

test: build asan
	@tests/run

# Each libFuzzer target for FUZZ_SECONDS (make test runs each for 20 s).
fuzz: deps
	@scripts/fuzz $(FUZZ_SECONDS)

bench: build
	@bench/boot
	@bench/fs
	@bench/blk
	@bench/iomodes
	@bench/net
	@bench/netboot
	@bench/vsock
	@bench/exec

# A Debian 12 tree for `ec1 run --root` (and the VM test that uses one when it exists).
debian-root:
	@scripts/make-debian-root

install: build
	DESTDIR=$(DESTDIR) meson install -C $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
