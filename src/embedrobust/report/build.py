"""reports/final.pdf: every number in it is read from the pipeline's artifacts, never recomputed here."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import yaml  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from .. import stages  # noqa: E402
from ..config import all_models, families, family_options, finetune_runs, severity_table  # noqa: E402

PAGE = (8.27, 11.69)  # A4 portrait, inches
LINES_PER_PAGE = 70

METRIC_DEFINITIONS = """\
All three metrics are computed per image and per perturbation family on L2-normalised embeddings
e_0 (clean image) and e_1..e_L (the family at each of its L parameter values). Range [0, 1]; 0 = perfectly robust.

Cosine metric      R_cs = mean_k (1 - cos(e_0, e_k)) / 2
Euclidean metric   R_ed = sqrt( mean_k ||e_0 - e_k||^2 / 4 )
                   On unit vectors ||e_0 - e_k||^2 = 2 - 2 cos(e_0, e_k), hence R_ed = sqrt(R_cs) exactly.
DivergenceRadius   DR = radius of the minimum enclosing ball of {e_0, e_1, ..., e_L}
                     = sqrt(1 - min_{w in simplex} w^T G w),  G the Gram matrix of the unit vectors,
                   solved exactly (away-step Frank-Wolfe on the dual, then an exact solve on the support,
                   with a duality-gap certificate). Two unit vectors at angle t: DR = sin(t / 2).

Of the five properties (bounded domain, monotonicity, optimal robustness, worst-case robustness, rotation
invariance) only DivergenceRadius has all five: the cosine and Euclidean metrics average over the parameter
range, so one damaging level is diluted (worst case) and adding a harmless level lowers them (monotonicity).
"""


def _text_pages(pdf: PdfPages, title: str, text: str) -> None:
    lines: list[str] = []
    for line in text.splitlines():
        lines.extend(textwrap.wrap(line, 100, drop_whitespace=False) or [""])
    for start in range(0, max(len(lines), 1), LINES_PER_PAGE):
        fig = plt.figure(figsize=PAGE)
        suffix = f" ({start // LINES_PER_PAGE + 1})" if len(lines) > LINES_PER_PAGE else ""
        fig.text(0.06, 0.96, title + suffix, fontsize=14, weight="bold", va="top")
        fig.text(0.06, 0.93, "\n".join(lines[start : start + LINES_PER_PAGE]), fontsize=7.2,
                 family="monospace", va="top")
        pdf.savefig(fig)
        plt.close(fig)


def _title_page(pdf: PdfPages, cfg: dict, stores: dict) -> None:
    config = cfg["config"]
    title = cfg["report"].get("title", "Embedding robustness report")
    lines = [f"Datasets: {', '.join(config['datasets'])}", "", "Models:"]
    untrained = []
    for (ds, model), attrs in stores.items():
        if ds != next(iter(config["datasets"])):
            continue
        m = attrs["model"]
        tag = m.get("pretrained_tag") or m.get("pretrained") or "none"
        lines.append(f"  {model}: {m.get('library')} {m.get('arch')}, weights: {tag}, "
                     f"embedding dim {m.get('embed_dim')}, input {m.get('input_size')}")
        if not attrs["pretrained"]:
            untrained.append(model)
    lines += ["", "Perturbation grid (family: parameter values):"]
    for fam, values in families(config).items():
        lines.append(f"  {fam}: {', '.join(f'{v:g}' for v in values)}")
    lines += ["", "Images x conditions per store: " + ", ".join(
        f"{ds}/{m}: {a['n_images']} x {len(a['conditions'])}" for (ds, m), a in stores.items())]
    if untrained:
        lines += ["", "IMPORTANT: the following models are UNTRAINED (random initialisation, `pretrained: none`):",
                  "  " + ", ".join(untrained),
                  "Their robustness and accuracy numbers show the pipeline at work; they say nothing about the",
                  "pretrained models of the same architecture. Run the full study (config/full_study.yaml) on a",
                  "GPU machine with pretrained weights for meaningful numbers."]
    _text_pages(pdf, title, "\n".join(lines))


def _robustness_figures(pdf: PdfPages, rob: pd.DataFrame) -> None:
    for ds, sub in rob.groupby("dataset", sort=True):
        long = sub.melt(id_vars=["model", "family"], value_vars=["divergence_radius", "cosine", "euclidean"],
                        var_name="metric", value_name="value")
        grid = sns.catplot(data=long, x="family", y="value", hue="model", row="metric", kind="box",
                           height=3.2, aspect=2.4, sharey=False, fliersize=1.5, linewidth=0.8)
        grid.set_xticklabels(rotation=30, ha="right")
        grid.figure.suptitle(f"{ds}: robustness per perturbation family (0 = robust)", y=1.0)
        grid.figure.tight_layout()
        pdf.savefig(grid.figure)
        plt.close(grid.figure)


def _table_page(pdf: PdfPages, title: str, df: pd.DataFrame, note: str = "") -> None:
    _text_pages(pdf, title, (note + "\n\n" if note else "") + df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def _finetune_pages(pdf: PdfPages, config: dict, root: Path, rob: pd.DataFrame, outcomes: pd.DataFrame) -> dict:
    """Robustness per family, utility and the alpha trade-off of every fine-tuned model against its base.
    Returns the tables as JSON-able records for reports/metrics.json ({} without fine-tuned models)."""
    from ..embed import open_store
    from ..finetune import compare
    from . import finetune_figures as ff

    runs = finetune_runs(config)
    if not runs:
        return {}
    clean: dict[tuple[str, str], np.ndarray] = {}  # a base is compared with each of its runs: read it once

    def clean_test(ds: str, m: str) -> np.ndarray:
        if (ds, m) not in clean:
            s = open_store(stages.store_path(root, ds, m))
            test = s["split"].values.astype(str) == "test"
            clean[(ds, m)] = s["embedding"].sel(condition="clean").values[test]
        return clean[(ds, m)]

    drift = {(ds, name): compare.embedding_drift(clean_test(ds, run["base"]), clean_test(ds, name))
             for ds in config["datasets"] for name, run in runs.items()}
    change = compare.robustness_change(runs, list(families(config)), rob)
    util = compare.utility_change(runs, outcomes, drift)
    curve = compare.tradeoff(runs, change, util)
    lines = ["Each fine-tuned model is its base trained on the train split of "
             f"{', '.join(sorted({r['dataset'] for r in runs.values()}))} (test images never seen), then evaluated by",
             "the same stages. Utility: distillation to the frozen base; robustness: the spread of an image's",
             "perturbed views. Families of the grid left out of training are held out: does robustness transfer?", ""]
    for name, run in runs.items():
        t = run["train"]
        lines.append(f"{name}: base {run['base']}, method {run['method']}, alpha {run['alpha']:g}, utility "
                     f"{t['utility']}, {t['steps']} steps x {t['batch_size']} images, lr {t['lr']:g}, trained on "
                     f"{', '.join(t['families'] or ['PGD views'])}")
    _text_pages(pdf, "Fine-tuning: runs", "\n".join(lines))
    if not curve.empty:
        for ds, g in curve.groupby("dataset", sort=True):
            fig = ff.tradeoff_figure(g)
            fig.suptitle(f"dataset: {ds}", y=1.0)
            pdf.savefig(fig)
            plt.close(fig)
    for ds, g in change.groupby("dataset", sort=True):
        fig = ff.per_family_figure(g)
        fig.suptitle(f"dataset: {ds}", y=1.0)
        pdf.savefig(fig)
        plt.close(fig)
    _table_page(pdf, "Fine-tuning: DivergenceRadius per family (test split)",
                change.drop(columns=["base", "method", "alpha"]),
                "dr_change < 0: the fine-tuned model is more robust. trained = False: a held-out family.")
    _table_page(pdf, "Fine-tuning: utility (clean test accuracy, embedding drift)",
                util.drop(columns=["base", "method", "alpha"]),
                "clean_acc_change_pt: points of clean accuracy gained (+) or lost (-); drift: mean 1 - cos between the\n"
                "clean embeddings of the fine-tuned model and of its base.")
    if not curve.empty:
        _table_page(pdf, "Fine-tuning: the robustness-utility trade-off", curve,
                    "alpha 0 = the base model. dr_trained / dr_held_out: mean DivergenceRadius over trained / held-out "
                    "families.")
    return {"robustness": change.to_dict("records"), "utility": util.to_dict("records"),
            "tradeoff": curve.to_dict("records")}


def build_report(cfg: dict, root: Path, out: Path) -> Path:
    """Write the PDF at ``out`` and the collected DVC metrics at ``out.parent / 'metrics.json'``."""
    from ..embed import open_store
    from . import regression_figures as rf
    from .attack_pages import attack_pages

    config = cfg["config"]
    datasets, models = list(config["datasets"]), list(all_models(config))
    stores = {}
    for ds in datasets:
        for m in models:
            s = open_store(stages.store_path(root, ds, m))
            stores[(ds, m)] = dict(s.attrs, conditions=s["condition"].values.astype(str).tolist(),
                                   n_images=int(s.sizes["image"]))
    rob = pd.concat([pd.read_parquet(stages.metrics_path(root, d, m)) for d in datasets for m in models],
                    ignore_index=True)
    outcomes = pd.concat([pd.read_parquet(stages.downstream_path(root, d, m)) for d in datasets for m in models],
                         ignore_index=True)
    reg = {}
    for ds in datasets:
        rdir = stages.regression_dir(root, ds)
        reg[ds] = {name: pd.read_csv(rdir / f"{name}.csv") for name in ("fits", "binned", "predictions", "accuracy_drop")}
        reg[ds]["summary"] = json.loads((rdir / "summary.json").read_text())

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    sns.set_theme(style="whitegrid", context="paper")
    # Fixed dates: the same artifacts give the same PDF bytes.
    with PdfPages(tmp, metadata={"CreationDate": None, "ModDate": None, "Producer": "embedrobust"}) as pdf:
        _title_page(pdf, cfg, stores)
        _text_pages(pdf, "Robustness metrics: definitions", METRIC_DEFINITIONS)
        from ..perturb import get_perturbation

        opts = family_options(config)
        _text_pages(pdf, "Perturbations", f"severity table: {severity_table(config)}\n\n" + "\n".join(
            f"{name}\n  parameter: {p.param}\n  values: {', '.join(f'{v:g}' for v in values)}\n"
            + (f"  options: {json.dumps(opts[name], sort_keys=True)}\n" if name in opts else "")
            + f"  {p.description}\n  reference: {p.reference}\n"
            for name, values in families(config).items() for p in [get_perturbation(name)]))
        summary = (rob.groupby(["dataset", "model", "family"], sort=True)[["divergence_radius", "cosine", "euclidean"]]
                   .mean().reset_index())
        _table_page(pdf, "Mean robustness per model and family", summary,
                    "Mean over all images of each per-image metric (data/metrics/<dataset>/<model>.parquet).")
        _robustness_figures(pdf, rob)
        acc = (outcomes.groupby(["dataset", "model", "task", "family"], sort=True)["correct"].mean()
               .mul(100).rename("accuracy_%").reset_index())
        _table_page(pdf, "Downstream accuracy per family (%)", acc,
                    "Test split, all levels of each family pooled (data/downstream/<dataset>/<model>.parquet).")
        for ds in datasets:
            r = reg[ds]
            figs = [rf.accuracy_vs_robustness(r["binned"], r["fits"], metric=m) for m in config["regression"]["metrics"]]
            figs += [rf.metric_table(r["fits"], r["predictions"]), rf.accuracy_drop_figure(r["accuracy_drop"])]
            for fig in figs:
                fig.suptitle(f"dataset: {ds}")
                pdf.savefig(fig)
            fits = r["fits"]
            pooled = fits[(fits["family"] == "pooled") & (fits["estimator"] != "logit")]
            keep = ["task", "model", "metric", "granularity", "slope", "slope_ci_low", "slope_ci_high", "r2", "n"]
            _table_page(pdf, f"{ds}: regression of performance on robustness (pooled over families)",
                        pooled[[c for c in keep if c in fits.columns]],
                        f"OLS of accuracy on robustness, {config['regression']['ci_level']:.0%} confidence intervals.\n"
                        f"Per-family fits, logistic fits and residual diagnostics: data/regression/{ds}/fits.csv")
        tuned = _finetune_pages(pdf, config, root, rob, outcomes)
        worst = attack_pages(pdf, config, root, rob, outcomes, _text_pages, _table_page)
        provenance = []
        for (ds, m), attrs in stores.items():
            # The params hash names what built the store; dvc.lock holds the content hashes of every artifact.
            provenance.append(f"store {ds}/{m}: params_sha256 {attrs['params_sha256'][:16]}")
        provenance.append("versions: " + json.dumps(next(iter(stores.values()))["versions"], sort_keys=True))
        provenance += ["", "config (validated, defaults filled):", yaml.safe_dump(config, sort_keys=False)]
        _text_pages(pdf, "Provenance and config", "\n".join(provenance))
    os.replace(tmp, out)

    metrics = {ds: reg[ds]["summary"] for ds in datasets}
    if tuned:
        metrics["finetune"] = tuned
    if worst:
        metrics["attacks"] = worst
    metrics_file = out.parent / "metrics.json"
    stages.write_json(metrics, metrics_file)
    return out
