# Text-side robustness of the CLIP models: their class prompts under the text perturbations of params section
# text_robustness, zero-shot accuracy of the clean test images against them, and the image x text cross grid. Runs
# for the datasets x models of that section's plan (common.smk: TEXT_ROBUSTNESS); `families: {}` gives no jobs.


# The prompt store is built under <store>.partial and renamed when complete; its root metadata file stands for it
# (as for the embedding store: a directory() output would put a timestamp file inside the Zarr hierarchy).
rule text_robustness:
    input:
        unpack(text_robustness_inputs),
    output:
        store="data/text_robustness/{dataset}/{model}.zarr/zarr.json",
        table="data/text_robustness/{dataset}/{model}.parquet",
        regression="data/text_robustness/{dataset}/{model}.regression/summary.json",
    wildcard_constraints:
        dataset=_alternatives(TEXT_ROBUSTNESS["datasets"]),
        model=_alternatives(TEXT_ROBUSTNESS["models"]),
    params:
        cfg=stage_json("text_robustness"),
    threads: LIGHT_THREADS
    resources:
        mem_mb=8000,
        gpu=lambda wc: 0 if config.get("device", "auto") == "cpu" else 1,
        runtime=120,
    log:
        "logs/text_robustness/{dataset}/{model}.log",
    benchmark:
        "logs/benchmarks/text_robustness/{dataset}/{model}.tsv"
    conda:
        "../envs/embedrobust.yaml"
    shell:
        "python -m embedrobust text_robustness --threads {threads} --stage-config {params.cfg:q} > {log} 2>&1"
