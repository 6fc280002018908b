# Two commands on a fresh clone:  `make demo` (the offline demo -> reports/final.pdf)  and  `make test`.
# Both create the virtual environment .venv on first use.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Deterministic PDFs and no interactive plotting backend.
export SOURCE_DATE_EPOCH ?= 0
export MPLBACKEND ?= Agg

SNAKEMAKE := snakemake --workflow-profile workflow/profiles/default --cores all
# `make share CONFIG="config/full_study.yaml"`: the --configfile files of the run to share (empty: params.yaml).
CONFIG ?=

.PHONY: setup demo test generate full ssl share pull rehearsal gpu-check clean-demo

setup: $(STAMP)

# torch is installed first, alone, so that it comes from the machine's own build (CPU or CUDA) and no other
# package's requirements pull a different one.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet "torch>=2.4" "torchvision>=0.19"
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(SNAKEMAKE) reports/final.pdf

# The linter first (ruff, pyproject.toml's rules), then the suite on two workers (pytest-xdist): the unit tests run
# single-threaded, so a second core halves them. Each test module is one unit of work, and the tests of the
# session-built project are one together (tests/conftest.py), so it is built once.
TEST_WORKERS ?= 2
test: $(STAMP)
	ruff check src tests benchmarks
	pytest -n $(TEST_WORKERS)

# dvc.yaml and the stage table of docs/ARCHITECTURE.md, written from the stage manifest (src/embedrobust/manifest.py)
# after an edit to it (`make test` fails while they are not current).
generate: $(STAMP)
	python -m embedrobust.generate

# A study config is the whole config of its run (the Snakefile reads params.yaml only when no --configfile is
# given). The target comes first: --configfile takes every word after it as another config file.
full: $(STAMP)
	$(SNAKEMAKE) reports/final.pdf --configfile config/full_study.yaml

ssl: $(STAMP)
	$(SNAKEMAKE) reports/final.pdf --configfile config/ssl_benchmark.yaml

# After any Snakemake run (make demo / full / ssl): record dvc.lock for what it built and push it. A run of another
# config is written to params.yaml first (DVC reads its params there); commit params.yaml and dvc.lock after.
# Like pull, it needs `make setup` once.
share:
	embedrobust share $(if $(strip $(CONFIG)),--configfile $(CONFIG))

# Another checkout's results: DVC restores data/ but not modification times, so Snakemake would rerun everything.
# When `dvc status` confirms that the pulled data matches this checkout's params and code, `--touch` re-stamps
# the outputs in workflow order (and records Snakemake's metadata), so later edits still rerun what they should.
# Run `make setup` once first.
pull:
	dvc pull
	@dvc status --quiet || { echo "make pull: the pulled data/ does not match this checkout's params or code" \
		"(see 'dvc status'); run 'make demo' (or 'dvc repro') to rebuild it" >&2; exit 1; }
	snakemake --workflow-profile workflow/profiles/default --cores 1 --touch reports/final.pdf

# Both shipped study configs end to end on this CPU, through the real pretrained-loading path: generated weights
# in a local Hugging Face cache and datasets in their real layouts (embedrobust.rehearsal), a size overlay only.
rehearsal: $(STAMP)
	pytest -m rehearsal tests/rehearsal

# On a machine with a CUDA device: embed throughput, the perturbation grid and fine-tuning steps against the bare
# forward of ViT-B/16, as one table.
gpu-check: $(STAMP)
	python benchmarks/gpu_suite.py --device cuda

clean-demo:
	rm -rf data logs reports/final.pdf reports/metrics.json .snakemake
