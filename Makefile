# The two set-up commands (README): `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# On these machines `torch==2.13.0` resolves to the CPU wheel that lies on disk; an unpinned `torch` would pull a
# multi-GB CUDA build. Override e.g. `make test TORCH_SPEC="torch==2.13.0 --index-url <your CPU index>"`.
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo-out

.PHONY: install demo test test-all lint clean

$(VENV)/.installed: setup.cfg pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=69" wheel
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[all,dev,demo]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m edgecnn.demo --out $(DEMO_OUT)

test: install
	$(PY) -m pytest -q -n 2 --dist loadgroup

test-all: install
	$(PY) -m pytest -q -n 2 --dist loadgroup -m "not gpu and not tensorrt"

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
