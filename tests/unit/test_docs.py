"""The docs say what the code does: the configuration page lists exactly the settings with their
defaults, the README shows the recipe file as it is, and every code sample in the docs is a file
that is imported here (or by the tests of the examples)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import tickonce
from tickonce import Settings

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
EXAMPLES = DOCS / "examples"
# A code sample: a fence (```python title="path") holding one snippet in block form, which
# `ruff format` leaves alone (it would reformat `--8<-- "path"` as a Python expression).
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SNIPPET = re.compile(r"^--8<--\n([^\n]+)\n--8<--$")


def section(page: Path, heading: str) -> str:
    """The text of ``page`` under the level-2 ``heading``, up to the next level-2 heading."""
    text = page.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table(text: str) -> dict[str, str]:
    """First column (a `NAME` in backticks) -> second column, of every such table row."""
    rows: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|", line)
        if match:
            assert match[1] not in rows, f"{match[1]} is listed twice"
            rows[match[1]] = match[2].strip().strip("`")
    return rows


def shown(value: Any) -> str:
    """A default as the configuration page writes it."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(str(item) for item in value) if value else "empty"
    return str(value)


def settings_defaults() -> dict[str, str]:
    """Each setting's environment variable and its default, from ``Settings`` itself."""
    prefix = str(Settings.model_config.get("env_prefix") or "")
    return {
        f"{prefix}{name}".upper(): shown(field.get_default(call_default_factory=True))
        for name, field in Settings.model_fields.items()
    }


def test_the_configuration_page_lists_every_setting_with_its_default_and_no_other() -> None:
    documented = table(section(DOCS / "configuration.md", "Settings"))
    expected = settings_defaults()
    assert sorted(set(expected) - set(documented)) == [], "settings missing from the page"
    assert sorted(set(documented) - set(expected)) == [], "listed, but not a field of Settings"
    wrong = {name: (documented[name], default) for name, default in expected.items()}
    assert {name: pair for name, pair in wrong.items() if pair[0] != pair[1]} == {}


def test_env_example_holds_settings_and_the_documented_compose_variables_only() -> None:
    names = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), re.M))
    compose = table(section(DOCS / "configuration.md", "Compose, Swarm and image variables"))
    assert not set(compose) & set(settings_defaults()), "a setting listed as a Compose variable"
    assert sorted(names - set(settings_defaults()) - set(compose)) == []
    assert sorted(set(compose) - names) == [], "documented, but not in .env.example"


def test_the_readme_shows_the_recipe_file_exactly() -> None:
    readme = (REPO / "README.md").read_text()
    first = next(m for m in FENCE.finditer(readme) if m[1] == "python")
    assert first[2] == (REPO / "examples/recipe/main.py").read_text()


def test_the_readme_links_to_files_that_exist() -> None:
    readme = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert targets
    assert [target for target in targets if not (REPO / target).is_file()] == []


def included_files() -> dict[Path, list[str]]:
    """Each docs page and the files its Python code samples include."""
    found: dict[Path, list[str]] = {}
    for page in sorted(DOCS.glob("*.md")):
        for match in FENCE.finditer(page.read_text()):
            if match[1] != "python":
                continue
            snippet = SNIPPET.match(match[2].strip())
            assert snippet, (
                f"{page.name}: a Python sample must include a file that a test imports "
                f"(--8<--, the path, --8<--), not inline code: {match[2][:80]!r}"
            )
            found.setdefault(page, []).append(snippet[1])
    return found


def test_every_python_sample_in_the_docs_is_an_included_file() -> None:
    included = {path for paths in included_files().values() for path in paths}
    assert [path for path in sorted(included) if not (REPO / path).is_file()] == []
    examples = {str(path.relative_to(REPO)) for path in EXAMPLES.glob("*.py")}
    assert sorted(examples - included) == [], "docs/examples files no page includes"


def test_the_docs_examples_import_and_define_their_jobs() -> None:
    # In a process of its own: importing job modules registers their jobs in the registry that
    # every embedded leader of this test session would otherwise sync.
    modules = sorted(path.stem for path in EXAMPLES.glob("*.py"))
    script = (
        "import importlib, json, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "for name in sys.argv[2:]:\n"
        "    importlib.import_module(name)\n"
        "from tickonce._jobs.registry import registry\n"
        "print(json.dumps(sorted(spec.id for spec in registry.specs())))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(EXAMPLES), *modules],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "cleanup",
        "daily_report",
        "nightly-cleanup",
        "refresh_prices",
        "sync_accounts",
    ]


def test_every_public_name_is_on_the_page_that_lists_them() -> None:
    page = section(DOCS / "fastapi.md", "What you import")
    assert [name for name in tickonce.__all__ if f"`{name}`" not in page] == []
