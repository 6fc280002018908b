rule fetch:
    output:
        "data/datasets/{dataset}/index.csv",
    params:
        cfg=stage_json("fetch"),
    log:
        "logs/fetch/{dataset}.log",
    benchmark:
        "logs/benchmarks/fetch/{dataset}.tsv"
    conda:
        "../envs/embedrobust.yaml"
    shell:
        "python -m embedrobust fetch --stage-config {params.cfg:q} > {log} 2>&1"
