# The embedding store is built under <store>.partial and renamed when complete: Snakemake deletes a declared
# output before its job runs, which must not throw away the chunks a killed run already wrote. The store's root
# metadata file stands for the store (a directory() output would get a .snakemake_timestamp file inside the
# Zarr hierarchy, which Zarr warns about).
rule embed:
    input:
        unpack(model_inputs),
    output:
        "data/embeddings/{dataset}/{model}.zarr/zarr.json",
    params:
        cfg=stage_json("embed"),
    # early: a store gates every stage of its model; the small jobs after it then pair up on the cores
    priority: 1
    threads: workflow.cores
    resources:
        mem_mb=8000,
        gpu=lambda wc: 0 if config.get("device", "auto") == "cpu" else 1,
        runtime=240,
    log:
        "logs/embed/{dataset}/{model}.log",
    benchmark:
        "logs/benchmarks/embed/{dataset}/{model}.tsv"
    conda:
        "../envs/embedrobust.yaml"
    shell:
        "python -m embedrobust embed --threads {threads} --stage-config {params.cfg:q} > {log} 2>&1"


rule text:
    input:
        unpack(model_inputs),
    output:
        "data/text/{dataset}/{model}.npz",
    params:
        cfg=stage_json("text"),
    threads: LIGHT_THREADS
    log:
        "logs/text/{dataset}/{model}.log",
    benchmark:
        "logs/benchmarks/text/{dataset}/{model}.tsv"
    conda:
        "../envs/embedrobust.yaml"
    shell:
        "python -m embedrobust text --threads {threads} --stage-config {params.cfg:q} > {log} 2>&1"
