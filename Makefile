# Two commands on a fresh clone:  `make demo` (the offline demo -> reports/final.pdf)  and  `make test`.
# Both create the virtual environment .venv on first use.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Deterministic PDFs and no interactive plotting backend.
export SOURCE_DATE_EPOCH ?= 0
export MPLBACKEND ?= Agg

.PHONY: setup demo test full pull clean-demo

setup: $(STAMP)

# torch is installed first, alone, so that it comes from the machine's own build (CPU or CUDA) and no other
# package's requirements pull a different one.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet "torch>=2.4" "torchvision>=0.19"
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	snakemake --workflow-profile workflow/profiles/default --cores all reports/final.pdf

test: $(STAMP)
	pytest

full: $(STAMP)
	snakemake --workflow-profile workflow/profiles/default --cores all --configfile config/full_study.yaml reports/final.pdf

# Another checkout's results: DVC restores data/ but not modification times, so Snakemake would rerun everything.
# When `dvc status` confirms that the pulled data matches this checkout's params and code, `--touch` re-stamps
# the outputs in workflow order (and records Snakemake's metadata), so later edits still rerun what they should.
# Run `make setup` once first.
pull:
	dvc pull
	@dvc status --quiet || { echo "make pull: the pulled data/ does not match this checkout's params or code" \
		"(see 'dvc status'); run 'make demo' (or 'dvc repro') to rebuild it" >&2; exit 1; }
	snakemake --workflow-profile workflow/profiles/default --cores 1 --touch reports/final.pdf

clean-demo:
	rm -rf data logs reports/final.pdf reports/metrics.json .snakemake
