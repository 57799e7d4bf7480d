"""The README stays true: its configuration table is the settings classes' current one."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_script():
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "scripts/settings_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_table_matches_the_settings():
    script = load_script()
    readme = (ROOT / "README.md").read_text()
    assert script.START in readme and script.END in readme
    assert script.with_table(readme) == readme, (
        "the README's configuration table is stale: run `python scripts/settings_table.py --write`"
    )


def test_every_setting_is_described():
    from service.settings import ServiceSettings

    missing = [n for n, f in ServiceSettings.model_fields.items() if not f.description]
    assert missing == []
