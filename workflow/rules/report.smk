# Rules of the report stage: results that need no training, each beside the thesis' stated value.
#   results/tables/cifar10s_summary.csv   CIFAR-10S dataset facts (§3.2) and how its labels differ from CIFAR-10H
#   results/tables/hmix_summary.csv       H-Mix statistics (§4.2 mixing-factor study, §5.1 soft labels)
#   results/figures/{figure}.png/.pdf/.csv  figures 3.2-3.4, B.1-B.2, 4.2, 4.4, 4.5, 5.1 (+ the plotted data)


rule cifar10s_summary:
    input:
        responses=f"{DATA}/cifar10s_responses.csv",
        cifar10h=f"{DATA}/cifar10h.npz",
    output:
        "results/tables/cifar10s_summary.csv",
    log:
        "logs/report/cifar10s_summary.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=settings(*SUMMARY_SETTINGS["cifar10s_summary"]),
        run_options=run_options(),
    shell:
        "softlabels cifar10s-summary --responses {input.responses} --cifar10h {input.cifar10h} --out {output} "
        "--settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


rule hmix_summary:
    input:
        judgments=f"{DATA}/hmix_judgments.csv",
        soft=f"{DATA}/hmix_soft_responses.csv",
        cifar10h=f"{DATA}/cifar10h.npz",
    output:
        "results/tables/hmix_summary.csv",
    log:
        "logs/report/hmix_summary.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=settings(*SUMMARY_SETTINGS["hmix_summary"]),
        run_options=run_options(),
    shell:
        "softlabels hmix-summary --judgments {input.judgments} --soft-responses {input.soft} "
        "--cifar10h {input.cifar10h} --out {output} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


wildcard_constraints:
    data_figure="|".join(FIGURE_INPUTS),
    summary="cifar10s_summary|hmix_summary",


rule data_figure:
    input:
        lambda wildcards: [f"{DATA}/{name}" for name in FIGURE_INPUTS[wildcards.data_figure]],
    output:
        png=report(
            "results/figures/{data_figure}.png",
            caption="../report/data_figure.rst",
            category=lambda wildcards: FIGURE_CHAPTER[wildcards.data_figure],
        ),
        pdf="results/figures/{data_figure}.pdf",
        csv="results/figures/{data_figure}.csv",
    log:
        "logs/report/{data_figure}.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=3000,
        runtime=10,
    params:
        data=DATA,
        settings=lambda wildcards: settings(*FIGURE_SETTINGS[wildcards.data_figure]),
        run_options=run_options(),
    shell:
        "softlabels figure {wildcards.data_figure} --data-dir {params.data} --out {output.png} "
        "--settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


# The HTML page of each dataset summary (cifar10s_summary: chapter 3, hmix_summary: chapter 4).
rule summary_html:
    input:
        "results/tables/{summary}.csv",
    output:
        report(
            "results/tables/{summary}.html",
            caption="../report/summary.rst",
            category=lambda wildcards: (
                "Chapter 3" if wildcards.summary == "cifar10s_summary" else "Chapter 4"
            ),
        ),
    log:
        "logs/report/{summary}_html.log",
    localrule: True
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        settings=settings(),
    shell:
        "softlabels csv-html {input} --out {output} > {log} 2>&1"


FINAL_OUTPUTS.extend(
    [
        f"results/tables/{name}.{ext}"
        for name in ("cifar10s_summary", "hmix_summary")
        for ext in ("csv", "html")
    ]
    + [f"results/figures/{name}.{ext}" for name in FIGURE_INPUTS for ext in ("png", "pdf", "csv")]
)


# How well the run reproduced the thesis: every result table and dataset summary against the thesis' intervals,
# one reproduced-vs-thesis figure per metric; first in the report (category Overview).


rule reproduction:
    input:
        tables=expand("results/tables/{table}.csv", table=TABLES),
        summaries=expand("results/tables/{summary}.csv", summary=("cifar10s_summary", "hmix_summary")),
    output:
        csv="results/tables/reproduction.csv",
        cells="results/figures/reproduction_cells.csv",
        md="results/tables/reproduction.md",
        html=report(
            "results/tables/reproduction.html",
            caption="../report/reproduction.rst",
            category="Overview",
        ),
        figures=[
            report(
                f"results/figures/reproduction_{metric}.png",
                caption="../report/reproduction_figure.rst",
                category="Overview",
            )
            for metric in REPRODUCTION_METRICS
        ],
    log:
        "logs/report/reproduction.log",
    localrule: True
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figures=lambda wildcards, output: os.path.dirname(output.figures[0]),
        settings=settings(),
    shell:
        "softlabels reproduction --tables {input.tables} --summaries {input.summaries} --out-csv {output.csv} "
        "--figures-dir {params.figures} > {log} 2>&1"


FINAL_OUTPUTS.extend(
    [f"results/tables/reproduction.{ext}" for ext in ("csv", "md", "html")]
    + ["results/figures/reproduction_cells.csv"]
    + [f"results/figures/reproduction_{metric}.png" for metric in REPRODUCTION_METRICS]
)
