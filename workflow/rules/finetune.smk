# One fine-tuned model per run of the finetune sweep (base x method x alpha [x family]). Its weights feed the same
# embed, metrics and downstream rules as the base models. Snakemake deletes model.pt before the job runs; the
# resumable state lives beside it in checkpoint/, which a killed run picks up.
rule finetune:
    input:
        finetune_dataset,
    output:
        "data/models/{model}/model.pt",
    wildcard_constraints:
        model=_alternatives(FINETUNED),
    params:
        cfg=stage_json("finetune"),
    # first: each fine-tuned model gates its own embed and everything after it (priorities order, never change,
    # what runs)
    priority: 2
    threads: workflow.cores
    resources:
        mem_mb=8000,
        gpu=lambda wc: 0 if config.get("device", "auto") == "cpu" else 1,
        runtime=240,
    log:
        "logs/finetune/{model}.log",
    benchmark:
        "logs/benchmarks/finetune/{model}.tsv"
    conda:
        "../envs/embedrobust.yaml"
    shell:
        "python -m embedrobust finetune --threads {threads} --stage-config {params.cfg:q} > {log} 2>&1"
