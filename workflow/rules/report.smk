rule report:
    input:
        regression=expand("data/regression/{dataset}/summary.json", dataset=DATASETS),
        metrics=expand("data/metrics/{dataset}/{model}.parquet", dataset=DATASETS, model=MODELS),
        downstream=expand("data/downstream/{dataset}/{model}.parquet", dataset=DATASETS, model=MODELS),
        stores=expand("data/embeddings/{dataset}/{model}.zarr/zarr.json", dataset=DATASETS, model=MODELS),
        finetuned=[checkpoint_relpath(m) for m in FINETUNED],
        dense=expand("data/dense/{dataset}/{model}.parquet", dataset=list(DENSE["datasets"]), model=DENSE["models"]),
        task_attack=expand("data/task_attack/{dataset}/{model}.parquet", dataset=TASK_ATTACK["datasets"],
                           model=TASK_ATTACK["models"]),
    output:
        pdf="reports/final.pdf",
        metrics="reports/metrics.json",
    params:
        cfg=stage_json("report"),
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmarks/report.tsv"
    conda:
        "../envs/embedrobust.yaml"
    shell:
        "python -m embedrobust report --stage-config {params.cfg:q} --out {output.pdf} > {log} 2>&1"
