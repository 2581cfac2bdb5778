# Rules of the labels stage (softlabels.labels).
#   results/exports/cifar10s_{t1|t2}{unif|clamp|semantic}_redist{γ·100}.json
#                                            CIFAR-10S per-response labels, {test index: [10-vectors]}, in the
#                                            layout of the released cifar10s_t2clamp_redist10.json
#   results/exports/hmix_individ_soft_labels.json
#                                            H-Mix per-annotator T2-Clamp labels, {stimulus: [10-vectors]}
#   results/labels/simulator.json            appendix-B.5 simulator: Beta fits and histograms per entropy group
#   results/labels/class_pair_taus.csv       appendix-C logistic τ per class pair (k, x0, n, rmse)


rule export_cifar10s_labels:
    input:
        # GloVe rows only for the semantic varieties.
        unpack(lambda wc: {"glove": resource("glove")} if wc.spread == "semantic" else {}),
        responses="results/data/cifar10s_responses.csv",
    output:
        "results/exports/cifar10s_{tops}{spread}_redist{pct}.json",
    log:
        "logs/labels/cifar10s_{tops}{spread}_redist{pct}.log",
    wildcard_constraints:
        tops="t1|t2",
        spread="unif|clamp|semantic",
        pct=r"\d+",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        variety=lambda wc: f"{wc.tops}_{wc.spread}",
        gamma=lambda wc: int(wc.pct) / 100,
        glove=lambda wc, input: f"--glove {input.glove}" if "glove" in input.keys() else "",
        settings=settings("labels.redistribution_path", "labels.semantic_base"),
        run_options=run_options(),
    shell:
        "softlabels export-labels --variety {params.variety} --gamma {params.gamma} --responses {input.responses} "
        "{params.glove} --out {output} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


rule export_hmix_soft_labels:
    input:
        responses="results/data/hmix_soft_responses.csv",
    output:
        "results/exports/hmix_individ_soft_labels.json",
    log:
        "logs/labels/hmix_individ_soft_labels.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        settings=settings("labels.gamma", "labels.hmix_redistribution_path", "labels.semantic_base"),
        run_options=run_options(),
    shell:
        "softlabels export-hmix-soft-labels --responses {input.responses} --out {output} --settings {params.settings:q} --run-options {params.run_options:q} "
        "> {log} 2>&1"


rule fit_simulator:
    input:
        responses="results/data/cifar10s_responses.csv",
        cifar10h="results/data/cifar10h.npz",
    output:
        "results/labels/simulator.json",
    log:
        "logs/labels/simulator.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        settings=settings("labels.simulator_entropy_threshold", "labels.gamma"),
        run_options=run_options(),
    shell:
        "softlabels fit-simulator --responses {input.responses} --cifar10h {input.cifar10h} --out {output} "
        "--settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


rule fit_class_pair_taus:
    input:
        judgments="results/data/hmix_judgments.csv",
    output:
        "results/labels/class_pair_taus.csv",
    log:
        "logs/labels/class_pair_taus.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        settings=settings("labels.tau_stimuli"),
        run_options=run_options(),
    shell:
        "softlabels fit-taus --judgments {input.judgments} --out {output} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


FINAL_OUTPUTS.extend(
    [
        f"results/exports/cifar10s_t2clamp_redist{round(config['labels']['gamma'] * 100)}.json",
        "results/exports/hmix_individ_soft_labels.json",
        "results/labels/simulator.json",
        "results/labels/class_pair_taus.csv",
    ]
)
