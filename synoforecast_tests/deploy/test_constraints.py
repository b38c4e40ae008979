"""The lock, constraints.txt at the repository root (made by deploy/scripts/lock.sh): the
image (deploy/Dockerfile) and the test install (`pip install -c constraints.txt -e ".[dev]"`)
both install with it, so that the tests run, and an image built next month ships, the
versions that were tested.

- the file is exact `name==version` pins under the header lock.sh writes;
- every requirement of pyproject.toml (build system, dependencies, every extra) is pinned at
  a version its specifier allows, for the platform the lock is made for;
- the lock is this venv's closure: walking the installed metadata from pyproject.toml's
  dependencies and dev extra (markers for this interpreter, the extras each requirement
  names), every distribution reached is pinned, installed here at its pinned version, and
  every pin is reached (no stale pin), build requirements aside;
- the Dockerfile installs the runtime dependencies with the lock, and the build context
  carries it.

test_stack_docker.py checks from the outside that the built image holds these versions.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import sys
import tomllib
from dataclasses import dataclass, field

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import Version

from synoforecast_tests.deploy.tools import CONSTRAINTS, DEPLOY, REPO, canonical, locked_pins

INSTALL_LINE = '.venv/bin/pip install -q -c constraints.txt -e ".[dev]"'
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
BUILD = [Requirement(r) for r in PROJECT["build-system"]["requires"]]
RUNTIME = [Requirement(r) for r in PROJECT["project"]["dependencies"]]
EXTRAS = {extra: [Requirement(r) for r in reqs] for extra, reqs in PROJECT["project"]["optional-dependencies"].items()}


def _header() -> list[str]:
    return [line for line in CONSTRAINTS.read_text().splitlines() if line.startswith("#")]


def _lock_environment() -> dict[str, str]:
    """The marker environment the lock was resolved for (its header names the Python)."""
    found = re.search(r"resolved with Python (3\.11\.\d+), linux x86_64", " ".join(_header()))
    assert found, "the header of constraints.txt does not say which Python it was resolved with"
    return {
        "python_version": "3.11",
        "python_full_version": found.group(1),
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }


def test_the_lock_is_exact_pins_under_the_header_lock_sh_writes():
    pins = locked_pins()  # asserts: every line a name==version pin, no name twice
    assert len(pins) > 50, "the lock holds the whole closure, not just the direct dependencies"
    for version in pins.values():
        Version(version)  # a version pip can compare
    assert canonical(PROJECT["project"]["name"]) not in pins, "the project itself is not locked"
    assert "pip" not in pins, "pip is the installer, not a locked package"
    # the header is the one lock.sh writes now, with the interpreter it ran named: the file
    # was made by the script, not edited by hand
    script = (DEPLOY / "scripts" / "lock.sh").read_text()
    template = re.search(r"cat <<EOF\n(.*?)\nEOF\n", script, flags=re.DOTALL).group(1).splitlines()
    assert len(template) == len(_header()), "the header of constraints.txt is not lock.sh's: run the script"
    for wanted, line in zip(template, _header()):
        assert re.fullmatch(re.escape(wanted).replace(re.escape("$versions"), r".+"), line), (wanted, line)
    text = "\n".join(_header())
    assert "deploy/scripts/lock.sh" in text and INSTALL_LINE in text and "commit constraints.txt" in text
    _lock_environment()


def test_every_requirement_of_pyproject_is_pinned_at_a_version_it_allows():
    pins, env = locked_pins(), _lock_environment()
    checked, problems = 0, []
    for where, requirements in [
        ("build-system", BUILD),
        ("dependencies", RUNTIME),
        *((f"optional-dependencies.{e}", reqs) for e, reqs in EXTRAS.items()),
    ]:
        for req in requirements:
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            checked += 1
            pinned = pins.get(canonical(req.name))
            if pinned is None:
                problems.append(f"{where}: {req} is not in constraints.txt")
            elif not req.specifier.contains(pinned, prereleases=True):
                problems.append(f"{where}: {req} does not allow the pinned {pinned}")
    assert checked >= len(RUNTIME) + len(EXTRAS["dev"])
    assert not problems, "run deploy/scripts/lock.sh:\n" + "\n".join(problems)


# ---------------------------------------------------------------- this venv


@dataclass
class Walk:
    reached: dict[str, set[str]] = field(default_factory=dict)  # canonical name: extras asked for
    unpinned: set[str] = field(default_factory=set)
    disallowed: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    off_pin: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def walk() -> Walk:
    """The closure of the dependencies and the dev extra, from this venv's installed metadata."""
    if not (sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"):
        pytest.skip("constraints.txt is locked for Python 3.11 on Linux x86_64: its closure is checked there")
    pins, env, out = locked_pins(), default_environment(), Walk()
    queue = [(req, "pyproject.toml") for req in RUNTIME + EXTRAS["dev"]]
    while queue:
        req, parent = queue.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        name = canonical(req.name)
        pinned = pins.get(name)
        if pinned is None:
            out.unpinned.add(f"{req} (required by {parent})")
            continue
        if not req.specifier.contains(pinned, prereleases=True):
            out.disallowed.add(f"{req} (required by {parent}) does not allow the pinned {pinned}")
        extras = set(req.extras)
        if name in out.reached and extras <= out.reached[name]:
            continue
        first = name not in out.reached
        out.reached[name] = out.reached.get(name, set()) | extras
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            out.missing.add(f"{name} (required by {parent})")
            continue
        if first and Version(dist.version) != Version(pinned):
            out.off_pin.add(f"{name} {dist.version} (pinned: {pinned})")
        asked = out.reached[name] | {""}
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({**env, "extra": e}) for e in asked):
                sub.marker = None  # evaluated here, with this distribution's extras
                queue.append((sub, f"{name} {dist.version}"))
    return out


def test_this_venv_holds_the_locked_version_of_everything_the_project_requires(walk):
    assert not walk.missing, "pinned but not installed here:\n" + "\n".join(sorted(walk.missing))
    assert not walk.off_pin, f"this venv was not installed with the lock; reinstall it: {INSTALL_LINE}\n" + "\n".join(
        sorted(walk.off_pin)
    )


def test_the_lock_is_the_whole_closure_of_pyproject_and_nothing_more(walk):
    if walk.off_pin or walk.missing:
        pytest.fail(
            "the closure is read from this venv's metadata, which is not at the pins "
            f"(test_this_venv_holds_...); reinstall it: {INSTALL_LINE}",
            pytrace=False,
        )
    assert len(walk.reached) > 50
    assert not walk.unpinned, "required but not pinned (run deploy/scripts/lock.sh):\n" + "\n".join(
        sorted(walk.unpinned)
    )
    assert not walk.disallowed, "\n".join(sorted(walk.disallowed))
    # build requirements (setuptools, wheel) are pinned for the image's wheel build; nothing
    # the project requires pulls them in
    stale = set(locked_pins()) - set(walk.reached) - {canonical(r.name) for r in BUILD}
    assert not stale, f"pinned but required by nothing (run deploy/scripts/lock.sh): {sorted(stale)}"


# ---------------------------------------------------------------- the image


def test_the_image_installs_its_dependencies_with_the_lock():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    stage = dockerfile.split("AS requirements", 1)[1].split("\nFROM ", 1)[0]
    assert re.search(r"^COPY [^\n]*\bconstraints\.txt\b", stage, flags=re.MULTILINE), (
        "the requirements stage copies the lock"
    )
    assert '["build-system"]["requires"]' in stage and '["project"]["dependencies"]' in stage
    installs = re.findall(r"pip install ([^\n]*(?:\\\n[^\n]*)*)", dockerfile)
    deps = [line for line in installs if "-r /tmp/requirements.txt" in line]
    assert len(deps) == 1 and "-c /tmp/constraints.txt" in deps[0], installs
    assert "setuptools>=" not in deps[0], "the build requirements come from pyproject.toml, at their pins"
    assert "pip freeze --all" in dockerfile, "the build refuses a package the lock does not pin"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!constraints.txt" in ignore, "the build context must carry constraints.txt"
