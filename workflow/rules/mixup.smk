# Inputs of the chapter-4/5 runs and appendix C (softlabels.train.synthetic, .mixing).
#   results/runs/{scheme}/{model}/seed{seed}/metrics.json  chapter-4/5 runs, trained by the group jobs of
#                                                          train.smk; chapter-5 runs add "corruption":
#                                                          {mean, per_corruption, n} (CE vs CIFAR-10H labels)
# Their tables (4.1-4.3, 5.1, 5.2, C.1) and the chapter-4/5 documents are built by tables.smk.
# The chapter-4/5 entries of TRAIN_DATA are in train.smk: the group jobs are defined there, when the DAG is
# built, and need every protocol's inputs at that point.
