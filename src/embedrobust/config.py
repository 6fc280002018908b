"""The study's config (params.yaml): loading, validation, defaults, the perturbation grid and per-stage subsets.

Every stage reads only its own subset of the config (``stage_config``). Snakemake rules pass that subset as their
``params`` and DVC stages list the same sections, so editing one parameter reruns only the stages that read it.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from .core import CLEAN, Condition, canonical_json, sha256  # noqa: F401 (the config's names for them)
from .errors import ConfigError
from .manifest import dvc_params
from .perturb.spec import check_values as _check_values

SCHEMA_RESOURCE = "schemas/params.schema.yaml"


@lru_cache(maxsize=1)
def schema() -> dict:
    """The JSON schema of params.yaml (shipped with the package; workflow/schemas links to it)."""
    text = resources.files("embedrobust").joinpath(SCHEMA_RESOURCE).read_text()
    return yaml.safe_load(text)


def _path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _fill_defaults(node: dict, sch: dict, root: dict) -> None:
    """Fill ``default`` values of object properties in place (jsonschema validates but never fills)."""
    if "$ref" in sch:
        sch = _resolve(sch["$ref"], root)
    for key, sub in sch.get("properties", {}).items():
        if "$ref" in sub:
            sub = _resolve(sub["$ref"], root)
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if key not in node and sub.get("type") == "object" and "properties" in sub:
            node[key] = {}
        if isinstance(node.get(key), dict):
            _fill_defaults(node[key], sub, root)
    extra = sch.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in node.items():
            if key not in sch.get("properties", {}) and isinstance(value, dict):
                _fill_defaults(value, extra, root)


def _resolve(ref: str, root: dict) -> dict:
    node = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def validate(config: dict, source: str = "params", root: str | Path | None = None) -> dict:
    """Validate ``config`` against the schema and the registries; return a copy with defaults filled.

    Every parameter value is checked against its family's domain, and every input path the stages read must
    exist (``root``, default the working directory: the project root that relative checkpoints are read from).

    Raises:
        ConfigError: one message naming the first problem (its path in the config) and how to fix it; missing
            input paths are listed together in one.
    """
    import jsonschema

    sch = schema()
    validator = jsonschema.Draft202012Validator(sch)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), e.message))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(
            f"{source}: {_path(best)}: {best.message}. Fix that value; the allowed keys and types are in "
            f"src/embedrobust/schemas/params.schema.yaml."
        )
    cfg = copy.deepcopy(config)
    _fill_defaults(cfg, sch, sch)
    conditions(cfg)  # checks perturbation names, presets and severities
    family_options(cfg)
    _check_models(cfg)
    _check_seeds(cfg)
    finetune_runs(cfg)  # checks bases, methods, families and trainer options; names must not collide
    dense_plan(cfg)
    task_attack_plan(cfg)
    text_robustness_plan(cfg)
    check_paths(cfg, source, Path.cwd() if root is None else Path(root))
    return cfg


def _check_eps(where: str, values) -> None:
    """The task attacks' radii share EmbedAttack's unit (L-inf, pixel units), so its domain is theirs too."""
    from .perturb import get_perturbation

    _check_values(where, get_perturbation("embed_attack"), values, domain="the L-inf radius domain",
                  fix="give radii in pixel units, e.g. 0.03137254901960784 for 8/255")


def check_paths(cfg: dict, source: str, root: Path) -> None:
    """The input paths the stages read exist: image folders, torchvision roots that will not be downloaded,
    real dense datasets and given model checkpoints. Fine-tuned models' checkpoints are not inputs: the
    finetune stage writes them. Dataset paths are read from the working directory (as ``data.sources``
    does), checkpoints from the project root (as ``models.spec.resolved`` does)."""
    from .data.layouts import LAYOUTS

    problems: list[str] = []

    def need(key: str, value, fix: str, *, is_dir: bool = True, base: Path | None = None) -> None:
        if value is None:
            problems.append(f"{key}: not set; {fix}")
            return
        path = Path(str(value)).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        if path.is_dir() if is_dir else path.is_file():
            return
        shown = repr(str(value)) + ("" if str(path) == str(value) else f" (= {path})")
        state = (f"is not a {'directory' if is_dir else 'file'}" if path.exists() else "does not exist")
        problems.append(f"{key}: {shown} {state}; {fix}")

    for name, spec in cfg["datasets"].items():
        key = f"datasets.{name}"
        if spec["source"] == "imagefolder":
            need(f"{key}.path", spec.get("path"), f"set {key}.path to your copy of {name}: a directory of class "
                                                  f"folders, or of train/ and val/ (or test/) class folders")
            names = spec.get("class_names")
            if names is not None and names != "imagenet":  # else a map file: folder -> class name
                need(f"{key}.class_names", names, "set it to a map file (LOC_synset_mapping.txt lines or JSON "
                                                  "{folder: name}), to imagenet for the built-in map, or remove it",
                     is_dir=False)
        elif spec["source"] == "torchvision":
            tv = spec.get("name") or "dataset"
            if spec.get("download", True) is False:  # with download, a missing root is where it will go
                need(f"{key}.root", spec.get("root"), f"set {key}.root to the directory that holds torchvision's "
                                                      f"{tv}, or set {key}.download: true to download it there")
            elif spec.get("root") is None:
                need(f"{key}.root", None, f"set {key}.root to the directory to download torchvision's {tv} into")
    for name, spec in ((cfg.get("dense") or {}).get("datasets") or {}).items():
        if spec["source"] in LAYOUTS:
            key = f"dense.datasets.{name}.path"
            need(key, spec.get("path"), f"set {key} to your local copy of {spec['source']}, "
                                        f"{LAYOUTS[spec['source']]} (it is never downloaded)")
    for name, spec in cfg["models"].items():  # fine-tuned models are not in this section
        if spec.get("checkpoint") is not None:
            need(f"models.{name}.checkpoint", spec["checkpoint"],
                 f"set it to an existing weights file (a relative path is read from the project root, {root}), or "
                 f"remove it", is_dir=False, base=root)
    if problems:
        raise ConfigError(f"{source}: {len(problems)} input path{'s' if len(problems) > 1 else ''} missing; fix "
                          + ("each" if len(problems) > 1 else "it") + " before running:\n  - "
                          + "\n  - ".join(problems))


def _check_models(cfg: dict) -> None:
    """Unknown architectures fail here, before any stage runs, with the closest known names."""
    from .errors import unknown_name
    from .models import list_models

    for name, spec in cfg["models"].items():
        known = list_models(spec["library"])
        if spec["arch"] not in known:
            err = unknown_name(f"{spec['library']} architecture", spec["arch"], known)
            raise ConfigError(f"models.{name}.arch: {str(err).split(' Known ')[0]} "
                              f"List them with `embedrobust models --list --library {spec['library']}`.")


def read_config(path: str | Path) -> dict:
    """The raw mapping in one YAML config file (not validated)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {str(path)!r} not found. Pass an existing file with --params.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}). Fix the syntax at the position shown.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (seed, datasets, models, ...), got {type(raw).__name__}.")
    return raw


def merge_configs(base: dict, overlay: dict) -> dict:
    """``base`` updated by ``overlay`` the way Snakemake merges several --configfile files: mappings merge key by
    key, recursively; any other value replaces."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_configs(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_configs(paths: list[str | Path]) -> dict:
    """The raw config of one run: a single file, or a study file followed by overlays (e.g. a smaller size)."""
    raw: dict = {}
    for path in paths:
        raw = merge_configs(raw, read_config(path))
    return raw


def load_params(path: str | Path | list[str | Path], root: str | Path | None = None) -> dict:
    """Read and validate a params file (YAML), or a study file followed by overlays merged onto it; ``root`` is the
    project root relative checkpoints are read from (default: the working directory)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    return validate(read_configs(paths), source=" + ".join(str(p) for p in paths), root=root)




def families(config: dict) -> dict[str, list[float]]:
    """Family name -> parameter values, presets first (each at severities 1-5), then explicit families.

    An explicit family overrides the same family from a preset.
    """
    from .errors import unknown_name
    from .perturb.spec import family_values

    pert = config.get("perturbations", {})
    out: dict[str, list[float]] = {}
    for preset in pert.get("presets", []):
        from .perturb.presets import PRESETS

        if preset not in PRESETS:
            raise ConfigError(f"perturbations.presets: {unknown_name('preset', preset, list(PRESETS))}")
        for name in PRESETS[preset]:
            out[name] = list(tabled(config, name, f"perturbations.presets.{preset}").severities)
    table = severity_table(config)
    for name, spec in pert.get("families", {}).items():
        out[name] = list(family_values(name, spec, table, f"perturbations.families.{name}"))
    return out


def severity_table(config: dict) -> str:
    """``perturbations.table``: whose severity table severities 1-5 read (``imagenet-c`` unless set)."""
    return (config.get("perturbations") or {}).get("table") or "imagenet-c"


def tabled(config: dict, name: str, where: str = "perturbations"):
    """The registry's family ``name`` with the params' severity table (``perturbation.with_table``).

    Raises:
        ConfigError: the table has no entry for ``name``.
    """
    from .perturb.spec import tabled as spec_tabled

    return spec_tabled(name, severity_table(config), where)


def family_options(config: dict) -> dict[str, dict]:
    """Family name -> keyword options of its function (``perturbations.families.<name>.options``), checked
    against the options the family declares (``Perturbation.options``) so a typo fails at validation."""
    from .errors import unknown_name
    from .perturb import get_perturbation

    out = {}
    for name, spec in config.get("perturbations", {}).get("families", {}).items():
        opts = dict(spec.get("options") or {})
        if not opts:
            continue
        known = list(get_perturbation(name).options)
        for key in opts:
            if key not in known:
                hint = str(unknown_name(f"option of {name}", key, known)) if known else f"{name} takes no options."
                raise ConfigError(f"perturbations.families.{name}.options: {hint}")
        out[name] = opts
    table = severity_table(config)
    if table != "imagenet-c":
        # severity-unit families read their parameter tuples from the table when called: bind it like an option
        for name in families(config):
            if get_perturbation(name).unit == "severity":
                out[name] = {"table": table, **out.get(name, {})}
    return out


def conditions(config: dict) -> list[Condition]:
    """The grid: clean first, then every family at every value, in config order."""
    conds = [CLEAN]
    for name, values in families(config).items():
        conds.extend(Condition(name, v) for v in values)
    return conds


FINETUNE_SWEEP = ("base", "methods", "alpha", "dataset", "families", "per_family")


def _alpha_label(alpha: float) -> str:
    return f"{alpha:g}"


def finetune_runs(config: dict) -> dict[str, dict]:
    """The fine-tuned models of the study: name -> run, in sweep order (base, method, alpha, family), each run
    followed by its seed replicates (``seeds``: ``{name}-seed{s}``, trained with seed s, with ``"replicate":
    {"of": name, "seed": s}``).

    A run is ``{"base", "dataset", "method", "alpha", "family" (None unless per_family), "train": the trainer
    config (every key of ``finetune.DEFAULTS`` resolved, families as {name: {"levels": [...]}})}``. Names are
    ``{base}-ft-{method}-a{alpha:g}`` (+ ``-{family}`` with ``per_family``). Empty without a ``finetune`` section.

    Raises:
        ConfigError: an unknown base, dataset, family or trainer option, or a name that collides with a model.
    """
    runs: dict[str, dict] = {}
    for name, run in _finetune_sweep(config).items():
        runs[name] = run
        for s in seeds(config)[1:]:
            runs[replicate_name(name, s)] = {**run, "train": {**run["train"], "seed": s},
                                             "replicate": {"of": name, "seed": s}}
    return runs


def _finetune_sweep(config: dict) -> dict[str, dict]:
    """The runs of the ``finetune`` sweep at the study seed (see :func:`finetune_runs`)."""
    from .finetune.options import resolve_config, resolve_families

    ft = config.get("finetune")
    if not ft or not ft.get("base"):  # no section (defaults fill it as {}), or base: []
        return {}
    bases = [ft["base"]] if isinstance(ft["base"], str) else list(ft["base"])
    for base in bases:
        if base not in config["models"]:
            raise ConfigError(f"finetune.base: {base!r} is not a key of models ({', '.join(config['models'])}); "
                              f"name the model to fine-tune")
    dataset = ft.get("dataset") or next(iter(config["datasets"]))
    if dataset not in config["datasets"]:
        raise ConfigError(f"finetune.dataset: {dataset!r} is not a key of datasets ({', '.join(config['datasets'])})")
    methods = ft.get("methods", ["paper"])
    methods = {m: {} for m in methods} if isinstance(methods, list) else {m: dict(o or {}) for m, o in methods.items()}
    alphas = ft.get("alpha", [1.0])
    alphas = [float(a) for a in (alphas if isinstance(alphas, list) else [alphas])]
    grid = families(config)
    spec = ft.get("families")
    if spec is None:
        if not grid:
            raise ConfigError("finetune.families: not set and the perturbation grid is empty; list the families to "
                              "train on, e.g. families: [gaussian_noise, jpeg_compression]")
        spec = list(grid)
    if isinstance(spec, list):
        spec = {n: ({"levels": grid[n]} if n in grid else None) for n in spec}
    table = severity_table(config)
    trained = {n: {"levels": list(v)} if not (v and v[0] == "range") else {"range": [v[1], v[2]]}
               for n, v in resolve_families(spec, table).items()}
    options = {k: v for k, v in ft.items() if k not in FINETUNE_SWEEP}
    runs: dict[str, dict] = {}
    for base in bases:
        for method, overrides in methods.items():
            for alpha in alphas:
                groups = [(None, trained)]
                if ft.get("per_family"):
                    groups = [(fam, {fam: levels}) for fam, levels in trained.items()]
                for fam, fams in groups:
                    name = f"{base}-ft-{method}-a{_alpha_label(alpha)}" + (f"-{fam}" if fam else "")
                    train = resolve_config({**options, **overrides, "method": method, "alpha": alpha,
                                            "families": fams, "seed": config["seed"], "table": table})
                    train.pop("base")
                    train.pop("per_family")
                    if name in config["models"] or name in runs:
                        raise ConfigError(f"finetune: the fine-tuned model name {name!r} is already a key of models "
                                          f"(or repeats in the sweep); rename that model")
                    runs[name] = {"base": base, "dataset": dataset, "method": method, "alpha": alpha,
                                  "family": fam, "train": train}
    return runs


def model_spec(config: dict, model: str) -> dict:
    """The spec of a model of ``models``, of a fine-tuned one or of a seed replicate of either.

    A fine-tuned model's spec is its base's with ``checkpoint`` (relative to the project root, see
    ``stages.checkpoint_path``) and ``finetuned`` (the run: base, dataset, trainer config), so its embedding
    store's params hash changes whenever the training does. A replicate's spec is its model's with ``seed``
    pinned (:func:`_pinned`).
    """
    if model in config["models"]:
        return config["models"][model]
    runs = finetune_runs(config)
    if model in runs:
        return _finetuned_spec(config, model, runs[model])
    rep = replicates(config).get(model)
    if rep is None:
        raise KeyError(model)
    return _pinned(config, config["models"][rep[0]])


def _finetuned_spec(config: dict, model: str, run: dict) -> dict:
    from .paths import checkpoint_relpath

    base = config["models"][run["base"]]
    if "replicate" in run:
        base = _pinned(config, base)
    return {**base, "checkpoint": checkpoint_relpath(model), "finetuned": run}


def all_models(config: dict) -> dict[str, dict]:
    """Every model the grid evaluates: the ``models`` section, then the fine-tuned ones, name -> spec; each
    followed by its seed replicates where ``seeds`` lists more than one seed."""
    runs = finetune_runs(config)
    extra = seeds(config)[1:]
    out: dict[str, dict] = {}
    for name, spec in config["models"].items():
        out[name] = spec
        for s in extra:
            out[replicate_name(name, s)] = _pinned(config, spec)
    for name, run in runs.items():
        out[name] = _finetuned_spec(config, name, run)
    return out


# -- seed replicates ----------------------------------------------------------------------------------------------
# `seeds: [0, 1, 2]` repeats the study's stochastic parts (perturbation draws, the probe's val split and the k-NN
# / probe seeds, fine-tuning batches and views, attack starts) under each seed. A replicate is evaluated as one
# more model, `{model}-seed{s}`, so every stage, cache key and rerun rule applies to it unchanged; the first seed
# is the study's own `seed` and keeps the plain names, so adding seeds never recomputes the primary run. The
# images (fetch) and the random-init weights stay those of the primary seed: replicates vary the draws, not the
# data or the model.
def seeds(config: dict) -> list[int]:
    """The study's seeds: ``seeds`` where given (its first is ``seed``), else ``[seed]``."""
    listed = config.get("seeds")
    return [int(s) for s in listed] if listed else [int(config["seed"])]


def replicate_name(model: str, seed: int) -> str:
    """The name of ``model``'s replicate under ``seed``."""
    return f"{model}-seed{seed}"


def replicates(config: dict) -> dict[str, tuple[str, int]]:
    """Replicate name -> (the model it repeats, its seed), for every model and fine-tuned model and every seed
    after the first; empty without ``seeds``."""
    extra = seeds(config)[1:]
    if not extra:
        return {}
    return {replicate_name(m, s): (m, s) for m in _primaries(config) for s in extra}


def _primaries(config: dict) -> list[str]:
    """The models seeds repeat: those of ``models`` and the fine-tuning sweep."""
    return [*config["models"], *_finetune_sweep(config)]


def model_seed(config: dict, model: str | None) -> int:
    """The seed of the stages run for ``model``: its replicate's seed, else the study seed."""
    rep = replicates(config).get(model) if model is not None else None
    return rep[1] if rep else int(config["seed"])


def _pinned(config: dict, spec: dict) -> dict:
    """A replicate's spec: random-init weights keep the primary seed (``seed`` of the spec, else the study's)."""
    return {**spec, "seed": spec.get("seed", config["seed"])}


def _check_seeds(cfg: dict) -> None:
    listed = cfg.get("seeds")
    if not listed:
        return
    if int(listed[0]) != int(cfg["seed"]):
        raise ConfigError(f"seeds: {listed} must begin with the study seed ({cfg['seed']}), which is the primary run "
                          f"and keeps the plain model names; write seeds: {[cfg['seed'], *listed]} or set "
                          f"seed: {listed[0]}")
    primaries = set(_primaries(cfg))
    for name in replicates(cfg):
        if name in primaries:
            raise ConfigError(f"seeds: the replicate name {name!r} is already a model's name; rename that model "
                              "(names ending in -seed<N> are the replicates')")


def _selected_models(config: dict, section: str) -> list[str]:
    known = all_models(config)
    names = config.get(section, {}).get("models")
    if names is None:
        return list(known)
    for name in names:
        if name not in known:
            from .errors import unknown_name

            raise ConfigError(f"{section}.models: {unknown_name('model', name, list(known))}")
    return with_replicates(config, names)


def with_replicates(config: dict, names) -> list[str]:
    """``names`` (unique, in order), each followed by its seed replicates."""
    reps = replicates(config)
    return list(dict.fromkeys(n for name in names for n in (name, *(r for r, (of, _) in reps.items() if of == name))))


def _checked_options(section: str, options: dict | None, defaults: dict) -> dict:
    from .errors import unknown_name

    options = dict(options or {})
    for key in options:
        if key not in defaults:
            raise ConfigError(f"{section}.options: {unknown_name('option', key, list(defaults))}")
    return options


def dense_plan(config: dict) -> dict:
    """What the dense stages evaluate: ``{"datasets": name -> fetch config, "models": [...], "conditions":
    [[family, value], ...] (the grid, clean first, restricted to ``dense.families``), "family_options", "eps",
    "options"}``. No datasets (no section, or ``datasets: {}``) means no dense stage runs.

    Raises:
        ConfigError: an unknown model, a family not in the grid, or an unknown head / attack option.
    """
    from .attack.options import DENSE_DEFAULTS

    dense = config.get("dense") or {}
    datasets = dict(dense.get("datasets") or {})
    grid = conditions(config)
    names = dense.get("families")
    if names is not None:
        known = list(dict.fromkeys(c.family for c in grid if not c.is_clean))
        for name in names:
            if name not in known:
                raise ConfigError(f"dense.families: {name!r} is not a family of the perturbation grid "
                                  f"({', '.join(known) or 'empty'}); add it to perturbations or drop it here")
        grid = [c for c in grid if c.is_clean or c.family in names]
    eps = [float(e) for e in dense.get("eps", [])]
    _check_eps("dense.eps", eps)
    fam_opts = family_options(config)
    return {
        "datasets": datasets,
        "models": _selected_models(config, "dense") if datasets else [],
        "conditions": [c.as_pair() for c in grid],
        "family_options": {f: o for f, o in fam_opts.items() if any(c.family == f for c in grid)},
        "eps": eps,
        "options": _checked_options("dense", dense.get("options"), DENSE_DEFAULTS),
    }


def task_attack_plan(config: dict) -> dict:
    """What the task-attack stage evaluates: ``{"datasets": [...], "models": [...], "eps": [...], "options"}``;
    no eps (no section, or ``eps: []``) means it does not run.

    Raises:
        ConfigError: an unknown dataset or model, or an unknown probe / attack option.
    """
    from .attack.options import CLASSIFIER_DEFAULTS

    ta = config.get("task_attack") or {}
    eps = [float(e) for e in ta.get("eps") or []]
    _check_eps("task_attack.eps", eps)
    datasets = list(ta.get("datasets") or config["datasets"]) if eps else []
    for name in datasets:
        if name not in config["datasets"]:
            from .errors import unknown_name

            raise ConfigError(f"task_attack.datasets: {unknown_name('dataset', name, list(config['datasets']))}")
    # The attacked probe is the downstream stage's linear probe (its C grid, val fraction and iterations) unless
    # task_attack.options says otherwise, so "accuracy under PGD" sits beside the same probe's clean accuracy.
    probe = (config.get("downstream") or {}).get("linear_probe") or {}
    inherited = {k: probe[k] for k in ("C", "val_fraction", "max_iter") if k in probe}
    return {
        "datasets": datasets,
        "models": _selected_models(config, "task_attack") if eps else [],
        "eps": eps,
        "options": {**inherited, **_checked_options("task_attack", ta.get("options"), CLASSIFIER_DEFAULTS)},
    }


def text_robustness_plan(config: dict) -> dict:
    """What the text_robustness stage evaluates: ``{"families", "datasets", "models", "cross"}``; no families
    means it does not run. ``embedrobust.textperturb.plan`` documents the section and checks it."""
    from .textperturb.plan import text_robustness_plan as plan

    return plan(config, all_models(config), list(families(config)), lambda names: with_replicates(config, names))


def stage_domain(config: dict, domain: str) -> tuple[list[str], list[str]]:
    """The dataset and model names a stage's jobs range over (``manifest.DOMAINS``): the study's datasets x every
    model (fine-tuned ones included), the fine-tuning runs (no datasets: a run names its own), or the datasets x
    models of the dense, task-attack or text-robustness plan."""
    if domain == "study":
        return list(config["datasets"]), list(all_models(config))
    if domain == "finetune":
        return [], list(finetune_runs(config))
    plans = {"dense": dense_plan, "task_attack": task_attack_plan, "text_robustness": text_robustness_plan}
    if domain not in plans:
        raise ValueError(f"unknown stage domain {domain!r}")
    plan = plans[domain](config)
    return list(plan["datasets"]), list(plan["models"])


def _dotted(config: dict, section: str):
    head, _, rest = section.partition(".")
    value = config.get(head)
    return _dotted(value or {}, rest) if rest else value


def stage_config(config: dict, stage: str, dataset: str | None = None, model: str | None = None) -> dict | None:
    """The subset of ``config`` that ``stage`` reads (for one dataset/model where it applies).

    None where the stage does not apply (``text`` for a model without a text tower).
    """
    seed = config["seed"]

    def one(ds: str | None = dataset) -> dict:  # one model on one dataset, on the configured device
        return {"seed": model_seed(config, model), "device": config["device"], "dataset": ds,
                "model": model}

    if stage == "fetch":
        return {"seed": seed, "dataset": dataset, "datasets": {dataset: config["datasets"][dataset]}}
    if stage == "embed":
        return {
            **one(),
            "datasets": {dataset: config["datasets"][dataset]},
            "models": {model: model_spec(config, model)},
            "perturbations": config["perturbations"],
            "embed": config["embed"],
        }
    if stage == "text":
        spec = model_spec(config, model)
        tasks = config["downstream"]["tasks"]
        if spec["library"] != "open_clip" or "zero_shot" not in tasks:
            return None  # no text tower, or zero-shot not asked for
        return {
            **one(),
            "models": {model: spec},
            "templates": config["downstream"].get("zero_shot", {}).get("templates", "imagenet"),
        }
    if stage == "metrics":
        return {"dataset": dataset, "model": model, "perturbations": config["perturbations"]}
    if stage == "downstream":
        # the seed draws the probe's validation split and seeds the classifiers: a replicate's own
        return {"seed": model_seed(config, model), "dataset": dataset, "model": model,
                "downstream": config["downstream"]}
    if stage == "regression":
        # the seed draws the bootstrap's image resamples
        reps = replicates(config)
        return {"seed": config["seed"], "dataset": dataset, "models": sorted(all_models(config)),
                "regression": config["regression"],
                # which models repeat which under another seed: the spread across seeds, primaries-only comparisons
                **({"replicates": {r: list(v) for r, v in sorted(reps.items())}, "seeds": seeds(config)}
                   if reps else {})}
    if stage == "finetune":
        run = finetune_runs(config)[model]
        return {
            **one(run["dataset"]),
            "datasets": {run["dataset"]: config["datasets"][run["dataset"]]},
            "models": {run["base"]: _pinned(config, config["models"][run["base"]]) if "replicate" in run
                       else config["models"][run["base"]]},
            "run": run,
        }
    if stage == "fetch_dense":
        return {"seed": seed, "dataset": dataset, "dense_datasets": {dataset: config["dense"]["datasets"][dataset]}}
    if stage == "dense":
        plan = dense_plan(config)
        return {**one(), "dense_datasets": {dataset: plan["datasets"][dataset]},
                "models": {model: model_spec(config, model)},
                **{k: plan[k] for k in ("conditions", "family_options", "eps", "options")}}
    if stage == "task_attack":
        plan = task_attack_plan(config)
        return {**one(), "datasets": {dataset: config["datasets"][dataset]}, "models": {model: model_spec(config, model)},
                "eps": plan["eps"], "options": plan["options"]}
    if stage == "text_robustness":
        plan = text_robustness_plan(config)
        if model not in plan["models"] or dataset not in plan["datasets"]:
            return None  # no text tower, not chosen, or the section is off
        return {
            **one(),
            "models": {model: model_spec(config, model)},
            "templates": config["downstream"].get("zero_shot", {}).get("templates", "imagenet"),
            "synonyms": config["datasets"][dataset].get("synonyms", {}),
            **{k: plan[k] for k in ("families", "cross")},
            "regression": config["regression"],
        }
    if stage == "report":
        # The report prints the whole config as provenance, so it reads all of it.
        return {"report": config.get("report", {}), "config": config}
    # A stage with no subset of its own above reads its manifest sections as they are, with its job's names and
    # seed (a replicate's own where the job has a model).
    from .manifest import stage as manifest_stage

    try:
        sections = manifest_stage(stage).params
    except KeyError:
        raise ValueError(f"unknown stage {stage!r}") from None
    return {"seed": model_seed(config, model) if model else seed, "dataset": dataset, "model": model,
            **{k: _dotted(config, k) for k in sections if k not in ("seed", "seeds")}}


# DVC reads params by section; the manifest lists the sections each stage reads (tests check that stage_config reads
# no other), so Snakemake's params rerun trigger and DVC's params dependencies agree.
DVC_PARAMS = dvc_params()


