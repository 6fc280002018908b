# One rule per stage of the stage manifest (src/embedrobust/manifest.py), all of one shape: the paths, wildcard
# values, threads, priority and resources come from the manifest and the resolved plan, the params from the stage's
# config subset (Snakemake reruns a job when it changes), and the command hands the stage its inputs and outputs.
#
# Paths of note (the manifest says why each is so):
# - a Zarr store's root metadata file stands for the store (a directory() output would put a timestamp file inside
#   the Zarr hierarchy); the store is built under <store>.partial and renamed when complete, since Snakemake deletes
#   a declared output before its job runs and a killed run must keep the chunks it wrote;
# - a fine-tuned model.pt is deleted before its job runs, but the resumable state lives beside it in checkpoint/;
# - finetune (priority 2) and embed (1) go first: each gates every later stage of its model (priorities order,
#   never change, what runs);
# - the report's PDF and figures are report() outputs: `snakemake --report report.html` shows them.
for _stage in _manifest.STAGES:

    rule:
        name:
            _stage.name
        input:
            unpack(stage_inputs(_stage.name)),
        output:
            **stage_outputs(_stage),
        wildcard_constraints:
            **stage_constraints(_stage),
        params:
            # the command, not the bare stage name: Snakemake's linter reads a param that prefixes an output path
            # ("report" of reports/) as a hard-coded path
            command=f"embedrobust {_stage.name}",
            cfg=stage_json(_stage.name),
            threads=thread_flag(_stage),
            io=stage_io(_stage),
        priority: _stage.priority
        threads: stage_threads(_stage)
        resources:
            **stage_resources(_stage),
        log:
            _stage.log,
        benchmark:
            _stage.benchmark,
        conda:
            "../envs/embedrobust.yaml"
        shell:
            "python -m {params.command} {params.threads} --stage-config {params.cfg:q} {params.io} > {log} 2>&1"
