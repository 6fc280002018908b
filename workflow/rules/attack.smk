# Worst case and dense tasks beside the grid (issue #8): dense heads (segmentation mIoU, depth RMSE) on frozen
# encoders under the grid's conditions and SegPGD / DepthPGD, and cross-entropy PGD on a linear probe. Each runs
# only for the datasets and models of its params section (dense, task_attack); empty sections give no jobs.


rule fetch_dense:
    output:
        "data/dense_datasets/{dataset}/index.csv",
    wildcard_constraints:
        dataset=_alternatives(DENSE["datasets"]),
    params:
        cfg=stage_json("fetch_dense"),
    log:
        "logs/fetch_dense/{dataset}.log",
    benchmark:
        "logs/benchmarks/fetch_dense/{dataset}.tsv"
    conda:
        "../envs/embedrobust.yaml"
    shell:
        "python -m embedrobust fetch_dense --stage-config {params.cfg:q} > {log} 2>&1"


rule dense:
    input:
        unpack(dense_inputs),
    output:
        "data/dense/{dataset}/{model}.parquet",
    wildcard_constraints:
        dataset=_alternatives(DENSE["datasets"]),
        model=_alternatives(DENSE["models"]),
    params:
        cfg=stage_json("dense"),
    threads: workflow.cores
    resources:
        mem_mb=8000,
        gpu=lambda wc: 0 if config.get("device", "auto") == "cpu" else 1,
        runtime=240,
    log:
        "logs/dense/{dataset}/{model}.log",
    benchmark:
        "logs/benchmarks/dense/{dataset}/{model}.tsv"
    conda:
        "../envs/embedrobust.yaml"
    shell:
        "python -m embedrobust dense --threads {threads} --stage-config {params.cfg:q} > {log} 2>&1"


rule task_attack:
    input:
        unpack(model_inputs),
    output:
        "data/task_attack/{dataset}/{model}.parquet",
    wildcard_constraints:
        dataset=_alternatives(TASK_ATTACK["datasets"]),
        model=_alternatives(TASK_ATTACK["models"]),
    params:
        cfg=stage_json("task_attack"),
    threads: LIGHT_THREADS
    resources:
        mem_mb=8000,
        gpu=lambda wc: 0 if config.get("device", "auto") == "cpu" else 1,
        runtime=240,
    log:
        "logs/task_attack/{dataset}/{model}.log",
    benchmark:
        "logs/benchmarks/task_attack/{dataset}/{model}.tsv"
    conda:
        "../envs/embedrobust.yaml"
    shell:
        "python -m embedrobust task_attack --threads {threads} --stage-config {params.cfg:q} > {log} 2>&1"
