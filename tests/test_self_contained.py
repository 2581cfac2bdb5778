"""The project is self-contained: no file refers to documents or data outside the repository, and every anchor
of docs/protocol.md that a file cites exists as a heading of docs/protocol.md (GitHub anchor slugs)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "docs" / "protocol.md"
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

#: Names of documents and paths that exist only outside the repository.
FORBIDDEN = ("decisions.md", "protocol-facts", "protocol_facts", "../shared", "shared/data", "/work/shared")
#: Files allowed to name an outside path: the CI script looks for the CI machine's data mirror next to the
#: checkout (a user never sees it).
ALLOWED = {".ci/run"}
#: Folders that are never part of the project (used only when git is unavailable).
NOT_PROJECT = {".git", ".venv", "resources", "results", "logs", ".snakemake", "__pycache__", ".pytest_cache",
               ".hypothesis"}
ANCHOR_REF = re.compile(r"docs/protocol\.md#([\w-]+)")
LOCAL_LINK = re.compile(r"\]\(#([\w-]+)\)")


def project_files() -> list[str]:
    """Tracked files plus untracked ones git does not ignore (falls back to walking the tree)."""
    try:
        command = ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"]
        out = subprocess.run(command, cwd=ROOT, capture_output=True, check=True).stdout.decode()
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
                 if p.is_file() and not NOT_PROJECT & set(p.relative_to(ROOT).parts)]
    return sorted(n for n in names if (ROOT / n).is_file())


def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8", errors="replace")


def github_slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation other than '-' and '_' dropped, spaces -> '-'."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def protocol_anchors() -> set[str]:
    """Anchors of every heading of docs/protocol.md (outside code fences), with GitHub's -1, -2 suffixes."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in PROTOCOL.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = github_slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_slug_rule():
    assert github_slug("Labels: redistribution") == "labels-redistribution"
    assert github_slug("Simulator (appendix B.5)") == "simulator-appendix-b5"
    assert github_slug("Where the thesis and the authors' code disagree") == (
        "where-the-thesis-and-the-authors-code-disagree")
    assert github_slug("Tau stimuli (new in this release)") == "tau-stimuli-new-in-this-release"


def test_no_file_refers_to_documents_outside_the_project():
    offending = []
    for name in project_files():
        if name == THIS or name in ALLOWED:
            continue
        for number, line in enumerate(read(name).splitlines(), start=1):
            for word in FORBIDDEN:
                if word in line:
                    offending.append(f"{name}:{number}: {word!r} in {line.strip()[:100]!r}")
    assert not offending, "references to files outside the repository:\n" + "\n".join(offending)


def test_every_cited_protocol_anchor_exists():
    assert PROTOCOL.is_file(), "docs/protocol.md is missing"
    anchors = protocol_anchors()
    missing = []
    for name in project_files():
        for number, line in enumerate(read(name).splitlines(), start=1):
            cited = ANCHOR_REF.findall(line)
            if name == "docs/protocol.md":
                cited += LOCAL_LINK.findall(line)  # the page's own [text](#anchor) links
            missing += [f"{name}:{number}: #{anchor}" for anchor in cited if anchor not in anchors]
    assert not missing, "anchors not found among the headings of docs/protocol.md:\n" + "\n".join(missing)
