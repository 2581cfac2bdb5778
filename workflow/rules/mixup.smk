# Inputs of the chapter-4/5 runs and appendix C (softlabels.train.synthetic, .mixing).
#   results/runs/{scheme}/{model}/seed{seed}/metrics.json  chapter-4/5 runs, trained by the generic `train_run`
#                                                          rule (train.smk); chapter-5 runs add "corruption":
#                                                          {mean, per_corruption, n} (CE vs CIFAR-10H labels)
# Their tables (4.1-4.3, 5.1, 5.2, C.1) and the chapter-4/5 documents are built by tables.smk.

# Extra parsed inputs of the chapter-4/5 runs (train_run's input function is keyed on the scheme's protocol).
TRAIN_DATA["chapter4"] = {
    **TRAIN_DATA["chapter3"],
    "hmix_stimuli": "results/data/hmix_stimuli.npz",
    "hmix_judgments": "results/data/hmix_judgments.csv",
}
TRAIN_DATA["chapter5"] = {
    **TRAIN_DATA["chapter3"],
    # appendix C refits the class-pair τ from the judgments (results/labels/class_pair_taus.csv shows it)
    "hmix_judgments": "results/data/hmix_judgments.csv",
    "corruption": CORRUPTION_OUTPUTS,
}
