# Rules of the elicit stage (softlabels.elicit): own soft labels in place of CIFAR-10S in the chapter-3 runs.
#   results/data/own_responses.csv   config key own_responses, checked: tidy columns, CIFAR-10 test images, none
#                                    in the CIFAR-10H evaluation hold-out (splits.npz 'test')
# The study itself runs by hand: softlabels elicit serve STUDY.yaml, then softlabels elicit export.
# CHAPTER3_RESPONSES (common.smk) switches the chapter-3 runs' input; the chapter-4/5 runs keep CIFAR-10S
# (chapter 5's soft endpoints), see TRAIN_DATA in train.smk.

OWN_RESPONSES = f"{DATA}/own_responses.csv"

if config.get("own_responses"):

    rule elicit_import:
        input:
            responses=config["own_responses"],
            splits=f"{DATA}/splits.npz",
        output:
            OWN_RESPONSES,
        log:
            "logs/data/elicit_import.log",
        conda:
            "../../envs/softlabels.yaml"
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            settings=settings("own_responses", "evaluation.cifar10s_holdout.size"),
            run_options=run_options(),
        shell:
            "softlabels elicit import --responses {input.responses} --splits {input.splits} --out {output} "
            "--settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"
