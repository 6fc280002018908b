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
        text_robustness=expand("data/text_robustness/{dataset}/{model}.{ext}", dataset=TEXT_ROBUSTNESS["datasets"],
                               model=TEXT_ROBUSTNESS["models"], ext=["parquet", "regression/summary.json"]),
    output:
        # `snakemake --report report.html` shows the PDF and each of its figures (one SVG per figure, in one
        # folder per section of the PDF; the category names the section)
        pdf=report("reports/final.pdf", category="Report", labels={"file": "final.pdf"}),
        metrics="reports/metrics.json",
        config="reports/config.resolved.yaml",
        figures=report(directory("reports/figures"), patterns=["{section}/{name}.svg"], category="{section}",
                       labels={"figure": "{name}"}),
    params:
        cfg=stage_json("report"),
    # worker processes converting the figures (embedrobust.forked); the output does not depend on their number
    threads: workflow.cores
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmarks/report.tsv"
    conda:
        "../envs/embedrobust.yaml"
    shell:
        "python -m embedrobust report --threads {threads} --stage-config {params.cfg:q} --out {output.pdf} > {log} 2>&1"
