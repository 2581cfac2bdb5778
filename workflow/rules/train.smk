# Rules of the train stage: one rule per protocol, `train_chapter3`, `train_chapter4`, `train_chapter5` (their
# names and resources are what workflow/profiles/slurm addresses); one job trains one *group* of runs (same
# protocol, model and training-set size) as one fused computation (`softlabels train-group`). A run is (scheme,
# model, seed) and keeps its own files:
#   results/runs/{scheme}/{model}/seed{seed}/spec.json     the run's effective settings
#   results/runs/{scheme}/{model}/seed{seed}/metrics.json  evaluation of the final-epoch model, with its run_key
#                                                          (+ train_log.csv, checkpoint.pt for resuming)
#   results/runs/.groups/{protocol}/{group}.json           the group job's output: members, aliases, which of
#                                                          them it trained, their run keys, seconds
# The plan follows from the config alone (softlabels.experiments.groups.config_groups): every run a table or figure
# reads, grouped per (protocol, model, training-set size) into chunks of `group_size`, a group named after its
# first member (`resnet8a.hard.seed0`); `snakemake -n` names the same jobs whatever is on disk.
# Whether a run is finished is decided in one place, softlabels.experiments.runs.run_is_current: its metrics.json
# records its run_key, the digest of its spec (without the how-to-run `device`) and of its input files. It is
# used by the job (it trains only its members that are not current, copies only stale aliases) and at start-up
# (common.smk discard_stale_group_records: a group record whose runs are not all current is deleted, so the
# job runs again). The job's rerun triggers are Snakemake's own: a missing record, a changed `params`
# (members, their spec digests) or an input newer than the record. So adding a seed trains only the new runs
# (a group that gains finished members skips them), and editing a setting retrains exactly the runs whose
# spec changed. The runs' files are not outputs (Snakemake deletes a job's outputs before running it, which
# would throw away finished members); targets are the tables, or a group record. As for any intermediate file,
# Snakemake remakes a discarded record only for a target that needs it: `all` (which lists every record),
# the record itself, or a table that has another reason to run.
# Runs whose specs differ only in the scheme's name train once; the group copies the results to the others.

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
# With `augmenting_pairs` (quick, smoke), chapter 5's training split starts with the endpoint images of the kept
# H-Mix stimuli, as chapter 4's does (softlabels.train.run_data.split_images).
if config["protocols"]["chapter5"].get("augmenting_pairs") is not None:
    TRAIN_DATA["chapter5"]["hmix_stimuli"] = "results/data/hmix_stimuli.npz"
# The data stage's record of every input (copied into each metrics.json as provenance.inputs).
PROVENANCE = f"{DATA}/provenance.json"  # rule provenance, data.smk


TRAINING_GROUPS, RUN_SPECS, CANONICAL_RUN = config_groups(config, all_training_runs())
GROUPS = {(group.protocol, group.name): group for group in TRAINING_GROUPS}
GROUP_OF_RUN = {run: group for group in TRAINING_GROUPS for run in group_runs(group)}

if MAIN_PROCESS:
    discard_stale_group_records()

# The group records are final targets too: `snakemake all` remakes a discarded one (and the tables on it).
FINAL_OUTPUTS.extend(group_record(group) for group in TRAINING_GROUPS)


# Before any job of a real run: inputs that cannot be had stop the run with one message (common.smk), then the
# training plan (and its stop for the paper scale on a CPU).
onstart:
    check_inputs_before_any_job()
    print_training_plan()


rule train_chapter3:
    input:
        data=group_data,
        provenance=PROVENANCE,
    output:
        "results/runs/.groups/{protocol}/{group}.json",
    log:
        "logs/train_groups/{protocol}/{group}.log",
    wildcard_constraints:
        protocol="chapter3",
        group=group_pattern("chapter3"),
    conda:
        "../../envs/softlabels.yaml"
    threads: protocol_resource("threads")
    resources:
        gpu=protocol_resource("gpu"),
        cpus_per_gpu=protocol_resource("threads"),
        mem_mb=protocol_resource("mem_mb"),
        runtime=protocol_resource("runtime_min"),
    params:
        runs=group_arguments,
        selections=group_selections,
        # The members' specs: what the job trains, and its rerun trigger (an edit that changes a run's spec).
        specs=group_specs,
        settings=lambda wildcards: settings(f"protocols.{wildcards.protocol}.cudnn_benchmark"),
        glove=resource("glove"),
        run_options=run_options(),
    shell:
        "softlabels train-group {params.runs} --specs {params.specs:q} --record {output} --inputs {input.data} "
        "{params.selections} "
        "--data-dir results/data --glove {params.glove} --threads {threads} --settings {params.settings:q} "
        "--run-options {params.run_options:q} > {log} 2>&1"


use rule train_chapter3 as train_chapter4 with:
    wildcard_constraints:
        protocol="chapter4",
        group=group_pattern("chapter4"),


use rule train_chapter3 as train_chapter5 with:
    wildcard_constraints:
        protocol="chapter5",
        group=group_pattern("chapter5"),
