rule metrics:
    input:
        "data/embeddings/{dataset}/{model}.zarr/zarr.json",
    output:
        "data/metrics/{dataset}/{model}.parquet",
    params:
        cfg=stage_json("metrics"),
    threads: LIGHT_THREADS
    log:
        "logs/metrics/{dataset}/{model}.log",
    benchmark:
        "logs/benchmarks/metrics/{dataset}/{model}.tsv"
    conda:
        "../envs/embedrobust.yaml"
    shell:
        "python -m embedrobust metrics --threads {threads} --stage-config {params.cfg:q} > {log} 2>&1"
