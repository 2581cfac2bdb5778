"""`snakemake --report results/report.html` after a smoke run: one self-contained page that holds every table
and figure of the run, each with a caption naming the thesis table or figure it reproduces, grouped by chapter.
A check renders the page in headless Chromium (skipped where Chromium is not installed, failed there when
CI=true)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, missing_precondition, run_snakemake

pytestmark = [pytest.mark.slow, pytest.mark.mirror]

# What the smoke run builds (empty = the default target, `rule all`: every table and figure).
TARGETS: list[str] = []
# A thesis table or figure, or for the dataset summaries (which the thesis states in running text) a section.
THESIS_ITEM = re.compile(r"\b(Table|Figure|Fig\.)\s*(<[^>]+>)*\s*[0-9A-C]+\.\d+|§\s*\d+\.\d+")
CHAPTER = re.compile(r"^(Chapter [3-5]|Appendix [BC])\b")
# The claims verdicts, then the reproduction summary and its figures come first, under Overview.
OVERVIEW = re.compile(r"results/(tables|figures)/(claims|reproduction)")


def report_data(html: str) -> tuple[dict, dict, str]:
    """The report's embedded `results` (path -> name, caption, data_uri, ...), `categories`
    (category -> subcategory -> paths) and the rendered top page."""

    def var(name: str) -> str:
        # The data blocks are JSON literals (the bundled libraries also declare a `var results`).
        found = re.findall(rf"^\s*var {name} = ([{{\"].*);\s*$", html, flags=re.MULTILINE)
        assert found, f"report has no `var {name}` data"
        return found[-1]

    return json.loads(var("results")), json.loads(var("categories")), json.loads(var("workflow_desc"))


def expected_items(workdir: Path) -> list[str]:
    """Every table of `tables:` (its HTML rendering: CSV/Markdown would only download) and every figure of
    `figures:` in the smoke config, from the config, not from what the run left on disk; then any other table
    or figure the run made (claims, reproduction, dataset summaries)."""
    from softlabels import config as cfg

    config = cfg.load(REPO / "config.yaml", {"scale": "smoke"})
    assert config["tables"] and config["figures"], "the smoke config names no table or figure"
    named = [f"results/tables/{t}.html" for t in config["tables"]]
    named += [f"results/figures/{f}.png" for f in config["figures"]]
    for csv in sorted(workdir.glob("results/tables/*.csv")):
        assert csv.with_suffix(".html").exists(), f"{csv} has no HTML rendering for the report"
    on_disk = [p.with_suffix(".html") for p in sorted(workdir.glob("results/tables/*.csv"))]
    on_disk += sorted(workdir.glob("results/figures/*.png"))
    return named + [path for path in (str(p.relative_to(workdir)) for p in on_disk) if path not in named]


@pytest.fixture(scope="module")
def report(smoke_workdir, data_mirror) -> tuple[Path, str]:
    """The smoke run (shared with the other tests that build the whole DAG: a no-op when one already did)."""
    workdir = smoke_workdir
    config = ["--config", "scale=smoke", f"data_mirror={data_mirror}"]  # last: it takes every word after it
    done = run_snakemake(workdir, "--cores", "2", *TARGETS, *config, timeout=1800)
    assert done.returncode == 0, done.stderr[-6000:]
    made = run_snakemake(workdir, "--report", "results/report.html", *TARGETS, *config)
    assert made.returncode == 0, made.stderr[-6000:]
    return workdir, (workdir / "results" / "report.html").read_text()


def test_report_holds_every_table_and_figure_with_a_thesis_caption(report):
    workdir, html = report
    results, categories, top = report_data(html)
    expected = expected_items(workdir)
    in_categories = {path: cat for cat, subs in categories.items() for paths in subs.values() for path in paths}
    for path in expected:
        assert path in results, f"{path} is not in the report (it has {sorted(results)})"
        item = results[path]
        assert item["data_uri"].startswith("data:"), f"{path} is not embedded"
        assert THESIS_ITEM.search(item["caption"] or ""), f"caption of {path} names no thesis table/figure"
        if OVERVIEW.match(path):
            assert in_categories.get(path) == "Overview", f"{path} is not under Overview"
            continue
        assert path in in_categories and CHAPTER.match(in_categories[path]), f"{path} is not under a chapter"
    assert "Collins (2022)" in top and "smoke" in top
    assert "Overview" in top and "approximation" in top


def test_report_lists_the_claims_first(report):
    """The claims verdicts (`rule all` builds target `claims`) are the first item of the Overview, before the
    reproduction summary, and their page states the scale and the approximate-inputs banner."""
    workdir, html = report
    results, categories, _ = report_data(html)
    overview = [path for paths in categories["Overview"].values() for path in paths]
    assert overview[0] == "results/tables/claims.html", overview
    assert "results/figures/claims.png" in overview and "results/tables/reproduction.html" in overview
    assert overview.index("results/figures/claims.png") < overview.index("results/tables/reproduction.html")
    page = (workdir / "results" / "tables" / "claims.html").read_text()
    assert "Scale <code>smoke</code>" in page and "Approximate inputs" in page
    assert "Do the thesis' findings hold" in results["results/tables/claims.html"]["caption"]


def test_report_is_self_contained(report):
    _, html = report
    external = re.findall(r"<(?:script|img|link)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//", html)
    assert not external, external[:5]


@pytest.mark.browser
def test_report_renders_in_headless_chromium(report, tmp_path):
    """The page renders (non-blank screenshot). Skips where Chromium is not installed; fails there with CI=true."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        missing_precondition("headless Chromium not installed (Debian: apt-get install chromium)")
    workdir, _ = report
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,1000",
         f"--screenshot={shot}", "--virtual-time-budget=5000", (workdir / "results" / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and shot.exists(), done.stderr[-3000:]
    from PIL import Image

    pixels = Image.open(shot).convert("L")
    low, high = pixels.getextrema()
    assert high - low > 100, "the screenshot is blank"
