# Rules of the hyperparameter sweeps (opt-in targets unless config sweeps.apply is true; `snakemake sweeps`
# builds every table):
#   results/data/cifar10_train.npz                       the CIFAR-10 training batches data_batch_1..5
#                                                        (sweeps.validation.source: cifar10_train)
#   results/data/validation.npz                          the validation split (images, labels, indices, source)
#   results/sweeps/{sweep}/{value}/{model}/seed{seed}/   spec.json, metrics.json (+ the validation block),
#                                                        train_log.csv of one sweep point
#   results/tables/sweep_{sweep}.csv + .md + .html       validation accuracy and CE per value, the selected
#                                                        value marked, the thesis' choice beside it
#   results/sweeps/{sweep}/selected.json                 the selected value, which the runs of the tables and
#                                                        claims use when sweeps.apply is true (train.smk)
# A sweep point trains the sweep's scheme under the configuration with one key set to the value (config
# `sweeps`, softlabels.experiments.sweeps; its table: softlabels.report.sweeps). It runs one job per point
# (`softlabels train`), not in fused groups.
SWEEPS = list(active_grids(config))
SWEEP_TABLES = [f"results/tables/sweep_{name}.csv" for name in SWEEPS]
if config["sweeps"].get("apply"):
    FINAL_OUTPUTS.extend(SWEEP_TABLES)


wildcard_constraints:
    sweep="|".join(SWEEPS) or "no_sweep",
    value=r"[0-9][0-9.e+-]*",


rule parse_cifar10_train:
    input:
        resource("cifar10"),
    output:
        f"{DATA}/cifar10_train.npz",
    log:
        "logs/data/parse_cifar10_train.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        settings=settings(),
        run_options=run_options(),
    shell:
        "softlabels parse-cifar10-train --archive {input} --out {output} --settings {params.settings:q} "
        "--run-options {params.run_options:q} > {log} 2>&1"


rule validation_split:
    input:
        unpack(validation_split_inputs),
    output:
        f"{DATA}/validation.npz",
    log:
        "logs/data/validation_split.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        settings=settings(*validation_settings(config)),
        run_options=run_options(),
    shell:
        "softlabels validation-split --data-dir $(dirname {output}) --out {output} --settings {params.settings:q} "
        "--run-options {params.run_options:q} > {log} 2>&1"


rule sweep_run:
    input:
        unpack(sweep_run_inputs),
    output:
        spec="results/sweeps/{sweep}/{value}/{model}/seed{seed}/spec.json",
        metrics="results/sweeps/{sweep}/{value}/{model}/seed{seed}/metrics.json",
        log="results/sweeps/{sweep}/{value}/{model}/seed{seed}/train_log.csv",
    log:
        "logs/sweeps/{sweep}/{value}/{model}/seed{seed}.log",
    conda:
        "../../envs/softlabels.yaml"
    threads: sweep_run_resource("threads")
    resources:
        gpu=sweep_run_resource("gpu"),
        mem_mb=sweep_run_resource("mem_mb"),
        runtime=sweep_run_resource("runtime_min"),
    params:
        # the point's spec (without the device): what the job trains, and its rerun trigger
        spec=sweep_run_spec,
        settings=settings(),
        glove=glove_option,
        run_options=run_options(),
    shell:
        "(softlabels make-sweep-spec --spec {params.spec:q} --out {output.spec} --settings {params.settings:q} "
        "--run-options {params.run_options:q} && "
        "softlabels train --spec {output.spec} --out-dir $(dirname {output.spec}) --data-dir results/data "
        "{params.glove} --threads {threads}) > {log} 2>&1"


rule sweep_table:
    input:
        sweep_metrics,
    output:
        csv="results/tables/sweep_{sweep}.csv",
        md="results/tables/sweep_{sweep}.md",
        html="results/tables/sweep_{sweep}.html",
        selection="results/sweeps/{sweep}/selected.json",
    log:
        "logs/tables/sweep_{sweep}.log",
    localrule: True
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=lambda wildcards: settings(
            f"sweeps.grids.{wildcards.sweep}", "sweeps.criterion", "summaries.ci_level"
        ),
        run_options=run_options(),
    shell:
        "softlabels sweep-table --sweep {wildcards.sweep} --metrics {input} --out-csv {output.csv} "
        "--out-md {output.md} --out-html {output.html} --out-selection {output.selection} --settings {params.settings:q} "
        "--run-options {params.run_options:q} > {log} 2>&1"


# Opt-in target: every sweep table (not in FINAL_OUTPUTS, so `all` does not train the sweeps).
rule sweeps:
    input:
        SWEEP_TABLES,
    localrule: True
    params:
        settings=settings(),
