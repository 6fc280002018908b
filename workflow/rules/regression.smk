rule regression:
    input:
        metrics=expand("data/metrics/{{dataset}}/{model}.parquet", model=MODELS),
        downstream=expand("data/downstream/{{dataset}}/{model}.parquet", model=MODELS),
    output:
        summary="data/regression/{dataset}/summary.json",
        fits="data/regression/{dataset}/fits.csv",
        binned="data/regression/{dataset}/binned.csv",
        predictions="data/regression/{dataset}/predictions.csv",
        accuracy_drop="data/regression/{dataset}/accuracy_drop.csv",
        bootstrap="data/regression/{dataset}/bootstrap.csv",
        model_family="data/regression/{dataset}/model_family.csv",
        rank_correlation="data/regression/{dataset}/rank_correlation.csv",
        panel_fits="data/regression/{dataset}/panel_fits.csv",
        seed_spread="data/regression/{dataset}/seed_spread.csv",
    params:
        cfg=stage_json("regression"),
    # worker processes sharing the fits (embedrobust.forked); the output does not depend on their number
    threads: workflow.cores
    log:
        "logs/regression/{dataset}.log",
    benchmark:
        "logs/benchmarks/regression/{dataset}.tsv"
    conda:
        "../envs/embedrobust.yaml"
    shell:
        "python -m embedrobust regression --threads {threads} --stage-config {params.cfg:q} > {log} 2>&1"
