"""The configuration reference is generated from the schema; secrets stay in their file and out of output."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from hcp.cli import main
from hcp.config.doc import render
from hcp.config.schema import AgentConfig, CollectorConfig, load_config
from hcp.exc import ConfigError
from hcp.logs import RedactFilter

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret-receipt-key-0123456789abcdef"


def test_committed_reference_equals_the_schema():
    assert (ROOT / "docs" / "configuration.md").read_text("utf-8") == render(), \
        "docs/configuration.md is stale: run python scripts/gen_config_doc.py"


def test_every_key_has_a_description_and_an_example():
    def walk(model):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                yield from walk(annotation)
            else:
                yield f"{model.__name__}.{name}", field
    for key, field in [*walk(AgentConfig), *walk(CollectorConfig)]:
        assert field.description and field.examples, key


def _agent_files(tmp_path: Path, mode: int) -> Path:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[receipt]\nkey = "{SECRET}"\n')
    os.chmod(secrets, mode)
    config = tmp_path / "agent.toml"
    config.write_text(f'secrets_file = "{secrets}"\n[device]\nid = "t1"\nhall_id = "h1"\nwindow_id = "w1"\n'
                      f'[data]\ndir = "{tmp_path}"\n')
    return config


def test_secret_in_the_main_file_is_refused(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text(f'[device]\nid = "t1"\nhall_id = "h1"\nwindow_id = "w1"\n[receipt]\nkey = "{SECRET}"\n')
    with pytest.raises(ConfigError, match=r"receipt\.key: a secret"):
        load_config(AgentConfig, config)


def test_secrets_file_readable_by_others_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="chmod 600"):
        load_config(AgentConfig, _agent_files(tmp_path, 0o644))


def test_secrets_file_merged_and_redacted_everywhere(tmp_path, capsys):
    path = _agent_files(tmp_path, 0o600)
    config = load_config(AgentConfig, path)
    assert config.receipt.key.get_secret_value() == SECRET
    assert main(["agent", "--config", str(path), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out and "**********" in out and 'id = "t1"' in out
    record = logging.LogRecord("hcp", logging.INFO, __file__, 1, "key is %s", (SECRET,), None)
    RedactFilter().filter(record)
    assert SECRET not in record.getMessage() and "***" in record.getMessage()


def test_collector_print_config(tmp_path, capsys):
    assert main(["collector", "--data-dir", str(tmp_path), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "[fleet]" in out and "offline_alert_s" in out
