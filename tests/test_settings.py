"""One source for the settings: `settings.SETTINGS`. The source's parameters, `.dlt/config.toml`,
`.dlt/secrets.toml.example` and the README's settings table must agree with it."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import pytest

from pipelines.neuron import neuron_source, settings
from pipelines.neuron.settings import SETTINGS, Setting

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
# `# name = value   # comment`: the documented lines of config.toml
_CONFIG_LINE = re.compile(r"^#\s*(\w+)\s*=\s*(\"[^\"]*\"|[^#\s]+)\s*(?:#(.*))?$")


def config_lines(text: str) -> dict[str, tuple[str, str]]:
    """name -> (value as written, trailing comment) of the commented `[sources.neuron]` lines."""
    section = text.split("[sources.neuron]", 1)[1].split("\n[", 1)[0]
    found = {}
    for line in section.splitlines():
        if match := _CONFIG_LINE.match(line.strip()):
            found[match[1]] = (match[2], match[3] or "")
    return found


def readme_defaults(text: str) -> dict[str, str]:
    """env var -> its default cell, from the README table whose first column is the env var."""
    return {
        cells[0].strip("` "): cells[1].strip()
        for line in text.splitlines()
        if line.startswith("| `SOURCES__NEURON__")
        for cells in [line.strip("|").split("|")]
    }


def shown(setting: Setting) -> str:
    """A default as the README writes it: in backticks, `none` when unset."""
    if setting.default is None:
        return "none"
    value = setting.default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def test_env_var_names_follow_dlts_section() -> None:
    assert settings.env_var("api_key") == "SOURCES__NEURON__API_KEY"
    assert "SOURCES__NEURON__PII_KEY" in [s.env_var for s in SETTINGS]
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)


def test_the_sources_defaults_are_the_settings() -> None:
    parameters = inspect.signature(neuron_source).parameters
    for setting in SETTINGS:
        if setting.name in parameters and not setting.secret:
            assert parameters[setting.name].default == setting.default, setting.name


def test_config_toml_documents_every_setting_with_its_default() -> None:
    lines = config_lines((ROOT / ".dlt" / "config.toml").read_text())
    secrets = (ROOT / ".dlt" / "secrets.toml.example").read_text()
    for setting in SETTINGS:
        if setting.secret:
            assert setting.name not in lines, f"{setting.name} is a secret: not in config.toml"
            assert re.search(rf"^#?\s*{setting.name} = ", secrets, re.M), setting.name
            continue
        assert setting.name in lines, f"config.toml does not document {setting.name}"
        value, comment = lines[setting.name]
        if setting.default is None:  # an example value, and the comment says it is unset
            assert "default: none" in comment, setting.name
        else:
            assert tomllib.loads(f"v = {value}")["v"] == setting.default, setting.name
    assert set(lines) <= {s.name for s in SETTINGS}, "config.toml documents an unknown setting"


def test_the_readme_table_lists_every_setting_with_its_default() -> None:
    table = readme_defaults((ROOT / "README.md").read_text())
    assert set(table) == {s.env_var for s in SETTINGS}
    for setting in SETTINGS:
        assert table[setting.env_var] == shown(setting), setting.env_var


def test_a_wrong_default_in_the_docs_is_caught() -> None:
    text = "[sources.neuron]\n# max_concurrency = 16   # requests in flight\n"
    value, _ = config_lines(text)["max_concurrency"]
    assert tomllib.loads(f"v = {value}")["v"] != settings.DEFAULT_MAX_CONCURRENCY
    row = "| `SOURCES__NEURON__PII` | `drop` | personal data policy |"
    assert readme_defaults(row)["SOURCES__NEURON__PII"] != shown(SETTINGS[-2])
