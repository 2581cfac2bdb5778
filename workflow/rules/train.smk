# Rules of the train stage: one job trains one *group* of runs (same protocol, model and training-set size)
# as one fused computation (`softlabels train-group`); a run is (scheme, model, seed) and keeps its own
# outputs:
#   results/runs/{scheme}/{model}/seed{seed}/spec.json     the run's effective settings
#   results/runs/{scheme}/{model}/seed{seed}/metrics.json  evaluation of the final-epoch model (+ train_log.csv,
#                                                          checkpoint.pt kept for resuming an interrupted run)
#   results/runs/.groups/{group}.json                      what one group job trained (members, aliases, time;
#                                                          a record, not an output)
# Groups are formed here, when the DAG is built, from the runs that are not finished (softlabels.train.groups.
# plan_training): a run is finished when its metrics.json records the run's current spec and is newer than its
# inputs. Finished runs are plain files no rule makes, so adding a seed or a scheme trains only the new runs;
# a config edit that changes a run's spec makes it unfinished, and it trains again (with the tables on it).
# Runs whose specs differ only in the scheme's name train once; the group copies the results to the others.
from softlabels.train.groups import plan_training

# Inputs a run of each protocol reads; `softlabels train-group` finds them under results/data/ (and the GloVe
# rows under resources_dir).
TRAIN_DATA = {
    "chapter3": {
        "cifar10": "results/data/cifar10_test.npz",
        "splits": "results/data/splits.npz",
        "cifar10h": "results/data/cifar10h.npz",
        "cifar10s": CHAPTER3_RESPONSES,
        "glove": resource("glove"),
    },
}
# Chapters 4-5 read the CIFAR-10S responses also when own responses replace them in chapter 3 (chapter 5's
# soft endpoints are the expanded CIFAR-10S).
TRAIN_DATA["chapter4"] = {
    **TRAIN_DATA["chapter3"],
    "cifar10s": "results/data/cifar10s_responses.csv",
    "hmix_stimuli": "results/data/hmix_stimuli.npz",
    "hmix_judgments": "results/data/hmix_judgments.csv",
}
TRAIN_DATA["chapter5"] = {
    **TRAIN_DATA["chapter3"],
    "cifar10s": "results/data/cifar10s_responses.csv",
    # appendix C refits the class-pair τ from the judgments (results/labels/class_pair_taus.csv shows it)
    "hmix_judgments": "results/data/hmix_judgments.csv",
    "corruption": CORRUPTION_OUTPUTS,
}
# The data stage's record of every input (copied into each metrics.json as provenance.inputs).
PROVENANCE = f"{DATA}/provenance.json"  # rule provenance, data.smk


TRAINING_GROUPS, RUN_SPECS, CANONICAL_RUN = plan_training(config, all_training_runs(), run_status)


# Before any job of a real run: inputs that cannot be had stop the run with one message (common.smk), then the
# training plan (and its stop for the paper scale on a CPU).
onstart:
    check_cifar10c_reachable(pending_rules())
    check_network()
    print_training_plan()


for _group in TRAINING_GROUPS:

    rule:
        name:
            f"train_{_group.name.replace('-', '_')}"
        input:
            **({**TRAIN_DATA[_group.protocol], "provenance": PROVENANCE} if _group.members else {}),
            shared=[run_metrics([c]) for _, c in _group.aliases if c not in _group.members],
        output:
            runs=group_outputs(_group),
        log:
            f"logs/train_groups/{_group.name}.log",
        conda:
            "../../envs/softlabels.yaml"
        threads: group_threads(_group)
        resources:
            gpu=group_resource(_group, "gpu"),
            cpus_per_gpu=group_threads(_group),
            mem_mb=group_resource(_group, "mem_mb"),
            runtime=group_resource(_group, "runtime_min"),
        params:
            runs=group_arguments(_group),
            # The members' spec digests: an edit that changes a run's spec changes this param, so Snakemake's
            # params trigger reruns the group even where the run's old metrics.json is still on disk.
            specs=group_spec_digests(_group),
            # What the job trained (members, aliases, seconds): written beside the runs, not an output, so that
            # Snakemake judges the job by its runs' files alone (their metadata carries the params above).
            record=f"results/runs/.groups/{_group.name}.json",
            glove=glove_option,
            config_args=config_args(),
        shell:
            "softlabels train-group {params.runs} --record {params.record} --data-dir results/data "
            "{params.glove} --threads {threads} {params.config_args} > {log} 2>&1"
