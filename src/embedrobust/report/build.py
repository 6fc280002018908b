"""reports/final.pdf: a results section and its appendix, every number read from the pipeline's artifacts.

The report stage writes, beside the PDF (``out``): metrics.json (DVC metrics, :func:`metrics_json`),
config.resolved.yaml (the validated config with every default filled, which the appendix cites) and figures/
(each figure of the PDF as an SVG file, one folder per section: what ``snakemake --report`` shows).

Layout (:mod:`embedrobust.report.typeset`): page 1 says what was run and what was found, then the contents;
the results (models compared, robustness per family, accuracy against robustness, fine-tuning, worst case,
dense tasks, text robustness), then the appendix (definitions, perturbations, more figures and tables,
configuration and provenance). Tables show what fits one page and name the file holding every row.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
import yaml

from .. import stages
from ..config import (
    all_models,
    canonical_json,
    families,
    family_options,
    finetune_runs,
    severity_table,
    task_attack_plan,
)
from ..manifest import relpath
from . import formatting as F
from . import summary as S
from .typeset import TEXT_H, Report, table_page, text_pages

REGRESSION_TABLES = ("fits", "binned", "predictions", "accuracy_drop", "bootstrap", "model_family",
                     "rank_correlation", "panel_fits", "seed_spread")
METRIC_DEFINITIONS = [
    "All three metrics are computed per image and per perturbation family on L2-normalised embeddings e<sub>0</sub> "
    "(the clean image) and e<sub>1</sub> … e<sub>L</sub> (the family at each of its L levels). Range [0, 1]; "
    "0 = perfectly robust.",
    "<b>Cosine metric</b> R<sub>cs</sub> = mean<sub>k</sub> (1 − cos(e<sub>0</sub>, e<sub>k</sub>)) / 2.",
    "<b>Euclidean metric</b> R<sub>ed</sub> = sqrt(mean<sub>k</sub> ‖e<sub>0</sub> − e<sub>k</sub>‖² / 4). "
    "On unit vectors ‖e<sub>0</sub> − e<sub>k</sub>‖² = 2 − 2 cos(e<sub>0</sub>, e<sub>k</sub>), hence "
    "R<sub>ed</sub> = sqrt(R<sub>cs</sub>) exactly.",
    "<b>DivergenceRadius</b> DR = the radius of the minimum enclosing ball of {e<sub>0</sub>, e<sub>1</sub>, …, "
    "e<sub>L</sub>} = sqrt(1 − min wᵀGw), the minimum over w in the probability simplex, G the Gram matrix of the "
    "unit vectors, solved exactly (away-step Frank-Wolfe on the dual, then an exact solve on the support, with a duality-gap "
    "certificate). Two unit vectors at angle t: DR = sin(t / 2).",
    "Of the five properties (bounded domain, monotonicity, optimal robustness, worst-case robustness, rotation "
    "invariance) only DivergenceRadius has all five: the cosine and Euclidean metrics average over the parameter "
    "range, so one damaging level is diluted (worst case) and adding a harmless level lowers them (monotonicity).",
]


# -- reading the artifacts ------------------------------------------------------------------------------------
def read_regression(rdir: Path) -> dict:
    """The regression stage's tables of one dataset (:data:`REGRESSION_TABLES`) and its summary.json."""
    out = {name: pd.read_csv(rdir / f"{name}.csv") for name in REGRESSION_TABLES if (rdir / f"{name}.csv").is_file()}
    for name in REGRESSION_TABLES:
        out.setdefault(name, pd.DataFrame())
    out["summary"] = json.loads((rdir / "summary.json").read_text())
    return out


def _weights(attrs: dict, runs: dict, model: str) -> str:
    from ..rehearsal import is_rehearsal_weights

    m = attrs["model"]
    if model in runs:
        return f"fine-tuned from {runs[model]['base']}"
    if not attrs["pretrained"]:
        return "none (UNTRAINED)"
    tag = m.get("pretrained_tag") or m.get("pretrained") or "none"
    return f"{tag} (REHEARSAL)" if is_rehearsal_weights(m.get("weights_file")) else str(tag)


def _finetune_tables(config: dict, root: Path, rob: pd.DataFrame, outcomes: pd.DataFrame) -> dict:
    """The fine-tuned models against their bases (``embedrobust.finetune.compare``): per-family robustness change,
    utility (clean accuracy per task, embedding drift) and the alpha trade-off; {} without fine-tuning."""
    from ..embed import open_store
    from ..finetune import compare

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
    return {"runs": runs, "change": change, "utility": util, "tradeoff": compare.tradeoff(runs, change, util)}


# -- the sections ---------------------------------------------------------------------------------------------
def _summary_section(doc: Report, ctx: dict) -> None:
    config, stores, runs = ctx["config"], ctx["stores"], ctx["runs"]
    doc.paragraph(ctx["title"], "title")
    doc.paragraph("Robustness of vision-model embeddings to perturbations and its relation to downstream "
                  "accuracy. Every number below is read from the pipeline's artifacts (data/, reports/metrics.json).",
                  "subtitle")
    first = next(iter(config["datasets"]))
    untrained = [m for (ds, m), a in stores.items() if ds == first and not a["pretrained"]]
    from ..rehearsal import is_rehearsal_weights

    rehearsal = [m for (ds, m), a in stores.items() if ds == first and a["pretrained"]
                 and is_rehearsal_weights(a["model"].get("weights_file"))]
    if untrained:
        doc.warning("IMPORTANT: the following models are UNTRAINED (random initialisation, `pretrained: none`): "
                    + ", ".join(untrained) + ". Their robustness and accuracy numbers show the pipeline at work; they "
                    "say nothing about the pretrained models of the same architecture. Run the full study "
                    "(config/full_study.yaml) on a GPU machine with pretrained weights for meaningful numbers.")
    if rehearsal:
        doc.warning("REHEARSAL: the weights of the following models are GENERATED stand-ins (random values in the "
                    "real files' layout, embedrobust.rehearsal), loaded through the real pretrained path to test the "
                    "run: " + ", ".join(rehearsal) + ". Their numbers say nothing about the pretrained models. Fill "
                    "the Hugging Face cache with the real weights (README, 'The full study') and rerun.")
    doc.heading("Summary")
    doc.heading("What was run", level=1)
    doc.bullets(_run_facts(ctx))
    rows = []
    for (ds, m), a in stores.items():
        if ds != first:
            continue
        spec = a["model"]
        size = spec.get("input_size")
        rows.append({"model": m, "weights": _weights(a, runs, m), "architecture": f"{spec.get('library')} "
                     f"{spec.get('arch')}", "dim": str(spec.get("embed_dim")),
                     "input": "×".join(str(v) for v in size) if isinstance(size, list) else str(size)})
    doc.table(pd.DataFrame(rows), "The models compared.", header={"dim": "embedding\ndim", "input": "input\n(px)"})
    doc.heading("Findings", level=1)
    for ds in ctx["datasets"]:
        if len(ctx["datasets"]) > 1:
            doc.paragraph(f"<b>{escape(ds)}</b>", markup=True)
        doc.bullets(_findings(ctx, ds))
    doc.heading("Contents", level=1, toc=False)
    doc.contents()


def _run_facts(ctx: dict) -> list[str]:
    config, stores, runs = ctx["config"], ctx["stores"], ctx["runs"]
    facts = []
    for ds in ctx["datasets"]:
        a = next(a for (d, _), a in stores.items() if d == ds)
        n_test = ctx["n_test"].get(ds, 0)
        facts.append(f"<b>Dataset</b> {escape(ds)}: {a['n_images']} images ({n_test} test images score every number below; "
                     f"the rest train the probes and the fine-tuning).")
    fams = families(config)
    n_cond = sum(len(v) for v in fams.values())
    facts.append(f"<b>Grid</b>: {len(fams)} perturbation families × their levels = {n_cond} perturbed conditions "
                 f"per image, plus clean: " + "; ".join(f"{escape(f)} ({len(v)})" for f, v in fams.items()) + ".")
    base = [escape(m) for m in config["models"]]
    tuned = f"; fine-tuned: {', '.join(escape(m) for m in runs)}" if runs else ""
    facts.append(f"<b>Models</b> ({len(ctx['models'])}): {', '.join(base)}{tuned}. Downstream tasks: "
                 + ", ".join(S.task_label(t) for t in config["downstream"]["tasks"])
                 + f" (headline numbers: {S.task_label(ctx['task'])}).")
    if runs:
        by = {}
        for r in runs.values():
            by.setdefault((r["base"], r["method"]), []).append(r)
        for (b, method), rs in by.items():
            trained = [escape(f) for f in rs[0]["train"]["families"] or []]
            held = [escape(f) for f in fams if f not in (rs[0]["train"]["families"] or [])]
            alphas = ", ".join(f"{r['alpha']:g}" for r in rs)
            facts.append(f"<b>Fine-tuning</b>: {len(rs)} run{'s' if len(rs) > 1 else ''} of {escape(b)}, method "
                         f"{escape(method)}, "
                         f"α ∈ {{{alphas}}}, {rs[0]['train']['steps']} steps; "
                         f"trained on {', '.join(trained) or 'PGD views'}"
                         + (f"; held out: {', '.join(held)}" if held else "") + ".")
    attacks = []
    for f in fams:
        if f in ("embed_attack",):
            attacks.append(f"{f} in the grid at eps {', '.join(F.eps_label(v) for v in fams[f])}")
    ta = task_attack_plan(config)
    if ta["eps"]:
        attacks.append(f"PGD on the linear probe at eps {', '.join(F.eps_label(v) for v in ta['eps'])} for "
                       f"{len(ta['models'])} models")
    if ctx["dense_plan"]["datasets"]:
        attacks.append(f"dense heads on {escape(', '.join(ctx['dense_plan']['datasets']))} for "
                       f"{len(ctx['dense_plan']['models'])} models under the grid and SegPGD/DepthPGD")
    if attacks:
        facts.append("<b>Attacks</b>: " + "; ".join(attacks) + ".")
    reg = ctx["rconf"]
    facts.append(f"<b>Inference</b>: OLS of accuracy on robustness per model at three granularities (image, "
                 f"{reg['n_bins']} quantile bins, family level); {reg['bootstrap']} image-bootstrap resamples "
                 f"(seed {config['seed']}) give every interval, at {reg['ci_level']:.0%}.")
    return facts


def _findings(ctx: dict, ds: str) -> list[str]:
    r = ctx["reg"][ds]
    summary, task = r["summary"], ctx["task"]
    models = [m for m in ctx["models"]]
    out = [f"<b>Accuracy on robustness</b> ({S.task_label(task)}, {S.HEADLINE_GRANULARITY} fits pooled over "
           f"families, range over the models with {ctx['ci_level']:.0%} intervals):"]
    out += [(1, s) for s in S.metric_sentences(summary, ds, models, task)]
    out.append(S.damaging_sentence(summary, r["model_family"], ds, models, task))
    out.append(S.ranking_sentence(summary, ctx["boards"][ds], task))
    ft = ctx["finetune"]
    if ft:
        out += S.finetune_sentences(ft["tradeoff"][ft["tradeoff"]["dataset"] == ds], ft["utility"], task)
    if not ctx["worst"].empty:
        out += S.worst_case_sentences(ctx["worst"][ctx["worst"]["dataset"] == ds])
    return [s for s in out if s and (not isinstance(s, tuple) or s[1])]


def _models_section(doc: Report, ctx: dict, ds: str) -> None:
    from . import regression_figures as rf

    r, task = ctx["reg"][ds], ctx["task"]
    board = ctx["boards"][ds]
    doc.paragraph(f"Models ranked by their mean DivergenceRadius over the test images and every family of the grid "
                  f"(lower = more robust). The accuracy columns are the {S.task_label(task)}'s.")
    doc.table(S.leaderboard_cells(board), f"{ds}: leaderboard.",
              note=f"mean DR: mean over test images and families, with its image-bootstrap interval "
                   f"({ctx['n_boot']} resamples); drop: clean accuracy minus accuracy under a family, mean over the "
                   f"grid's families, with its paired interval; worst family: the largest such drop.",
              source=relpath("regression", "model_family", dataset=ds),
              header={"rank": "#", "mean DR": f"mean DR\n[{ctx['ci_level']:.0%} CI]", "clean": "clean\nacc. (%)",
                      "drop": f"mean drop (points)\n[{ctx['ci_level']:.0%} CI]", "drop rank": "drop\nrank",
                      "worst family": "worst family\n(drop, points)"})
    fig = rf.robustness_vs_accuracy(r["model_family"], ctx["palette"], tasks=ctx["tasks"], ci_level=ctx["ci_level"])
    doc.figure(fig, f"{ds}: every (model, family) as one point: its mean DivergenceRadius over the test images "
               f"against its accuracy under the family (mean over the family's levels), one colour per model, one "
               f"marker per family, with the OLS line pooled over all points and its {ctx['ci_level']:.0%} band, "
               f"drawn over the observed range only.", name=f"{ds} robustness vs accuracy")


def _robustness_section(doc: Report, ctx: dict, ds: str) -> None:
    from . import regression_figures as rf

    rob = ctx["rob"][ctx["rob"]["dataset"] == ds]
    fig = rf.robustness_per_family(rob, ctx["palette"], metrics=ctx["metrics"])
    doc.figure(fig, f"{ds}: per-image robustness of each model under each perturbation family, test split "
               "(box: quartiles; whiskers: 1.5 IQR; 0 = robust), one panel per metric.",
               name=f"{ds} robustness per family", max_height=TEXT_H * 0.9)


def _regression_section(doc: Report, ctx: dict, ds: str) -> None:
    from . import regression_figures as rf

    r, task = ctx["reg"][ds], ctx["task"]
    summary = r["summary"]
    boot = summary.get("bootstrap", {})
    rows = []
    for m in ctx["models"]:
        key = S.model_key(summary, ds, m)
        for metric in summary.get("metrics", []):
            row = {"model": m, "metric": rf.metric_label(metric)}
            for gran in ("bin", "level"):
                v = S._get(boot, "r2", key, task, metric, gran)
                row[f"r2_{gran}"] = F.ci(v["estimate"], v["ci_low"], v["ci_high"], "r2") if v else F.DASH
            for gran in ("bin", "level"):
                v = S._get(boot, "heldout_mae_points", key, task, metric, gran)
                row[f"mae_{gran}"] = F.ci(v["estimate"], v["ci_low"], v["ci_high"], "points") if v else F.DASH
            rows.append(row)
    ci = f"{ctx['ci_level']:.0%}"
    doc.paragraph(f"Does a more robust representation keep more of its accuracy? For each model, accuracy "
                  f"({S.task_label(task)}, test split) is regressed on robustness pooled over the grid's families, "
                  f"at two granularities: quantile bins of images and one point per (family, level). Held-out-family "
                  f"MAE: each family in turn is left out of the fit and its accuracy predicted from its mean "
                  f"robustness.")
    doc.table(pd.DataFrame(rows), f"{ds}: how well each metric predicts accuracy ({S.task_label(task)}).",
              note=f"[{ci} image-bootstrap intervals]. Every task, the image-level fits and per-family fits: "
                   f"{relpath('regression', 'bootstrap', dataset=ds)} and fits.csv.",
              source=relpath("regression", "bootstrap", dataset=ds),
              header={"r2_bin": "R², bins", "r2_level": "R², levels", "mae_bin": "held-out MAE,\nbins (points)",
                      "mae_level": "held-out MAE,\nlevels (points)"})
    fig = rf.accuracy_vs_robustness(r["binned"], r["fits"], "divergence_radius", ctx["palette"], ctx["ci_level"],
                                    tasks=[task])
    doc.figure(fig, f"{ds}: binned {S.task_label(task)} accuracy against DivergenceRadius per model: each family's "
               f"bins and bin OLS line (its colour), and the line pooled over families (dashed), each over its own "
               f"bins' range, with {ci} bands. Other tasks and metrics: appendix.", name=f"{ds} accuracy vs DR")
    ctx["fig_avr"][ds] = doc.n_figures
    fig = rf.accuracy_drop_figure(r["model_family"], ctx["palette"], tasks=ctx["tasks"], ci_level=ctx["ci_level"])
    doc.figure(fig, f"{ds}: accuracy drop from clean under each family (mean over its levels), per model and task, "
               f"with paired {ci} image-bootstrap intervals.", name=f"{ds} accuracy drop")
    rc = r["rank_correlation"]
    if not rc.empty:
        pooled = rc[rc["family"] == "pooled"]
        cells = pd.DataFrame({
            "task": pooled["task"].map(S.task_label), "metric": pooled["metric"].map(rf.metric_label),
            "models": pooled["n_models"].astype(int).astype(str),
            "spearman": [F.ci(e, lo, hi, "rho", True) for e, lo, hi in
                         zip(pooled["spearman"], pooled["spearman_ci_low"], pooled["spearman_ci_high"])],
            "kendall": [F.ci(e, lo, hi, "rho", True) for e, lo, hi in
                        zip(pooled["kendall"], pooled["kendall_ci_low"], pooled["kendall_ci_high"])]})
        doc.table(cells, f"{ds}: across models, does the less robust model lose more accuracy? Rank correlation "
                  f"between mean robustness and mean accuracy drop.",
                  note=f"Positive: the ranking by robustness and by accuracy drop agree. [{ci} image-bootstrap "
                       f"intervals]. Per family: {relpath('regression', 'rank_correlation', dataset=ds)}.",
                  header={"models": "models", "spearman": f"Spearman ρ\n[{ci} CI]",
                          "kendall": f"Kendall τ-b\n[{ci} CI]"})
    spread = seed_spread_rows(r["seed_spread"], task)
    if not spread.empty:
        doc.table(spread, f"{ds}: spread across seeds ({S.task_label(task)}): each statistic over the replicates "
                  f"of the stochastic parts (perturbation draws, probe split, fine-tuning).",
                  note=f"mean ± sample SD [min, max] over the seeds. Every statistic, task and family: "
                       f"{relpath('regression', 'seed_spread', dataset=ds)}. Cross-model comparisons use the first "
                       f"seed only.",
                  source=relpath("regression", "seed_spread", dataset=ds),
                  header={"spread": "mean ± SD [min, max]", "seeds": "seeds"})


# (statistic, metric, family, granularity) -> label of the report's seed table, in its order
SPREAD_ROWS = {
    ("clean_accuracy", "", "", ""): "clean accuracy (%)",
    ("accuracy_drop_points", "", "all", ""): "mean accuracy drop (points)",
    ("r2", "divergence_radius", "", "level"): "R², DR, levels",
    ("r2", "divergence_radius", "", "bin"): "R², DR, bins",
    ("r2_difference", "divergence_radius-cosine", "", "level"): "R² DR − cosine, levels",
    ("heldout_mae_points", "divergence_radius", "", "level"): "held-out MAE, DR, levels (points)",
}


def seed_spread_rows(spread: pd.DataFrame, task: str) -> pd.DataFrame:
    """The report's seed table of one task from ``seed_spread.csv``: model, statistic, "mean ± SD [min, max]",
    seeds; empty without replicates."""
    if spread is None or spread.empty:
        return pd.DataFrame()
    sub = spread[spread["task"] == task].fillna({"metric": "", "family": "", "granularity": ""})
    rows = []
    for model, g in sub.groupby("model", sort=False):
        for _, r in g.iterrows():
            label = SPREAD_ROWS.get((r["statistic"], r["metric"], r["family"], r["granularity"]))
            if label is None:
                continue
            scale = 100.0 if r["statistic"] == "clean_accuracy" else 1.0
            d = 1 if scale == 100.0 or r["statistic"].endswith("_points") else 3
            text = (f"{F.num(scale * r['mean'], d)} ± {F.num(scale * r['std'], d)} "
                    f"[{F.num(scale * r['min'], d)}, {F.num(scale * r['max'], d)}]")
            order = list(SPREAD_ROWS.values()).index(label)
            rows.append({"model": model, "statistic": label, "spread": text,
                         "seeds": str(r["seeds"]).replace(";", ", "), "_order": order})
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows)
    out["_m"] = pd.factorize(out["model"])[0]
    return out.sort_values(["_m", "_order"], kind="stable").drop(columns=["_m", "_order"]).reset_index(drop=True)


def _finetune_section(doc: Report, ctx: dict) -> None:
    from . import finetune_figures as ff

    ft = ctx["finetune"]
    runs, change, util, curve = ft["runs"], ft["change"], ft["utility"], ft["tradeoff"]
    doc.heading("Fine-tuning for robustness")
    doc.paragraph(f"Each fine-tuned model is its base trained on the train split of "
                  f"{', '.join(sorted({r['dataset'] for r in runs.values()}))} (test images never seen) with the "
                  "utility term (distillation to the frozen base) plus α times the robustness term (the spread of an "
                  "image's perturbed views), then evaluated by the same stages. Families of the grid left out of "
                  "training are held out: does robustness transfer to them?")
    for ds in ctx["datasets"]:
        g = curve[curve["dataset"] == ds] if not curve.empty else curve
        if not g.empty:
            doc.figure(ff.tradeoff_figure(g, ctx["palette"]), f"{ds}: the robustness-utility trade-off: clean linear-"
                       "probe accuracy against mean DivergenceRadius over the trained (left) and held-out (right) "
                       "families, through the α of each run (α = 0: the base).", name=f"{ds} tradeoff")
        c = change[change["dataset"] == ds]
        if not c.empty:
            doc.figure(ff.per_family_figure(c, ctx["palette"]), f"{ds}: mean DivergenceRadius per family, test "
                       "split, each base beside its fine-tuned models (the numbers: reports/metrics.json, "
                       "finetune.robustness).", name=f"{ds} finetune per family")
        if not g.empty:
            rows = []
            for _, r in g.iterrows():
                row = {"model": r["model"], "alpha": f"{r['alpha']:g}", "dr_t": F.unit(r["dr_trained"], "dr"),
                       "dr_h": F.unit(r["dr_held_out"], "dr")}
                for task in ctx["tasks"]:
                    u = util[(util["dataset"] == ds) & (util["model"] == r["model"]) & (util["task"] == task)]
                    base = util[(util["dataset"] == ds) & (util["base"] == r["model"]) & (util["task"] == task)]
                    if len(u):
                        row[task] = (f"{F.unit(u['clean_acc_finetuned_%'].iloc[0], 'percent')} "
                                     f"({F.unit(u['clean_acc_change_pt'].iloc[0], 'points', True)})")
                    elif len(base):
                        row[task] = F.unit(base["clean_acc_base_%"].iloc[0], "percent")
                    else:
                        row[task] = F.DASH
                u = util[(util["dataset"] == ds) & (util["model"] == r["model"])]
                row["drift"] = F.unit(u["drift_1_minus_cos"].iloc[0], "drift") if len(u) else F.DASH
                rows.append(row)
            header = {"alpha": "α", "dr_t": "DR, trained\nfamilies", "dr_h": "DR, held-out\nfamilies",
                      "drift": "drift\n(1 − cos)"}
            header.update({t: f"clean {S.task_label(t)}\nacc. % (Δ points)" for t in ctx["tasks"]})
            doc.table(pd.DataFrame(rows), f"{ds}: fine-tuning at each α: mean DivergenceRadius (test split) and "
                      "clean accuracy per task, change against the base in parentheses.",
                      note="drift: mean 1 − cos between the clean test embeddings of the fine-tuned model and of its "
                           "base. Every number: reports/metrics.json (finetune).",
                      header=header)


def _appendix_definitions(doc: Report, ctx: dict) -> None:
    from ..perturb import get_perturbation
    from .attack_pages import ATTACK_TAGS

    config = ctx["config"]
    doc.heading("Appendix A. Robustness metrics", new_page=True)
    for p in METRIC_DEFINITIONS:
        doc.paragraph(p, markup=True)
    doc.heading("Appendix B. Perturbations")
    opts = family_options(config)
    doc.paragraph(f"Severity table: {severity_table(config)}. Every family is applied to every image at each of its "
                  "levels (the parameter values below).")
    items = []
    for name, values in families(config).items():
        p = get_perturbation(name)
        shown = [F.eps_label(v) for v in values] if name in ATTACK_TAGS else [f"{v:g}" for v in values]
        text = (f"<b>{escape(name)}</b> — {escape(p.param)}: {', '.join(shown)}"
                + (f"; options {json.dumps(opts[name], sort_keys=True)}" if name in opts else "")
                + f". {escape(p.description)} <i>{escape(p.reference)}</i>")
        items.append(text)
    doc.bullets(items, markup=True)


def _appendix_results(doc: Report, ctx: dict) -> None:
    from . import regression_figures as rf

    doc.heading("Appendix D. More regression figures and tables")
    for ds in ctx["datasets"]:
        r, task = ctx["reg"][ds], ctx["task"]
        others = [t for t in ctx["tasks"] if t != task]
        if others:
            doc.figure(rf.accuracy_vs_robustness(r["binned"], r["fits"], "divergence_radius", ctx["palette"],
                                                 ctx["ci_level"], tasks=others),
                       f"{ds}: binned accuracy against DivergenceRadius, the other tasks (as Figure "
                       f"{ctx['fig_avr'].get(ds, '')}).", name=f"{ds} accuracy vs DR other tasks")
        for metric in ctx["metrics"]:
            if metric == "divergence_radius":
                continue
            doc.figure(rf.accuracy_vs_robustness(r["binned"], r["fits"], metric, ctx["palette"], ctx["ci_level"],
                                                 tasks=[task]),
                       f"{ds}: binned {S.task_label(task)} accuracy against the {rf.metric_label(metric)}.",
                       name=f"{ds} accuracy vs {metric}")
        mf = r["model_family"]
        mf = mf[(mf["task"] == task) & (mf["family"] != "pooled")]
        cols = {"model": mf["model"], "family": mf["family"]}
        for metric in ctx["metrics"]:
            cols[metric] = mf[f"mean_{metric}"].map(lambda v: F.unit(v, "dr"))
        cols["acc"] = (100 * mf["accuracy"]).map(lambda v: F.unit(v, "percent"))
        cols["drop"] = [F.ci(e, lo, hi, "points") for e, lo, hi in
                        zip(mf["drop_points"], mf["drop_ci_low"], mf["drop_ci_high"])]
        header = {m: f"{rf.metric_label(m)}\n(mean)" for m in ctx["metrics"]}
        header.update({"acc": f"{S.task_label(task)}\nacc. (%)", "drop": "drop (points)\n[CI]"})
        doc.table(pd.DataFrame(cols), f"{ds}: mean robustness over the test images and {S.task_label(task)} accuracy "
                  "per model and family.", source=relpath("regression", "model_family", dataset=ds), header=header)
        pf = r["panel_fits"]
        if not pf.empty:
            cells = pd.DataFrame({
                "task": pf["task"].map(S.task_label), "metric": pf["metric"].map(rf.metric_label),
                "estimator": pf["estimator"],
                "slope": [F.ci(e, lo, hi, "slope", True) for e, lo, hi in
                          zip(pf["slope"], pf["slope_ci_low"], pf["slope_ci_high"])],
                "converged": pf["converged"].astype(bool)})
            doc.table(cells, f"{ds}: across models, accuracy drop (points) on robustness per (model, family, level): "
                      "OLS with model and family fixed effects, and a mixed model with a random intercept per model.",
                      note="Intervals: cluster(model, family) t for ols_fe, model-based normal for mixedlm; "
                           "notes and bootstrap intervals in the CSV.",
                      source=relpath("regression", "panel_fits", dataset=ds),
                      header={"slope": f"slope (points/unit)\n[{ctx['ci_level']:.0%} CI]"})


def _provenance(doc: Report, ctx: dict, config_path: str, config_sha: str) -> None:
    doc.heading("Appendix C. Configuration and provenance")
    doc.paragraph(f"The validated config with every default filled: {config_path} (sha256 {config_sha[:16]}…). "
                  "dvc.lock holds the content hash of every artifact; each embedding store records the hash of the "
                  "params that built it:")
    rows = [{"store": relpath("embed", "store", dataset=ds, model=m), "images": str(a["n_images"]),
             "conditions": str(len(a["conditions"])), "params sha256": a["params_sha256"][:16] + "…"}
            for (ds, m), a in ctx["stores"].items()]
    doc.table(pd.DataFrame(rows), "Embedding stores.")
    versions = next(iter(ctx["stores"].values()))["versions"]
    doc.paragraph("Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".", "small")


# -- the report -----------------------------------------------------------------------------------------------
def build_report(cfg: dict, root: Path, out: Path, workers: int = 1) -> Path:
    """Write the PDF at ``out`` and, beside it, metrics.json, config.resolved.yaml and figures/. ``workers``:
    processes converting figures (the bytes do not depend on it)."""
    from ..config import dense_plan
    from ..embed import open_store
    from ..regression.fit import regression_config
    from .attack_pages import attack_pages, worst_case_table
    from .palette import study_palette

    # Snakemake hands the stage its config as sorted-key JSON (config.canonical_json), the CLI's --params in file
    # order: the report orders everything as the sorted form does, so both give the same bytes
    config = json.loads(canonical_json(cfg["config"]))
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
    reg = {ds: read_regression(stages.regression_dir(root, ds)) for ds in datasets}
    rconf = regression_config(config)  # the regression stage's defaults under the params
    ci_level, n_boot = float(rconf["ci_level"]), int(rconf["bootstrap"])
    tasks = [t for t in config["downstream"]["tasks"] if t in set(outcomes["task"])]
    task = S.primary_task(tasks)
    dr_ci = S.dr_intervals(rob, n_boot, int(config["seed"]), ci_level)
    ta_plan = task_attack_plan(config)
    task_attack = pd.concat([pd.read_parquet(p) for p in (stages.task_attack_path(root, d, m)
                                                           for d in ta_plan["datasets"] for m in ta_plan["models"])
                             if p.is_file()], ignore_index=True) if ta_plan["eps"] else pd.DataFrame()
    ctx = {
        "config": config, "title": cfg["report"].get("title", "Embedding robustness report"), "stores": stores,
        "datasets": datasets, "models": models, "runs": finetune_runs(config), "rob": rob, "reg": reg,
        "ci_level": ci_level, "n_boot": n_boot, "rconf": rconf, "tasks": tasks, "task": task,
        "metrics": list(rconf["metrics"]), "palette": study_palette(config), "dense_plan": dense_plan(config),
        "n_test": {ds: int(g.loc[g["split"] == "test", "image"].nunique()) if "split" in g.columns else 0
                   for ds, g in rob.groupby("dataset")},
        "boards": {ds: S.leaderboard(reg[ds]["model_family"], dr_ci[dr_ci["dataset"] == ds], task)
                   for ds in datasets},
        "finetune": _finetune_tables(config, root, rob, outcomes),
        "worst": worst_case_table(rob, outcomes, task_attack), "fig_avr": {},
    }

    doc = Report(ctx["title"], workers=workers)
    _summary_section(doc, ctx)
    doc.heading("Models compared")
    for ds in datasets:
        if len(datasets) > 1:
            doc.heading(ds, level=1)
        _models_section(doc, ctx, ds)
    doc.heading("Robustness per perturbation family")
    for ds in datasets:
        _robustness_section(doc, ctx, ds)
    doc.heading("Accuracy against robustness")
    for ds in datasets:
        if len(datasets) > 1:
            doc.heading(ds, level=1)
        _regression_section(doc, ctx, ds)
    if ctx["finetune"]:
        _finetune_section(doc, ctx)
    worst = attack_pages(doc, config, root, rob, outcomes, ctx["palette"])
    # The "Text robustness" section (text_pages.py) draws into the report through the PdfPages-like hooks:
    # doc.savefig(fig), text_pages(doc, title, text), table_page(doc, title, df, note).
    from .text_pages import text_robustness_pages

    with doc.optional_section("Text robustness"):
        text = text_robustness_pages(doc, config, root, text_pages, table_page)
    _appendix_definitions(doc, ctx)
    resolved = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    config_file = out.parent / "config.resolved.yaml"
    _provenance(doc, ctx, _display(config_file, root), hashlib.sha256(resolved.encode()).hexdigest())
    _appendix_results(doc, ctx)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    doc.build(tmp)
    os.replace(tmp, out)
    config_file.write_text(resolved, encoding="utf-8")
    _write_figures(doc, out.parent / "figures")
    tuned = ({"robustness": ctx["finetune"]["change"].to_dict("records"),
              "utility": ctx["finetune"]["utility"].to_dict("records"),
              "tradeoff": ctx["finetune"]["tradeoff"].to_dict("records")} if ctx["finetune"] else {})
    stages.write_json(metrics_json(datasets, reg, tuned, worst, text), out.parent / "metrics.json")
    return out


def _display(path: Path, root: Path) -> str:
    """A path as the reader finds it: relative to the project root when inside it (reports/...), so the PDF does
    not depend on where the project lies."""
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def _write_figures(doc: Report, target: Path) -> None:
    """Every figure of the PDF as reports/figures/<section>/<NN_name>.svg, replacing the previous set whole (a
    figure the config no longer makes must not linger for the HTML report)."""
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    for section, stem, svg in doc.figures:
        path = tmp / section / f"{stem}.svg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(svg)
    tmp.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def metrics_json(datasets: list[str], reg: dict, tuned: dict, worst: dict, text: dict | None = None) -> dict:
    """reports/metrics.json (DVC metrics): per dataset its regression summary.json -- pooled R^2, held-out MAE,
    accuracy drops, and the inference behind them: ``cov_type`` (how each granularity's intervals are made),
    ``se_ratio_cluster_hc3`` (image-clustered / HC3 SE of the pooled image fits), ``bootstrap`` (image-bootstrap
    intervals of R^2 and held-out MAE per metric and of the divergence_radius - cosine / - euclidean R^2
    differences), ``rank_correlation`` (Spearman / Kendall across models with intervals) and
    ``panel_slopes_points_per_unit`` -- then "finetune", "attacks" and "text_robustness" where those ran. Strict
    JSON: the writer turns NaN into null."""
    metrics = {ds: reg[ds]["summary"] for ds in datasets}
    for ds in datasets:
        missing = [k for k in ("cov_type", "bootstrap", "rank_correlation") if k not in metrics[ds]]
        if missing:
            from ..errors import DataError

            raise DataError(f"{relpath('regression', 'summary', dataset=ds)} has no {', '.join(missing)}; re-run the regression "
                            "stage (it predates the bootstrap).")
    if tuned:
        metrics["finetune"] = tuned
    if worst:
        metrics["attacks"] = worst
    if text:
        metrics["text_robustness"] = text
    return metrics
