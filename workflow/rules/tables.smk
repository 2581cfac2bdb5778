# Rules of the tables stage: chapter-3 and appendix-B result tables and figures, each beside the thesis.
#   results/tables/{table}.csv + .md   mean ± 95% CI over runs per row × eval set × metric, thesis value beside
#   results/figures/{figure}.png/.pdf  figures 3.5, 3.6, B.3 (+ .csv of the plotted values)
#   results/tables/chapter3.md         every chapter-3 / appendix-B table in one document

CH3_TABLES = [t for t in config["tables"] if t.startswith(("table3_", "tableB_"))]
CH3_FIGURES = [f for f in config.get("figures", {}) if f in ("fig3_5", "fig3_6", "figB_3")]


for _table in CH3_TABLES:

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
                category=result_category(_table),
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
            config_args=config_args(),
        shell:
            "softlabels table {params.name} --metrics {input} --out-csv {output.csv} --out-md {output.md} "
            "--out-html {output.html} "
            "{params.config_args} > {log} 2>&1"


for _figure in CH3_FIGURES:

    rule:
        name:
            f"figure_{_figure}"
        input:
            run_metrics(result_set_runs(config["figures"][_figure])),
        output:
            png=report(
                f"results/figures/{_figure}.png",
                caption=f"../report/{_figure}.rst",
                category=result_category(_figure),
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
            config_args=config_args(),
        shell:
            "softlabels run-figure {params.name} --metrics {input} --out {output.png} {params.config_args} > {log} 2>&1"


rule chapter3_tables:
    input:
        expand("results/tables/{table}.md", table=CH3_TABLES),
    output:
        md="results/tables/chapter3.md",
        html=report(
            "results/tables/chapter3.html",
            caption="../report/chapter3.rst",
            category="Chapter 3",
        ),
    log:
        "logs/tables/chapter3.log",
    localrule: True
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "softlabels collect-tables {input} --out {output.md} --out-html {output.html} "
        "--title 'Chapter 3 and appendix B: results beside the thesis' > {log} 2>&1"


FINAL_OUTPUTS.extend(
    [f"results/tables/{t}.{ext}" for t in CH3_TABLES for ext in ("csv", "md", "html")]
    + [f"results/figures/{f}.{ext}" for f in CH3_FIGURES for ext in ("png", "pdf", "csv")]
    + ["results/tables/chapter3.md", "results/tables/chapter3.html"]
)
