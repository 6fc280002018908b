rule downstream:
    input:
        unpack(downstream_inputs),
    output:
        "data/downstream/{dataset}/{model}.parquet",
    params:
        cfg=stage_json("downstream"),
    threads: LIGHT_THREADS
    log:
        "logs/downstream/{dataset}/{model}.log",
    benchmark:
        "logs/benchmarks/downstream/{dataset}/{model}.tsv"
    conda:
        "../envs/embedrobust.yaml"
    shell:
        "python -m embedrobust downstream --threads {threads} --stage-config {params.cfg:q} > {log} 2>&1"
