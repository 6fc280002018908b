# embedrobust: robustness of vision foundation model embeddings. Thin entry point; rules live in workflow/rules.
#   snakemake --cores all reports/final.pdf                                   (the demo in params.yaml)
#   snakemake --cores all reports/final.pdf --configfile config/full_study.yaml   (the full study, GPU)
from snakemake.utils import min_version

min_version("9.0")


# One config per run, never a merge: params.yaml (the demo, and what `dvc repro` reads) applies only when no
# --configfile is given. Snakemake would otherwise deep-merge the demo's datasets, models and grid into the
# given study. Several --configfile files still merge with each other (a study plus a size overlay).
if not workflow.overwrite_configfiles:

    configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/stages.smk"


rule all:
    default_target: True
    input:
        "reports/final.pdf",
