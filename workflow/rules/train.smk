# Rules of the train stage: one run = (scheme, model, seed).
#   results/runs/{scheme}/{model}/seed{seed}/spec.json     the run's effective settings (rewritten when they change)
#   results/runs/{scheme}/{model}/seed{seed}/metrics.json  evaluation of the final-epoch model (+ train_log.csv,
#                                                          checkpoint.pt kept for resuming an interrupted run)
# Helpers (run_metrics, result_set_runs, train_resource, ...) live in common.smk.
from softlabels.train.runs import run_spec

# Inputs a run of each protocol reads; `softlabels train` finds them under results/data/ (and the GloVe rows
# under resources_dir). Other stage files add their protocols' entries.
TRAIN_DATA = {
    "chapter3": {
        "cifar10": "results/data/cifar10_test.npz",
        "splits": "results/data/splits.npz",
        "cifar10h": "results/data/cifar10h.npz",
        "cifar10s": CHAPTER3_RESPONSES,
        "glove": resource("glove"),
    },
}


rule run_spec:
    output:
        "results/runs/{scheme}/{model}/seed{seed}/spec.json",
    log:
        "logs/runs/{scheme}/{model}/seed{seed}/spec.log",
    localrule: True
    resources:
        mem_mb=500,
        runtime=5,
    params:
        spec=lambda wc: run_spec(config, wc.scheme, wc.model, int(wc.seed)),
    run:
        from softlabels.train.cli import write_json_atomic

        write_json_atomic(output[0], params.spec)
        with open(log[0], "w") as f:
            print(f"wrote {output[0]}", file=f)


rule train_run:
    input:
        unpack(lambda wc: TRAIN_DATA[protocol_of(wc)]),
        spec="results/runs/{scheme}/{model}/seed{seed}/spec.json",
    output:
        metrics="results/runs/{scheme}/{model}/seed{seed}/metrics.json",
        train_log="results/runs/{scheme}/{model}/seed{seed}/train_log.csv",
    log:
        "logs/runs/{scheme}/{model}/seed{seed}/train.log",
    conda:
        "../../envs/softlabels.yaml"
    threads: train_threads
    resources:
        gpu=train_resource("gpu"),
        cpus_per_gpu=train_threads,
        mem_mb=train_resource("mem_mb"),
        runtime=train_resource("runtime_min"),
    params:
        glove=resource("glove"),
    shell:
        "softlabels train --spec {input.spec} --out-dir $(dirname {output.metrics}) "
        "--data-dir results/data --glove {params.glove} --threads {threads} > {log} 2>&1"
