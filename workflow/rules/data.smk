# Rules of the data stage (softlabels.data).
#   resources/<sources.<key>.file>          one fetch rule per public source: official URL (or data_mirror),
#                                           checked against the pinned checksum (or the mirror's MANIFEST)
#   results/data/cifar10_test.npz           CIFAR-10 test images uint8 [10000,32,32,3] + labels
#   results/data/splits.npz                 Uma et al. 70/30 split of the test set (train 7000, test 3000)
#   results/data/cifar10h.npz               CIFAR-10H counts + probs [10000,10]
#   results/data/cifar10h_annotators.csv    per-annotator pool rebuilt from the counts
#   results/data/cifar10s_responses.csv     CIFAR-10S: one row per elicited response
#   results/data/hmix_judgments.csv         H-Mix mixing-factor judgments (λ_h, confidence)
#   results/data/hmix_soft_responses.csv    H-Mix categorical soft-label responses over mixed images
#   results/data/hmix_stimuli.npz           every H-Mix stimulus rebuilt in pixel space
#   results/exports/human_soft_labels_data.json, processed_hmix_inferences.json
#                                           the parsed tables in the upstream JSON layouts

DATA = "results/data"
# Settings each rule's command reads are its `settings` param (common.smk). A fetch declares its `sources`
# entry only: the mirror it copies from and the `download` retry options do not change the verified bytes.


# One rule fetches every source: its wildcard is the file's path under resources_dir, constrained to the
# `file` of each `sources` entry (the frost overlays of the corruption stage included).
rule fetch:
    output:
        os.path.join(RESOURCES, "{source_file}"),
    log:
        "logs/data/fetch/{source_file}.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=500,
        runtime=60,
    params:
        source=source_key,
        settings=lambda wildcards: settings(f"sources.{source_key(wildcards)}"),
        run_options=run_options(),
    shell:
        "softlabels fetch {params.source} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


rule parse_cifar10:
    input:
        resource("cifar10"),
    output:
        f"{DATA}/cifar10_test.npz",
    log:
        "logs/data/parse_cifar10.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=settings(),
        run_options=run_options(),
    shell:
        "softlabels parse-cifar10 --archive {input} --out {output} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


rule parse_splits:
    input:
        train=resource("train_indices"),
        test=resource("test_indices"),
    output:
        f"{DATA}/splits.npz",
    log:
        "logs/data/parse_splits.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        settings=settings(),
        run_options=run_options(),
    shell:
        "softlabels parse-splits --train {input.train} --test {input.test} --out {output} --settings {params.settings:q} --run-options {params.run_options:q} "
        "> {log} 2>&1"


rule parse_cifar10h:
    input:
        counts=resource("cifar10h_counts"),
        probs=resource("cifar10h_probs"),
    output:
        npz=f"{DATA}/cifar10h.npz",
        annotators=f"{DATA}/cifar10h_annotators.csv",
    log:
        "logs/data/parse_cifar10h.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        settings=settings(),
        run_options=run_options(),
    shell:
        "softlabels parse-cifar10h --counts {input.counts} --probs {input.probs} --out {output.npz} "
        "--annotators {output.annotators} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


rule parse_cifar10s:
    input:
        resource("cifar10s_raw"),
    output:
        f"{DATA}/cifar10s_responses.csv",
    log:
        "logs/data/parse_cifar10s.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        settings=settings(),
        run_options=run_options(),
    shell:
        "softlabels parse-cifar10s --raw {input} --out {output} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


rule parse_hmix_judgments:
    input:
        raw=resource("hmix_mixing"),
        stimuli=resource("hmix_stimuli"),
    output:
        f"{DATA}/hmix_judgments.csv",
    log:
        "logs/data/parse_hmix_judgments.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        settings=settings(),
        run_options=run_options(),
    shell:
        "softlabels parse-hmix-judgments --raw {input.raw} --stimulus-list {input.stimuli} --out {output} "
        "--settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


rule parse_hmix_soft:
    input:
        resource("hmix_soft"),
    output:
        f"{DATA}/hmix_soft_responses.csv",
    log:
        "logs/data/parse_hmix_soft.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        settings=settings(),
        run_options=run_options(),
    shell:
        "softlabels parse-hmix-soft --raw {input} --out {output} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


rule parse_hmix_stimuli:
    input:
        judgments=f"{DATA}/hmix_judgments.csv",
        soft=f"{DATA}/hmix_soft_responses.csv",
        cifar10=f"{DATA}/cifar10_test.npz",
    output:
        f"{DATA}/hmix_stimuli.npz",
    log:
        "logs/data/parse_hmix_stimuli.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        settings=settings(),
        run_options=run_options(),
    shell:
        "softlabels parse-hmix-stimuli --judgments {input.judgments} --soft {input.soft} --cifar10 {input.cifar10} "
        "--out {output} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


rule export_responses:
    input:
        f"{DATA}/cifar10s_responses.csv",
    output:
        "results/exports/human_soft_labels_data.json",
    log:
        "logs/data/export_responses.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        settings=settings(),
        run_options=run_options(),
    shell:
        "softlabels export-responses --responses {input} --out {output} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


rule export_hmix:
    input:
        f"{DATA}/hmix_judgments.csv",
    output:
        "results/exports/processed_hmix_inferences.json",
    log:
        "logs/data/export_hmix.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        settings=settings(),
        run_options=run_options(),
    shell:
        "softlabels export-hmix --judgments {input} --out {output} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


FINAL_OUTPUTS.extend(
    [
        f"{DATA}/cifar10_test.npz",
        f"{DATA}/splits.npz",
        f"{DATA}/cifar10h.npz",
        f"{DATA}/cifar10h_annotators.csv",
        f"{DATA}/cifar10s_responses.csv",
        f"{DATA}/hmix_judgments.csv",
        f"{DATA}/hmix_soft_responses.csv",
        f"{DATA}/hmix_stimuli.npz",
        "results/exports/human_soft_labels_data.json",
        "results/exports/processed_hmix_inferences.json",
    ]
    # The downloads too: one deleted at start-up for a failed checksum (softlabels.data.verify) is fetched
    # again by the next default run even when everything built from it is up to date.
    + [resource(key) for key in config["sources"]]
)


# results/data/provenance.json: where each download came from (official URL or mirror, sha256, and whether
# the mirror's MANIFEST marks it as an approximation), collected from the `<file>.origin.json` sidecars that
# `softlabels fetch` writes beside every verified download.
rule provenance:
    input:
        [resource(key) for key in config["sources"]],
    output:
        f"{DATA}/provenance.json",
    log:
        "logs/data/provenance.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=500,
        runtime=10,
    params:
        settings=settings("sources"),
        run_options=run_options(),
    shell:
        "softlabels provenance --out {output} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


FINAL_OUTPUTS.append(f"{DATA}/provenance.json")
