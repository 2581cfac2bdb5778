# Rules of the claims stage: the thesis' findings (softlabels/report/claims.tsv, or config `claims.file`), each with a
# verdict at the scale run.
#   results/tables/{target}.csv + .md + .html  one row per claim: both thesis cells and their difference, the
#                                              reproduced paired difference with its 95% interval, the verdict
#   results/figures/{target}.png               forest plot of the reproduced against the thesis differences
# One rule builds every target of `claims.targets` (wildcard claims_target); each target name is also a rule
# (`snakemake claims`, `snakemake claims_chapter3`). `claims` is in `all` and first in the report (Overview).

CLAIM_TARGETS = list(config.get("claims", {}).get("targets", {}))


wildcard_constraints:
    claims_target="|".join(CLAIM_TARGETS) or "no-claims-target",


rule claims_target:
    input:
        lambda wildcards: group_records(claim_target_runs(wildcards)),
    output:
        csv="results/tables/{claims_target}.csv",
        md="results/tables/{claims_target}.md",
        html=report(
            "results/tables/{claims_target}.html",
            caption="../report/claims.rst",
            category="Overview",
        ),
        png=report(
            "results/figures/{claims_target}.png",
            caption="../report/claims.rst",
            category="Overview",
        ),
    log:
        "logs/tables/{claims_target}.log",
    localrule: True
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        metrics=lambda wildcards: " ".join(run_metrics(claim_target_runs(wildcards))),
        settings=settings("scale", *claims_setting_keys(config), *claims_scheme_keys(CLAIM_TARGETS)),
        run_options=run_options(),
    shell:
        "softlabels claims {wildcards.claims_target} --metrics {params.metrics} --out-csv {output.csv} --out-md {output.md} "
        "--out-html {output.html} --out-png {output.png} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


for _target in CLAIM_TARGETS:

    rule:
        name:
            _target
        input:
            expand("results/tables/{target}.{ext}", target=_target, ext=("csv", "md", "html")),
            f"results/figures/{_target}.png",
        localrule: True
        params:
            settings=settings(),


FINAL_OUTPUTS.extend(
    [f"results/tables/claims.{ext}" for ext in ("csv", "md", "html")] + ["results/figures/claims.png"]
    if "claims" in CLAIM_TARGETS
    else []
)
