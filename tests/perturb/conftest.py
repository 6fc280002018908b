from pathlib import Path

import numpy as np
import pytest

REF_PATH = Path(__file__).with_name("reference.npz")


@pytest.fixture(scope="session")
def ref():
    with np.load(REF_PATH) as z:
        return {k: z[k] for k in z.files}



@pytest.fixture(scope="session")
def ref_cifar():
    with np.load(Path(__file__).with_name("reference_cifar.npz")) as z:
        return {k: z[k] for k in z.files}
