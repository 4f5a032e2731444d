# biqe_lab: `make demo` and `make test` set up a fresh machine by themselves (see README.md).
VENV  := .venv
STAMP := $(VENV)/.setup-stamp
PYTEST_ARGS ?=

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

demo: setup
	$(VENV)/bin/biqe-lab demo --out out/demo

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python benchmarks/bench_pipeline.py

clean:
	rm -rf out build .pytest_cache
