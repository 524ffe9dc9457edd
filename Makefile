# The two set-up commands are `make run` and `make test`; both install what is missing first.
JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PY ?= /usr/bin/python3
FUZZ_TARGETS := $(basename $(notdir $(wildcard tests/fuzz/*_fuzz.cc)))

.PHONY: deps build build-asan build-fuzz run test unit e2e unit-asan e2e-asan fuzz bench format clean

deps:
	@bash scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPROXENOS_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

build-fuzz: deps
	@CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DPROXENOS_FUZZ=ON -DPROXENOS_TESTS=OFF -DCMAKE_CXX_COMPILER=clang++ >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS) --target $(FUZZ_TARGETS)

run: build
	@scripts/run-quickstart $(BUILD)

unit: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

e2e: build
	@PROXENOS_BUILD=$(abspath $(BUILD)) $(PY) -m pytest -q -p no:cacheprovider tests/e2e

unit-asan: build-asan
	@cd $(ASAN_BUILD) && ctest --output-on-failure -j$(JOBS)

e2e-asan: build-asan
	@PROXENOS_BUILD=$(abspath $(ASAN_BUILD)) PROXENOS_SANITIZED=1 $(PY) -m pytest -q -p no:cacheprovider -m "not slow" tests/e2e

fuzz: build-fuzz
	@scripts/run-fuzz $(FUZZ_BUILD)

test: unit e2e unit-asan e2e-asan fuzz

bench: build
	@bash scripts/install-deps --bench
	@bench/run $(abspath $(BUILD))

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
