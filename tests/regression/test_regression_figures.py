"""Report figures draw from the regression tables, deterministically."""

import io

import pytest
from matplotlib.figure import Figure

from embedrobust.regression import fit_all
from embedrobust.report.regression_figures import accuracy_drop_figure, accuracy_vs_robustness, metric_table


@pytest.fixture(scope="module")
def result(toy):
    return fit_all(*toy.tables(), toy.CFG)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40, metadata={"Software": None})
    return buf.getvalue()


def test_accuracy_vs_robustness_draws_points_and_lines_per_family(result):
    fig = accuracy_vs_robustness(result.binned, result.fits)
    ax = fig.axes[0]
    f = result.fits
    n_lines = ((f["granularity"] == "bin") & (f["metric"] == "divergence_radius") & f["slope"].notna()).sum()
    assert len(ax.collections) == 4  # one scatter per family
    assert len(ax.lines) == n_lines  # one line per estimable bin fit (families and pooled)


def test_metric_table_lists_every_task_metric_pair(result):
    fig = metric_table(result.fits, result.predictions)
    texts = {t.get_text().get_text() for t in fig.axes[0].tables[0].get_celld().values()}
    assert {"knn · divergence_radius", "knn · cosine"} <= texts


def test_figures_are_deterministic(result):
    a = _png(accuracy_drop_figure(result.accuracy_drop))
    b = _png(accuracy_drop_figure(result.accuracy_drop))
    assert a == b
