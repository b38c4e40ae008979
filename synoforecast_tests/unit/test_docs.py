"""The docs point at what exists: every module path and relative link in README.md and docs/*.md.

`synoforecast/lib/` was regrouped by domain (lib/ingest, lib/warehouse, ...); a doc that
names `lib/landing.py` or `synoforecast/cli.py` sends the reader to a file that is gone.
Paths are checked as written (`synoforecast/...py`, or short: `lib/...py`, `defs/...py`,
`unit/...py`, ...), dotted modules too (`python -m synoforecast.instance.runs`); the
changelog names the old modules without their paths. Links are checked down to the anchor.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]

# where a path's first folder is, when a doc writes it short
PREFIXES = {
    "synoforecast": ROOT,
    "synoforecast_tests": ROOT,
    "synoforecast_dbt": ROOT,
    "benchmarks": ROOT,
    "lib": ROOT / "synoforecast",
    "defs": ROOT / "synoforecast",
    "cli": ROOT / "synoforecast",
    "instance": ROOT / "synoforecast",
    "sample": ROOT / "synoforecast",
    "unit": ROOT / "synoforecast_tests",
    "integration": ROOT / "synoforecast_tests",
    "e2e": ROOT / "synoforecast_tests",
}
_HEADS = "|".join(sorted(PREFIXES, key=len, reverse=True))
PATH = re.compile(rf"(?<![\w./-])((?:{_HEADS})/[\w./-]*?\w\.py)\b")
# dotted module names: synoforecast.lib.workers, synoforecast.instance.runs, synoforecast.definitions
MODULE = re.compile(r"(?<![\w./-])(synoforecast(?:\.[a-z_][a-z0-9_]*)+)(?![\w/])")
NOT_MODULES = {"yaml", "yml", "py", "md", "toml", "json"}  # synoforecast.yaml is the settings file
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def _paths(text: str) -> set[str]:
    return set(PATH.findall(text))


def _modules(text: str) -> set[str]:
    return {m for m in MODULE.findall(text) if m.rsplit(".", 1)[-1] not in NOT_MODULES}


def _resolve(path: str) -> Path:
    head = path.split("/", 1)[0]
    return PREFIXES[head] / path


def _defines(module_file: Path, name: str) -> bool:
    source = module_file.read_text()
    return re.search(rf"^(?:def|class|async def)\s+{name}\b|^{name}\s*[:=]", source, re.MULTILINE) is not None


def _module_exists(dotted: str) -> bool:
    """A package or module, or a name defined at the top of one (synoforecast.defs.partitions.label)."""
    parts = dotted.split(".")
    base = ROOT.joinpath(*parts)
    if (base / "__init__.py").is_file() or base.with_suffix(".py").is_file():
        return True
    parent = ROOT.joinpath(*parts[:-1])
    for candidate in (parent / "__init__.py", parent.with_suffix(".py")):
        if candidate.is_file() and _defines(candidate, parts[-1]):
            return True
    return False


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", doc.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if not m:
            continue
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        out.add(slug if n == 0 else f"{slug}-{n}")
        seen[slug] = n + 1
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_module_path_a_doc_names_exists(doc):
    text = doc.read_text()
    missing = sorted(p for p in _paths(text) if not _resolve(p).is_file())
    assert missing == [], f"{doc.name} names files that do not exist: {missing}"
    gone = sorted(m for m in _modules(text) if not _module_exists(m))
    assert gone == [], f"{doc.name} names modules that do not exist: {gone}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(doc):
    broken = []
    for target in LINK.findall(FENCE.sub("", doc.read_text())):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
            broken.append(target)
    assert broken == [], f"{doc.name} has links that do not resolve: {broken}"


def test_the_checks_catch_an_old_path():
    """The old flat layout is caught, in each form a doc writes it."""
    old = (
        "see `lib/landing.py` and `synoforecast/cli.py`, `synoforecast/lib/notify.py`, "
        "`lib/cohort_landing.py`; python -m synoforecast.runner"
    )
    assert {p for p in _paths(old) if not _resolve(p).is_file()} == {
        "lib/landing.py",
        "synoforecast/cli.py",
        "synoforecast/lib/notify.py",
        "lib/cohort_landing.py",
    }
    assert [m for m in _modules(old) if not _module_exists(m)] == ["synoforecast.runner"]
    assert _resolve("lib/landing/model.py").is_file()
    assert _module_exists("synoforecast.instance.runs") and _module_exists("synoforecast.lib.workers")
    assert _modules("in synoforecast.yaml") == set()


def test_anchor_slugs_follow_github():
    assert (
        _slug("Where the quarter in progress will land (`forecast/landing`)")
        == "where-the-quarter-in-progress-will-land-forecastlanding"
    )
    assert (
        _slug("Silence: no export, or a closed quarter without a forecast")
        == "silence-no-export-or-a-closed-quarter-without-a-forecast"
    )
    assert _slug("Dagster's own history") == "dagsters-own-history"
