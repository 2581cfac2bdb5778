# Rules of the tables stage: every result table of `tables:` (chapters 3-5, appendices B and C) and the figures
# of `figures:` built from training runs, each beside the thesis.
#   results/tables/{table}.csv + .md + .html  mean ± 95% CI over runs per row × eval set × metric, thesis value
#                                             beside it, and how the runs were made (settings, precision,
#                                             device, corruption source, input provenance)
#   results/figures/{figure}.png/.pdf/.csv    figures 3.5, 3.6, B.3 (+ the plotted values)
#   results/tables/chapter{3,4,5}.md + .html  the tables of each part of the thesis in one document
# One wildcard rule per kind (`table`, `run_figure`, `chapter_tables`); each wildcard is constrained to the names
# the config defines, and the report caption of a kind picks the item's text by the wildcard.

TABLES = list(config["tables"])
RUN_FIGURE_NAMES = [f for f in config.get("figures", {}) if f in RUN_FIGURES]
# Which tables each collected document shows, by name prefix.
TABLE_DOCUMENTS = {
    document: [t for t in TABLES if t.startswith(prefixes)]
    for document, prefixes in (
        ("chapter3", ("table3_", "tableB_")),
        ("chapter4", ("table4_",)),
        ("chapter5", ("table5_", "tableC_")),
    )
}
TABLE_DOCUMENTS = {document: tables for document, tables in TABLE_DOCUMENTS.items() if tables}
DOCUMENT_TITLES = {
    "chapter3": "Chapter 3 and appendix B: results beside the thesis",
    "chapter4": "Chapter 4: human mixing judgments on the 810-image augmenting set, beside the thesis",
    "chapter5": "Chapter 5 and appendix C: mixup variants and soft endpoints, beside the thesis",
}


wildcard_constraints:
    table="|".join(TABLES),
    run_figure="|".join(RUN_FIGURE_NAMES) or "no-run-figure",
    document="|".join(TABLE_DOCUMENTS) or "no-document",


rule table:
    input:
        result_set_inputs("tables", "table"),
    output:
        csv="results/tables/{table}.csv",
        md="results/tables/{table}.md",
        html=report(
            "results/tables/{table}.html",
            caption="../report/table.rst",
            category=lambda wildcards: report_category(wildcards.table),
        ),
    log:
        "logs/tables/{table}.log",
    localrule: True
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        metrics=result_set_metrics("tables", "table"),
        settings=lambda wildcards: settings(*table_setting_keys(config, wildcards.table)),
        run_options=run_options(),
    shell:
        "softlabels table {wildcards.table} --metrics {params.metrics} --out-csv {output.csv} --out-md {output.md} "
        "--out-html {output.html} "
        "--settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


rule run_figure:
    input:
        result_set_inputs("figures", "run_figure"),
    output:
        png=report(
            "results/figures/{run_figure}.png",
            caption="../report/run_figure.rst",
            category=lambda wildcards: report_category(wildcards.run_figure),
        ),
        pdf="results/figures/{run_figure}.pdf",
        csv="results/figures/{run_figure}.csv",
    log:
        "logs/figures/{run_figure}.log",
    localrule: True
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        metrics=result_set_metrics("figures", "run_figure"),
        settings=lambda wildcards: settings(*table_setting_keys(config, wildcards.run_figure)),
        run_options=run_options(),
    shell:
        "softlabels run-figure {wildcards.run_figure} --metrics {params.metrics} --out {output.png} --settings {params.settings:q} --run-options {params.run_options:q} "
        "> {log} 2>&1"


rule chapter_tables:
    input:
        lambda wildcards: expand("results/tables/{table}.md", table=TABLE_DOCUMENTS[wildcards.document]),
    output:
        md="results/tables/{document}.md",
        html=report(
            "results/tables/{document}.html",
            caption="../report/chapter_tables.rst",
            category=lambda wildcards: f"Chapter {wildcards.document[-1]}",
        ),
    log:
        "logs/tables/{document}.log",
    localrule: True
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        title=lambda wildcards: DOCUMENT_TITLES[wildcards.document],
        settings=settings(),
    shell:
        "softlabels collect-tables {input} --out {output.md} --out-html {output.html} --title '{params.title}' "
        "> {log} 2>&1"


FINAL_OUTPUTS.extend(
    [f"results/tables/{t}.{ext}" for t in TABLES for ext in ("csv", "md", "html")]
    + [f"results/figures/{f}.{ext}" for f in RUN_FIGURE_NAMES for ext in ("png", "pdf", "csv")]
    + [f"results/tables/{d}.{ext}" for d in TABLE_DOCUMENTS for ext in ("md", "html")]
)
