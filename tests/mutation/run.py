"""Mutation score of the scientific core, with mutmut (configured under [tool.mutmut] in pyproject.toml).

    python tests/mutation/run.py                      # every module below, from scratch
    python tests/mutation/run.py metrics trainer      # only these modules
    python tests/mutation/run.py --keep labels        # reuse the results of an earlier run where the code is unchanged
    python tests/mutation/run.py --keep --only 'softlabels.labels.tau.*'   # some mutants (mutmut name globs)
    python tests/mutation/run.py --retry metrics      # after adding tests: rerun only what was not killed

(--retry is sound only when tests were added or strengthened since the last run and the code is unchanged: a
mutant that a test killed stays killed. A change of [tool.mutmut] in pyproject.toml makes mutmut discard every
earlier result, so --retry and --keep then start from scratch.)

mutmut copies src/ and tests/ into mutants/ (a folder git ignores: the script writes mutants/.gitignore),
makes every mutant of the files named by `only_mutate`, and runs, for each mutant of the selected modules,
the unit tests that call the mutated function (`pytest_add_cli_args_test_selection`). Per module the script
prints killed, survived, timed out, no tests (no selected test calls the function) and equivalent (survivors
listed in tests/mutation/equivalent.txt, with the reason), and the score

    killed% = (killed + timed out) / (all mutants − equivalent)

and writes every surviving mutant that is not listed as equivalent, with its diff, to
results/mutation/survivors.txt. Not part of the default test run: the scope is 4971 mutants, and the whole
command took 44 min (2633 s) on a 2-core machine (measured 2026-12-06; a --retry after new tests, 5 to
15 min).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EQUIVALENT = Path(__file__).with_name("equivalent.txt")
SURVIVORS = REPO / "results" / "mutation" / "survivors.txt"

#: module -> mutant-name globs. Of the trainer only the per-member CPU parts: the learning-rate schedule and the
#: per-member gradient clipping (their function names are kept stable for this selection). Of labels/cli.py the
#: argparse declarations (`register`: option names and help texts) are left out, and so is claims.py's
#: `register_claims`: the commands' behaviour, what they read, write and print, is in through the `run_*`
#: functions, the loaders and `_cmd_claims`.
MODULES = {
    "labels": ["softlabels.labels.[!c]*", "softlabels.labels.cli.x_[!r]*", "softlabels.labels.cli.x_run_*"],
    "metrics": ["softlabels.evaluate.metrics.*"],
    "claims": ["softlabels.report.claims.x_[!r]*"],  # every function but register_claims
    "reproduction": ["softlabels.report.reproduction.*"],
    "trainer": ["softlabels.train.trainer.x_learning_rate__mutmut_*", "softlabels.train.trainer.x_clip_rows___mutmut_*"],
}
KILLED_CODES = {1, 3}
TIMEOUT_CODES = {36, -24, 24, 152, 255}
NO_TESTS_CODES = {5, 33}


def equivalent_mutants(path: Path = EQUIVALENT) -> dict[str, str]:
    """{mutant name: why it cannot change behaviour} from `name  reason` lines (# starts a comment)."""
    listed = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: mutant {name} has no reason")
        listed[name] = reason.strip()
    return listed


def mutant_results(root: Path) -> dict[str, int | None]:
    """{mutant name: mutmut's exit code} from the .meta files under root/mutants/src."""
    results = {}
    for meta in sorted((root / "mutants" / "src").rglob("*.py.meta")):
        results.update(json.loads(meta.read_text())["exit_code_by_key"])
    return results


def module_of(name: str) -> str | None:
    for module, globs in MODULES.items():
        if any(fnmatch.fnmatch(name, g) for g in globs):
            return module
    return None


def classify(code: int | None, name: str, equivalent: dict[str, str]) -> str:
    if code in KILLED_CODES:
        return "killed"
    if code in TIMEOUT_CODES:
        return "timeout"
    if code is None:
        return "not run"
    if code in NO_TESTS_CODES:
        return "no tests"
    if code == 0 and name in equivalent:
        return "equivalent"
    return "survived" if code == 0 else f"other ({code})"


def score_table(results: dict[str, int | None], modules: list[str], equivalent: dict[str, str],
                only: list[str] | None = None) -> tuple[str, list[str]]:
    """The per-module table and the names of the survivors that are not listed as equivalent (of the mutants
    matching `only`, when given)."""
    columns = ["killed", "survived", "timeout", "no tests", "equivalent", "not run"]
    counts = {m: Counter() for m in modules}
    survivors = []
    for name, code in sorted(results.items()):
        module = module_of(name)
        if module not in counts or (only and not any(fnmatch.fnmatch(name, g) for g in only)):
            continue
        status = classify(code, name, equivalent)
        counts[module][status] += 1
        if status in ("survived", "no tests") or status.startswith("other"):
            survivors.append(name)
    lines = [f"{'module':<14}" + "".join(f"{c:>12}" for c in columns) + f"{'total':>8}{'killed %':>10}"]
    total = Counter()
    for module in modules + ["all"]:
        c = total if module == "all" else counts[module]
        if module != "all":
            total.update(c)
        n = sum(c.values())
        scored = n - c["equivalent"] - c["not run"]
        pct = f"{100 * (c['killed'] + c['timeout']) / scored:.1f}" if scored else "-"
        lines.append(f"{module:<14}" + "".join(f"{c[col]:>12}" for col in columns) + f"{n:>8}{pct:>10}")
    return "\n".join(lines), survivors


def write_survivors(names: list[str], results: dict[str, int | None], path: Path = SURVIVORS) -> None:
    """Each surviving mutant with its diff (mutmut's own rendering), for writing the test that kills it."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    path.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    for name in names:
        try:
            diff = get_diff_for_mutant(name)
        except Exception as exc:  # a diff that cannot be rendered still names the mutant
            diff = f"(no diff: {exc})"
        parts.append(f"# {name}: exit code {results[name]}\n{diff}\n")
    path.write_text("\n".join(parts))


def run_mutmut(globs: list[str], max_children: int) -> int:
    env = dict(os.environ)
    # In its own processes mutmut puts mutants/src first and drops ./src; the Snakemake subprocesses some
    # tests start import this checkout's (unmutated) src, matching the workflow/ copied beside the mutants.
    env["PYTHONPATH"] = str(REPO / "src")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("CI", None)  # the selected tests need no mirror, browser or cluster
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or "mutmut"
    return subprocess.run([mutmut, "run", "--max-children", str(max_children), *globs], cwd=REPO, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"modules to mutate (default all: {', '.join(MODULES)})")
    parser.add_argument("--keep", action="store_true", help="reuse mutants/ (results of unchanged code stand)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested in parallel (default 2)")
    parser.add_argument("--only", action="append", metavar="GLOB",
                        help="run and score only the mutants whose name matches (repeatable; with --keep)")
    parser.add_argument("--retry", action="store_true",
                        help="rerun only the mutants of the modules not killed in the last run (implies --keep)")
    parser.add_argument("--report-only", action="store_true", help="print the scores of the last run, run nothing")
    args = parser.parse_args(argv)
    modules = args.modules or list(MODULES)
    unknown_modules = [m for m in modules if m not in MODULES]
    if unknown_modules:
        parser.error(f"unknown module(s) {', '.join(unknown_modules)} (known: {', '.join(MODULES)})")
    os.chdir(REPO)
    equivalent = equivalent_mutants()
    start = time.monotonic()
    if not args.report_only:
        selection = args.only or [g for m in modules for g in MODULES[m]]
        if args.retry:
            previous = mutant_results(REPO)
            selection = [name for name, code in previous.items()
                         if any(fnmatch.fnmatch(name, g) for g in selection)
                         and classify(code, name, equivalent) not in ("killed", "timeout", "equivalent")]
            if not selection:
                print("nothing to retry: every selected mutant was killed or is listed as equivalent")
        elif not args.keep:
            shutil.rmtree(REPO / "mutants", ignore_errors=True)
        (REPO / "mutants").mkdir(exist_ok=True)
        (REPO / "mutants" / ".gitignore").write_text("*\n")
        code = run_mutmut(selection, args.max_children) if selection else 0
        if code != 0:
            print(f"mutmut run exited with {code}", file=sys.stderr)
            return code
    results = mutant_results(REPO)
    unknown = sorted(set(equivalent) - set(results))
    if unknown:
        print(f"{EQUIVALENT.name} lists mutants mutmut did not make: {', '.join(unknown[:5])}", file=sys.stderr)
    table, survivors = score_table(results, modules, equivalent, args.only)
    write_survivors(survivors, results)
    print(table)
    print(f"{len(survivors)} survivors (not equivalent) with their diffs: {SURVIVORS.relative_to(REPO)}")
    if not args.report_only:
        print(f"wall time: {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
