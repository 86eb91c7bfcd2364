# dltc: `make demo` runs the chess pipeline against the local replica into DuckDB;
# `make test` runs every test. Both install what they need on a fresh Debian 12
# machine (apt packages only if missing, a virtual environment in .venv, the build).

PYTHON   ?= python3
VENV     := .venv
VPY      := $(VENV)/bin/python
BUILD    := build/release
ASAN     := build/asan
ASAN_SITE := build/asan-site
SHELL    := /bin/bash
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

APT_PKGS := gcc make pkg-config python3-dev python3-venv libcurl4-openssl-dev \
            nginx-light libnginx-mod-http-echo openssl wrk \
            clang libclang-rt-14-dev clang-tidy cppcheck clang-format libdeflate-dev libbrotli-dev zlib1g-dev

SOURCES := $(shell find csrc src tests/c tests/fuzz -type f \( -name '*.c' -o -name '*.h' -o -name '*.py' -o -name '*.pyi' -o -name 'meson.build' \) 2>/dev/null) meson.build meson.options pyproject.toml

.PHONY: all setup build build-asan test test-c test-py test-asan test-repeat demo bench clean lint fuzz
all: build

# ---- set-up -------------------------------------------------------------------

.stamp-apt: Makefile
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@touch $@

$(VENV)/.stamp-deps: .stamp-apt pyproject.toml
	[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q meson-python meson ninja
	$(VPY) -m pip install -q --no-build-isolation -Cbuild-dir=$(BUILD) '.[test,ray]'
	@touch $@

setup: $(VENV)/.stamp-deps

# ---- build --------------------------------------------------------------------

$(VENV)/.stamp-build: $(VENV)/.stamp-deps $(SOURCES)
	$(VPY) -m pip install -q --no-build-isolation --no-deps -Cbuild-dir=$(BUILD) .
	@touch $@

build: $(VENV)/.stamp-build

# The ASan+UBSan build: the same meson project in its own build dir, and a package
# tree of symlinks (Python sources + the sanitized extension) put first on PYTHONPATH.
$(ASAN)/build.ninja: $(VENV)/.stamp-deps
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH meson setup $(ASAN) -Dsanitize=true -Dbuildtype=debug -Doptimization=1 --wipe >/dev/null 2>&1 || \
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH meson setup $(ASAN) -Dsanitize=true -Dbuildtype=debug -Doptimization=1

build-asan: $(ASAN)/build.ninja
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH ninja -C $(ASAN) >/dev/null
	@rm -rf $(ASAN_SITE) && mkdir -p $(ASAN_SITE)/dltc
	@for f in src/dltc/*; do case $$f in *_native.c|*__pycache__) ;; *) ln -s $(CURDIR)/$$f $(ASAN_SITE)/dltc/ ;; esac; done
	@ln -s $(CURDIR)/$$(ls $(ASAN)/_native*.so) $(ASAN_SITE)/dltc/

ASAN_ENV := PYTHONPATH=$(CURDIR)/$(ASAN_SITE) \
            LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libstdc++.so)" \
            ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            DLTC_EXPECT_ASAN=1

# ---- tests --------------------------------------------------------------------

test-c: build build-asan
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH meson test -C $(BUILD) --print-errorlogs -q
	ASAN_OPTIONS=detect_leaks=1 PATH=$(CURDIR)/$(VENV)/bin:$$PATH meson test -C $(ASAN) --print-errorlogs -q

test-py: build
	$(VPY) -m pytest -q

test-asan: build-asan
	$(ASAN_ENV) $(VPY) -m pytest -q -p no:cacheprovider

test: lint test-c test-py test-asan fuzz
# CI time: make test fuzzes the decoder 30 s (the corpus in build/ grows run over run);
# `make fuzz-decode` alone keeps 60 s (FUZZ_DECODE_SECONDS=600 for a long manual run).
test: FUZZ_DECODE_SECONDS = 30

# `make test-repeat N=10`: the tests marked `timing` (they depend on wall-clock time,
# scheduling or a race; see pyproject.toml), N runs in a row on the release build, all
# run even after a failure; exits non-zero if any run failed. PYTEST_ARGS adds options,
# e.g. PYTEST_ARGS='-k 429' to loop one test.
N ?= 5
PYTEST_ARGS ?=
.PHONY: test-repeat
test-repeat: build
	@fails=0; for i in $$(seq 1 $(N)); do \
	  t0=$$(date +%s); \
	  if $(VPY) -m pytest -q -m timing -p no:cacheprovider $(PYTEST_ARGS) > build/test-repeat-$$i.log 2>&1; \
	  then r=ok; else r=FAILED; fails=$$((fails + 1)); fi; \
	  echo "test-repeat $$i/$(N): $$r in $$(( $$(date +%s) - t0 ))s: $$(tail -1 build/test-repeat-$$i.log)"; \
	  [ $$r = ok ] || grep -E '^(FAILED|ERROR) ' build/test-repeat-$$i.log | sed 's/^/    /'; \
	done; \
	echo "test-repeat: $$fails of $(N) runs failed (logs: build/test-repeat-*.log)"; [ $$fails = 0 ]

# ---- static analysis ------------------------------------------------------------
# Configuration: .clang-format, .clang-tidy (checked in); cppcheck flags below.

C_FILES := $(wildcard csrc/*.c csrc/*.h tests/c/*.c tests/fuzz/*.c) src/dltc/_native.c

lint: build
	clang-format --dry-run -Werror $(C_FILES)
	@# one file per run: clang-tidy 14 reports a false va_list finding when given several at once
	@for f in $(wildcard csrc/*.c); do \
	  clang-tidy -p $(BUILD) --quiet $$f 2>&1 | grep -v "warnings generated"; \
	  [ $${PIPESTATUS[0]} = 0 ] || { echo "clang-tidy: $$f"; exit 1; }; \
	done
	cppcheck --enable=warning,performance,portability --error-exitcode=1 --inline-suppr --std=c11 \
	  -I csrc -I $(BUILD) --suppress=missingIncludeSystem -q csrc/

format:
	clang-format -i $(C_FILES)

# ---- fuzz: engine header parsers (Retry-After, ETag, Link) -------------------------
# `make fuzz-headers FUZZ_SECONDS=10`: libFuzzer + ASan + UBSan; new inputs go to build/.
.PHONY: fuzz-headers
FUZZ_SECONDS ?= 10
FUZZ_DECODE_SECONDS ?= 60
FUZZ_HEADERS_SRC := tests/fuzz/fuzz_headers.c csrc/limit.c csrc/http.c csrc/error.c

build/fuzz_headers: $(FUZZ_HEADERS_SRC) csrc/limit.h csrc/http.h csrc/error.h | .stamp-apt
	@mkdir -p build
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined -Icsrc $(FUZZ_HEADERS_SRC) -lm -o $@

fuzz-headers: build/fuzz_headers
	@mkdir -p build/corpus_headers
	ASAN_OPTIONS=detect_leaks=1 ./build/fuzz_headers -max_total_time=$(FUZZ_SECONDS) \
	  -max_len=512 -print_final_stats=1 build/corpus_headers tests/fuzz/corpus_headers

# ---- fuzz: content decoding (gzip/br/identity) of untrusted bodies -------------
# `make fuzz-inflate FUZZ_SECONDS=10`; seeds are made by the target's first runs.
FUZZ_INFLATE_SRC := tests/fuzz/fuzz_inflate.c csrc/inflate.c csrc/arrow.c csrc/error.c

build/fuzz_inflate: $(FUZZ_INFLATE_SRC) csrc/inflate.h csrc/arrow.h csrc/error.h | .stamp-apt
	@mkdir -p build
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined -Icsrc $(FUZZ_INFLATE_SRC) -ldeflate -lbrotlidec -lz -lm -o $@

.PHONY: fuzz-inflate
fuzz: fuzz-inflate fuzz-headers
fuzz-inflate: build/fuzz_inflate
	@mkdir -p build/corpus_inflate
	ASAN_OPTIONS=detect_leaks=1 ./build/fuzz_inflate -max_total_time=$(FUZZ_SECONDS) \
	  -max_len=65536 -rss_limit_mb=1024 -print_final_stats=1 build/corpus_inflate

# ---- the main job ---------------------------------------------------------------

demo: build
	$(VPY) -m dltc.demo

clean:
	rm -rf build $(VENV) .stamp-apt

# ---- fuzzing: decoder (libFuzzer + ASan + UBSan, core sources linked directly) ----
# Seeds are read in place from the shared test data; new inputs go to build/fuzz/.
TESTDATA ?= $(CURDIR)/../shared/testdata
FUZZ_DECODE_SRC := tests/fuzz/fuzz_decode.c csrc/decode.c csrc/schema.c csrc/arrow.c csrc/num.c csrc/error.c

build/fuzz/fuzz_decode: $(FUZZ_DECODE_SRC) $(wildcard csrc/*.h) | .stamp-apt
	@mkdir -p build/fuzz
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -Icsrc \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -o $@ $(FUZZ_DECODE_SRC) -lm

fuzz-decode: build/fuzz/fuzz_decode
	@mkdir -p build/fuzz/corpus-decode
	ASAN_OPTIONS=detect_leaks=1 build/fuzz/fuzz_decode -max_total_time=$(FUZZ_DECODE_SECONDS) \
	  -max_len=32768 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	  build/fuzz/corpus-decode $(TESTDATA)/json-test-suite/test_parsing $(TESTDATA)/chesscom

.PHONY: fuzz-decode
fuzz: fuzz-decode
