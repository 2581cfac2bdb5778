# Rules of the mixup stage: chapters 4 and 5 and appendix C (softlabels.train.synthetic, .mixing).
#   results/runs/{scheme}/{model}/seed{seed}/metrics.json  chapter-4/5 runs, trained by the group jobs of
#                                                          train.smk; chapter-5 runs add "corruption":
#                                                          {mean, per_corruption, n} (CE vs CIFAR-10H labels)
#   results/tables/{table4_1,4_2,4_3,5_1,5_2,C_1}.csv + .md  mean ± 95% CI over runs beside the thesis values
#   results/tables/chapter4.md, chapter5.md                  the tables of each chapter in one document

# The chapter-4/5 runs' inputs (TRAIN_DATA) and their group jobs are in train.smk.
MIXUP_TABLES = [t for t in config["tables"] if t.startswith(("table4_", "table5_", "tableC_"))]
MIXUP_DOCUMENTS = {
    document: tables
    for document, tables in (
        ("chapter4", [t for t in MIXUP_TABLES if t.startswith("table4_")]),
        ("chapter5", [t for t in MIXUP_TABLES if t.startswith(("table5_", "tableC_"))]),
    )
    if tables
}
MIXUP_TITLES = {
    "chapter4": "Chapter 4: human mixing judgments on the 810-image augmenting set, beside the thesis",
    "chapter5": "Chapter 5 and appendix C: mixup variants and soft endpoints, beside the thesis",
}
MIXUP_CATEGORIES = {"table4": "Chapter 4", "table5": "Chapter 5", "tableC": "Appendix C"}

for _table in MIXUP_TABLES:

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
                category=MIXUP_CATEGORIES[_table[:6]],
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


for _document, _tables in MIXUP_DOCUMENTS.items():

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
                category="Chapter 4" if _document == "chapter4" else "Chapter 5",
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
            title=MIXUP_TITLES[_document],
        shell:
            "softlabels collect-tables {input} --out {output.md} --out-html {output.html} --title '{params.title}' "
            "> {log} 2>&1"


FINAL_OUTPUTS.extend(
    [f"results/tables/{t}.{ext}" for t in MIXUP_TABLES for ext in ("csv", "md", "html")]
    + [f"results/tables/{d}.{ext}" for d in MIXUP_DOCUMENTS for ext in ("md", "html")]
)
