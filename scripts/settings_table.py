"""The README's configuration table, generated from the settings classes (the source of truth).

Usage: python scripts/settings_table.py           # print the table
       python scripts/settings_table.py --write   # replace the table in README.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pydantic.fields import FieldInfo

from service.settings import ServiceSettings

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def env_name(name: str, field: FieldInfo) -> str:
    choices = getattr(field.validation_alias, "choices", None)
    if choices:
        return str(choices[0])
    return f"TRAINABILITY_{name.upper()}"


def markdown_table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in ServiceSettings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{env_name(name, field)}` | `{default!r}` | {meaning} |")
    return "\n".join(lines)


def with_table(readme: str) -> str:
    """``readme`` with the block between the markers replaced by the current table."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    return pattern.sub(lambda _m: f"{START}\n{markdown_table()}\n{END}", readme)


def main() -> None:
    if "--write" in sys.argv[1:]:
        README.write_text(with_table(README.read_text()))
    else:
        print(markdown_table())


if __name__ == "__main__":
    main()
