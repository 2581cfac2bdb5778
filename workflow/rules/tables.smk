# Rules of the tables stage: every result table of `tables:` (chapters 3-5, appendices B and C) and the figures
# of `figures:` built from training runs, each beside the thesis.
#   results/tables/{table}.csv + .md + .html  mean ± 95% CI over runs per row × eval set × metric, thesis value
#                                             beside it, and how the runs were made (settings, precision,
#                                             device, corruption source, input provenance)
#   results/figures/{figure}.png/.pdf/.csv    figures 3.5, 3.6, B.3 (+ the plotted values)
#   results/tables/chapter{3,4,5}.md + .html  the tables of each part of the thesis in one document
from softlabels.report.tables import table_setting_keys

TABLES = list(config["tables"])
RUN_FIGURES = [f for f in config.get("figures", {}) if f in ("fig3_5", "fig3_6", "figB_3")]
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


for _table in TABLES:

    rule:
        name:
            f"table_{_table}"
        input:
            run_metrics(result_set_runs(config["tables"][_table])),
        output:
            csv=f"results/tables/{_table}.csv",
            md=f"results/tables/{_table}.md",
            html=report(
                f"results/tables/{_table}.html",
                caption=f"../report/{_table}.rst",
                category=report_category(_table),
            ),
        log:
            f"logs/tables/{_table}.log",
        localrule: True
        conda:
            "../../envs/softlabels.yaml"
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            name=_table,
            settings=settings(*table_setting_keys(config, _table)),
            config_args=config_args(),
        shell:
            "softlabels table {params.name} --metrics {input} --out-csv {output.csv} --out-md {output.md} "
            "--out-html {output.html} "
            "{params.config_args} > {log} 2>&1"


for _figure in RUN_FIGURES:

    rule:
        name:
            f"figure_{_figure}"
        input:
            run_metrics(result_set_runs(config["figures"][_figure])),
        output:
            png=report(
                f"results/figures/{_figure}.png",
                caption=f"../report/{_figure}.rst",
                category=report_category(_figure),
            ),
            pdf=f"results/figures/{_figure}.pdf",
            csv=f"results/figures/{_figure}.csv",
        log:
            f"logs/figures/{_figure}.log",
        localrule: True
        conda:
            "../../envs/softlabels.yaml"
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            name=_figure,
            settings=settings(*table_setting_keys(config, _figure)),
            config_args=config_args(),
        shell:
            "softlabels run-figure {params.name} --metrics {input} --out {output.png} {params.config_args} > {log} 2>&1"


for _document, _tables in TABLE_DOCUMENTS.items():

    rule:
        name:
            f"{_document}_tables"
        input:
            expand("results/tables/{table}.md", table=_tables),
        output:
            md=f"results/tables/{_document}.md",
            html=report(
                f"results/tables/{_document}.html",
                caption=f"../report/{_document}.rst",
                category=f"Chapter {_document[-1]}",
            ),
        log:
            f"logs/tables/{_document}.log",
        localrule: True
        conda:
            "../../envs/softlabels.yaml"
        resources:
            mem_mb=500,
            runtime=5,
        params:
            title=DOCUMENT_TITLES[_document],
            settings=settings(),
        shell:
            "softlabels collect-tables {input} --out {output.md} --out-html {output.html} --title '{params.title}' "
            "> {log} 2>&1"


FINAL_OUTPUTS.extend(
    [f"results/tables/{t}.{ext}" for t in TABLES for ext in ("csv", "md", "html")]
    + [f"results/figures/{f}.{ext}" for f in RUN_FIGURES for ext in ("png", "pdf", "csv")]
    + [f"results/tables/{d}.{ext}" for d in TABLE_DOCUMENTS for ext in ("md", "html")]
)
