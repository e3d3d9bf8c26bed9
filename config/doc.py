"""``docs/configuration.md``, generated from the schema (``python scripts/gen_config_doc.py``).

A test checks that the committed document equals what this renders, so the
reference can never drift from the code.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from hcp.config.schema import AgentConfig, CollectorConfig
from hcp.config.secrets import secret_fields

_HEAD = """# Configuration reference

Generated from `config/schema.py` by `python scripts/gen_config_doc.py`; do not edit by hand
(`tests/test_config_doc.py` fails when this file and the schema differ).

Both files are TOML. An unknown key is an error, and every error names the file, the key and what
was expected. Secrets (marked *secret* below) are refused in the main file: put them in the file
named by `secrets_file` (same sections, mode 0600, owned by the service user). Key files
(`broker.key_file`, `receipt.key_file`, `collector.secret_file`) must be mode 0600 too. Secrets
are replaced by `***` in every log line and shown as `**********` by `--print-config`.

Paths under `data.dir` are the only ones the services write: on a Raspberry Pi with a read-only
(overlay) root, point `data.dir` at a writable partition (see `docs/install.md`).
"""


def render() -> str:
    """The whole reference as Markdown."""
    parts = [_HEAD]
    for title, model, path in (("Terminal: `/etc/hcp/agent.toml`", AgentConfig, "config/agent.example.toml"),
                               ("Collector: `/etc/hcp/collector.toml`", CollectorConfig,
                                "config/collector.example.toml")):
        parts.append(f"\n## {title}\n\nExample: `{path}`.\n")
        parts += _model(model, (), set(secret_fields(model)))
    return "\n".join(parts).rstrip() + "\n"


def _model(model: type[BaseModel], prefix: tuple[str, ...], secrets: set[tuple[str, ...]]) -> list[str]:
    scalars = [(n, f) for n, f in model.model_fields.items() if _section(f) is None]
    out: list[str] = []
    if scalars:
        title = f"`[{'.'.join(prefix)}]`" if prefix else "top level"
        out += [f"\n### {title}\n", "| key | default | description | example |", "|---|---|---|---|"]
        out += [_row(name, field, (*prefix, name) in secrets) for name, field in scalars]
    for name, field in model.model_fields.items():
        section = _section(field)
        if section is not None:
            out += _model(section, (*prefix, name), secrets)
    return out


def _section(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _row(name: str, field: FieldInfo, secret: bool) -> str:
    description = (field.description or "").replace("|", "\\|")
    if secret:
        description = f"*secret.* {description}"
    example = _show(field.examples[0]) if field.examples else ""
    return f"| `{name}` | {_default(field)} | {description} | {example} |"


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        return _show(field.default_factory())  # type: ignore[call-arg]
    return "" if field.default is PydanticUndefined else _show(field.default)


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except TypeError:
        text = str(value)
    return f"`{text}`".replace("|", "\\|")
