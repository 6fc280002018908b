"""The suite's units of work under pytest-xdist (tests/conftest.py): the session-built project's tests together."""

import subprocess
import sys

from workflow_helpers import PROJECT_MODULES, REPO, work_unit


def test_xdist_groups_cover_every_user_of_the_project():
    # collect the whole suite in a fresh process and list the modules of the tests that use `project`
    script = (
        "import pytest, sys\n"
        "class P:\n"
        "    mods = set()\n"
        "    def pytest_collection_modifyitems(self, items):\n"
        "        P.mods = {i.nodeid.split('::')[0] for i in items if 'project' in getattr(i, 'fixturenames', ())}\n"
        "pytest.main(['--co', '-q', '-p', 'no:cacheprovider', 'tests'], plugins=[P()])\n"
        "print(sorted(P.mods))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == str(sorted(PROJECT_MODULES))


def test_a_project_test_and_a_module_map_to_their_units():
    assert work_unit("tests/test_workflow.py::test_x[a::b]") == "project"
    assert work_unit("tests/metrics/test_meb.py::test_y") == "tests/metrics/test_meb.py"
