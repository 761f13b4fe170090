# microvim — one binary, a library of parts.  `make`, `make test`, `make demo`.
# SANITIZE=1 builds into build/asan with -fsanitize=address,undefined.

CC      ?= cc
PKGS    := libevent libevent_pthreads libevent_openssl jansson sqlite3 libpq libssl libcrypto libpcap
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wformat=2 \
           -Werror=implicit-function-declaration -Isrc -MMD -MP
LDLIBS  := -lpthread

ifeq ($(SANITIZE),1)
BUILD   := build/asan
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
BUILD   := build
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  += $(PKG_CFLAGS) $(shell pkg-config --cflags libvirt 2>/dev/null)
# libvirt is dlopen'ed by its driver (src/drivers/libvirt.c); only its tests link it.
LIBVIRT_LIBS := $(shell pkg-config --libs libvirt 2>/dev/null)
LDLIBS  += $(PKG_LIBS)
ifeq ($(SANITIZE),1)
# ASan's xdr_* interceptors look their real functions up when the program starts; libvirt,
# dlopen'ed later, brings libtirpc and its first RPC would call NULL. Load it from the start.
TIRPC_LIBS := $(shell pkg-config --libs libtirpc 2>/dev/null)
ifneq ($(TIRPC_LIBS),)
LDLIBS  += -Wl,--no-as-needed $(TIRPC_LIBS) -Wl,--as-needed
endif
endif

LIB_SRC := $(wildcard src/common/*.c src/core/*.c src/node/*.c src/drivers/*.c src/tools/*.c)
CLI_SRC := $(wildcard src/cli/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
# The web dashboard (ui/, served by the core at /ui/): embedded in the binary as a generated
# C source, one for every build dir (like build/vnf); its object is part of the library.
UI_FILES := $(sort $(wildcard ui/*.html ui/*.css ui/*.js ui/*.svg))
UI_GEN   := build/gen/ui_files.c
LIB_OBJ  += $(UI_GEN:%.c=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test test-unit demo clean bench format ui-screenshots
all: $(BUILD)/microvim $(UNIT_BIN)

# Rebuilt from scratch: `ar r` keeps members of deleted sources, which would shadow
# the new definitions of their symbols.
$(BUILD)/libmicrovim.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/microvim: $(CLI_OBJ) $(BUILD)/libmicrovim.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(BUILD)/libmicrovim.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libmicrovim.a $(LDLIBS) $(LIBVIRT_LIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# The list of files, rewritten only when it changes: a file removed from ui/ regenerates too.
$(UI_GEN): $(UI_FILES) build/gen/ui_files.list scripts/embed-ui
	scripts/embed-ui $@ $(UI_FILES)
build/gen/ui_files.list: FORCE
	@mkdir -p $(@D)
	@echo '$(UI_FILES)' | cmp -s - $@ || echo '$(UI_FILES)' >$@
.PHONY: FORCE

deps:
	scripts/install-deps

# The layout checked (scripts/check-layers: no circle, nothing upward), then the whole
# suite, twice: a normal build and an ASan+UBSan build.
test: deps
	$(MAKE) all
	$(MAKE) SANITIZE=1 all
	scripts/check-layers build
	tests/run build build/asan

test-unit: all
	tests/run --unit-only build

demo: deps
	$(MAKE) all
	scripts/demo

bench: all
	bench/instantiate

# docs/ui/*.png, the README's pictures of the dashboard: written by its browser test.
ui-screenshots: all
	MICROVIM_UI_SCREENSHOTS=$(CURDIR)/docs/ui MICROVIM_BIN=$(CURDIR)/build/microvim \
		python3 tests/integration/run.py -k test_ui_in_browser

clean:
	rm -rf build

# The xl STAND-IN (tests only, not linked into microvim; tests/xl-standin/): its config and
# kernel checker (Xen's own parser, libxlutil, reads every config the xen driver writes;
# test_xen parses them with it too), its fake xenstore client, and the maker of the ELF
# files with Xen notes that stand for PV/PVH kernels.
XLUTIL_LIBS := $(shell pkg-config --libs xlutil 2>/dev/null || echo -lxlutil)
XL_STANDIN := $(BUILD)/tests/xlcheck $(BUILD)/tests/xenstore-standin $(BUILD)/tests/xl-mkkernel
all: $(XL_STANDIN)
$(BUILD)/tests/xlcheck: tests/xl-standin/xlcheck.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(XLUTIL_LIBS)
$(BUILD)/tests/xenstore-standin: tests/xl-standin/xenstore.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<
$(BUILD)/tests/xl-mkkernel: tests/xl-standin/mkkernel.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<
$(BUILD)/tests/test_xen: LDLIBS += $(XLUTIL_LIBS)
$(BUILD)/tests/test_xen: | $(XL_STANDIN)

# The sample Micro-VNF (vnf/): a freestanding 32-bit kernel (PVH note + multiboot header)
# booted by `qemu-system-x86_64 -kernel build/vnf/hello`. Built with the machine's gcc and
# ld, never with the sanitizers, and always into build/vnf whatever BUILD is.
VNF_CFLAGS := -m32 -march=i686 -std=c11 -Os -Wall -Wextra -ffreestanding -fno-builtin -fno-pic -fno-pie \
              -fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none
VNF_LDFLAGS := -nostdlib -static -no-pie -s -Wl,-T,vnf/hello.ld -Wl,--build-id=none \
               -Wl,-z,max-page-size=0x1000 -Wl,-z,noexecstack
all: build/vnf/hello
build/vnf/hello: vnf/boot.S vnf/hello.c vnf/hello.ld
	@mkdir -p $(@D)
	$(CC) $(VNF_CFLAGS) $(VNF_LDFLAGS) -o $@ vnf/boot.S vnf/hello.c
	@test $$(stat -c %s $@) -lt 65536 || { echo "$@ is 64 KiB or more" >&2; rm -f $@; exit 1; }

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)

# ---- fuzzing: `make fuzz` builds the libFuzzer targets tests/fuzz/fuzz_*.c with clang under
# ASan+UBSan into build/fuzz (its own objects, never the gcc build's); `tests/fuzz/run [SECONDS]`
# runs each for a bounded time over its corpus. Needs clang and libclang-rt-14-dev.
FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# -fno-inline and no sibling calls: every frame shows in a report's stack.
FUZZ_CFLAGS  := -O1 -g -fno-inline -fno-optimize-sibling-calls -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow \
                -Isrc -Itests/fuzz -MMD -MP $(FUZZ_SAN) $(PKG_CFLAGS)
FUZZ_LIB_SRC := $(wildcard src/common/*.c src/core/*.c src/drivers/*.c src/tools/pcap*.c src/tools/amqp.c)
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o) $(UI_GEN:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_SUPPORT := $(FUZZ_BUILD)/obj/tests/fuzz/fuzzcore.o
# fuzz_pcap only once the capture reader (src/tools/pcapread.c) is there.
FUZZ_TARGETS := $(filter-out $(if $(wildcard src/tools/pcapread.c),,$(FUZZ_BUILD)/fuzz_pcap), \
                $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_PCAP_LIBS := $(shell pkg-config --libs libpcap 2>/dev/null || echo -lpcap)

.PHONY: fuzz
fuzz: $(FUZZ_TARGETS)

$(FUZZ_BUILD)/libmicrovim-fuzz.a: $(FUZZ_LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_SUPPORT) $(FUZZ_BUILD)/libmicrovim-fuzz.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS) $(FUZZ_PCAP_LIBS) -lpthread

# Library objects get coverage instrumentation too (fuzzer-no-link), not libFuzzer's main.
$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
.PRECIOUS: $(FUZZ_BUILD)/obj/tests/fuzz/%.o

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_SUPPORT:.o=.d) $(FUZZ_TARGETS:$(FUZZ_BUILD)/%=$(FUZZ_BUILD)/obj/tests/fuzz/%.d)
