"""Tables and numbers as the report typesets them (no workflow run)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from embedrobust.report import formatting as F
from embedrobust.report.typeset import TEXT_H, TEXT_W, Report


def _long_wide(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "model": [f"model-with-a-long-name-{i}" for i in range(n)],
        "family": ["jpeg_compression"] * n,
        "note": ["a long free-text note that would wrap in a narrow column " * 2] * n,
        **{f"metric_{k}": rng.random(n) for k in range(6)},
        "trained": rng.random(n) > 0.5,
    })


def test_a_long_table_shows_the_rows_one_page_holds_and_names_the_file_with_all_of_them(tmp_path):
    from pypdf import PdfReader

    doc = Report("t")
    doc.table(_long_wide(400), "A long table.", source="data/regression/d/fits.csv")
    log = doc.table_log[-1]
    w, h = log["table"].wrap(TEXT_W, 10 * TEXT_H)
    assert 10 < log["shown"] < 400 and w <= TEXT_W and h <= TEXT_H
    doc.build(tmp_path / "t.pdf")
    pages = [p.extract_text() for p in PdfReader(tmp_path / "t.pdf").pages]
    assert len(pages) == 1
    assert f"The first {log['shown']} of 400 rows. All rows: data/regression/d/fits.csv." in " ".join(pages[0].split())


def test_table_cells_never_wrap_and_stay_within_the_text_width():
    doc = Report("t")
    doc.table(_long_wide(5), "A wide table.")
    table = doc.table_log[-1]["table"]
    w, _ = table.wrap(TEXT_W, TEXT_H)
    assert w <= TEXT_W
    body = table._rowHeights[1:]
    assert max(body) == min(body)  # every body row one line high
    cut = table._cellvalues[1][2]
    assert cut.endswith("…")  # the free-text column gave way, not the numbers


@pytest.mark.parametrize("estimate, low, high, kind, want", [
    (0.4312, 0.21, 0.6533, "r2", "0.43 [0.21, 0.65]"),       # width 0.44: two decimals
    (0.91234, 0.8931, 0.9327, "r2", "0.912 [0.893, 0.933]"),  # width 0.04: three
    (12.3456, 8.11, 16.2, "points", "12.3 [8.1, 16.2]"),      # width 8.1 points: one
    (33.2, 25.1, 41.4, "points", "33 [25, 41]"),              # width 16: none
    (0.0, 0.0, 9e-16, "points", "0.0 [0.0, 0.0]"),            # no width: the unit's decimals
    (-0.0434, -0.05, -0.031, "dr", "−0.043 [−0.050, −0.031]"),
])
def test_an_estimate_keeps_the_digits_its_interval_supports(estimate, low, high, kind, want):
    assert F.ci(estimate, low, high, kind) == want
