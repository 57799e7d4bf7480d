"""Print the configuration table for the README from the settings classes (the source of truth).

Usage: python scripts/settings_table.py
"""

from __future__ import annotations

from pydantic.fields import FieldInfo

from service.settings import ServiceSettings


def env_name(name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return str(choices[0])
    return f"TRAINABILITY_{name.upper()}"


def rows() -> list[tuple[str, str, str]]:
    out = []
    for name, field in ServiceSettings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        out.append((env_name(name, field), repr(default), field.description or ""))
    return out


def main() -> None:
    print("| variable | default | meaning |")
    print("|---|---|---|")
    for env, default, meaning in rows():
        print(f"| `{env}` | `{default}` | {meaning} |")


if __name__ == "__main__":
    main()
