"""Shared fixtures: tiny configs, a fetched tiny dataset."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from workflow_helpers import work_unit

REPO = Path(__file__).resolve().parents[1]

# The smallest config that exercises every stage: 3 digits per class, two tiny untrained models, two families,
# one fine-tuned model, one dense dataset, a task attack.
TINY = {
    "seed": 0,
    "seeds": [0],  # one run (tests/regression/test_seeds.py runs two); dvc.yaml reads the key, so it stays
    "device": "cpu",
    "datasets": {"digits": {"source": "demo-digits", "n_per_class": 3, "image_size": 32, "test_fraction": 0.5}},
    "models": {
        "clip": {"library": "open_clip", "arch": "embedrobust-tiny-clip", "pretrained": "none"},
        "vit": {"library": "timm", "arch": "vit_tiny_patch16_224", "pretrained": "none", "image_size": 32},
    },
    "perturbations": {
        "families": {
            "gaussian_noise": {"levels": [0.05, 0.2]},
            "jpeg_compression": {"levels": [50, 10]},
        }
    },
    "embed": {"batch_size": 8, "chunk_images": 8},
    "downstream": {
        "tasks": ["linear_probe", "knn", "zero_shot"],
        "linear_probe": {"C": [1.0], "val_fraction": 0.3, "max_iter": 500},
        "knn": {"k": 3},
        "zero_shot": {"templates": "simple"},
    },
    "regression": {"metrics": ["divergence_radius", "cosine", "euclidean"], "n_bins": 3, "ci_level": 0.9,
                   "min_bin_size": 2},
    # one fine-tuned CLIP: trained on gaussian_noise, jpeg_compression held out
    "finetune": {"base": ["clip"], "alpha": [0.5], "families": ["gaussian_noise"], "steps": 2, "batch_size": 4,
                 "utility": "whitened"},
    # dense tasks on one model; the task attack on every model (fine-tuned included)
    "dense": {"datasets": {"shapes": {"source": "synthetic-shapes", "n": 16, "image_size": 32, "cell": 8}},
              "models": ["vit"], "eps": [0.01568627450980392],
              "options": {"steps": 2, "lr": [0.1], "train_steps": [10]}},
    "task_attack": {"eps": [0.01568627450980392], "options": {"steps": 2}},
    "text_robustness": {"families": {}},  # off (tests/text runs it); dvc.yaml reads the section, so it stays
    "report": {"title": "test"},
}


# Units of work under pytest-xdist (workflow_helpers.work_unit): the project's tests together, else one module each.
if importlib.util.find_spec("xdist") is not None:  # the hook exists only with the plugin

    def pytest_xdist_make_scheduler(config, log):
        """Units of work by ``work_unit`` (xdist's own ``loadgroup`` marks do not reach its scheduler under
        pytest 9, whose node ids are no longer strings it can append a group to)."""
        from xdist.scheduler import LoadScopeScheduling

        class ByWorkUnit(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return work_unit(nodeid)

        return ByWorkUnit(config, log)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Single-threaded torch in the test process: on a shared 2-core machine, contended worker threads slow models
    down 10x. Acts only where torch is loaded already (a test module that never imports it does not pay for it);
    workflow tests run their stages in subprocesses with the threads Snakemake gives them."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_config() -> dict:
    return copy.deepcopy(TINY)


@pytest.fixture(scope="session")
def tiny_params() -> dict:
    """TINY for module- and session-scoped fixtures (do not mutate)."""
    return copy.deepcopy(TINY)


@pytest.fixture(scope="session")
def project(tmp_path_factory, tiny_params) -> Path:
    """A git + DVC copy of the project with a tiny params.yaml, run once to reports/final.pdf (shared by the
    workflow and sharing tests: the build takes minutes)."""
    from workflow_helpers import build_project

    return build_project(tmp_path_factory.mktemp("project"), tiny_params)


@pytest.fixture
def repo() -> Path:
    return REPO


def _write_params(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def write_params():
    """write_params(path, config) -> path: a params.yaml on disk."""
    return _write_params
