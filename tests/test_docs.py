"""The docs stay true to the code: every message, field, error code, CLI option and config key
appears on its page."""

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from corridor.client.cli import server_status
from corridor.client.cli.main import SERVER_COMMANDS, build_parser
from corridor.protocol.errors import CATALOGUE
from corridor.protocol.messages import EVENTS, REQUESTS, ChatMessage, Cursor, PresenceInfo, QuietHours
from corridor.server.config import SECTIONS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def code_spans(text: str) -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", text))


def test_protocol_doc_lists_every_message_and_field():
    spans = code_spans(page("protocol.md"))
    missing = []
    classes = [
        *REQUESTS.values(),
        *(cls.RESULT for cls in REQUESTS.values()),
        *EVENTS.values(),
        ChatMessage,
        Cursor,
        PresenceInfo,
        QuietHours,
    ]
    for cls in classes:
        if hasattr(cls, "TYPE") and cls.TYPE not in spans:
            missing.append(f"message type {cls.TYPE}")
        missing += [f"{cls.__name__}.{f.name}" for f in dataclasses.fields(cls) if f.name not in spans]
    assert missing == []


def test_protocol_doc_lists_every_error_code_with_its_meaning():
    text = page("protocol.md")
    for code, spec in CATALOGUE.items():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{code}` |")]
        assert rows, f"{code} is not in the error table"
        assert spec.cls.__name__ in rows[0], f"{code}: the table names the wrong type"


def subcommands(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from subcommands(sub, f"{prefix}{name} ")


def test_cli_doc_lists_every_command_and_option():
    import importlib

    text = page("cli.md")
    missing = []
    parsers = dict(subcommands(build_parser()))
    for name, (module, _) in SERVER_COMMANDS.items():
        parsers[name] = importlib.import_module(module)._parser()
    parsers["status DIR"] = server_status._parser()
    for name, parser in parsers.items():
        if f"corridor {name.split()[0]}" not in text:
            missing.append(f"command {name}")
        for action in parser._actions:
            missing += [
                f"{name} {flag}"
                for flag in action.option_strings
                if flag.startswith("--") and flag != "--help" and flag not in text
            ]
    assert missing == []


def test_config_doc_lists_every_key():
    spans = code_spans(page("config.md"))
    missing = [
        f"{section}.{field.name}"
        for section, cls in SECTIONS.items()
        for field in dataclasses.fields(cls)
        if f"{section}.{field.name}" not in spans
    ]
    assert missing == []


@pytest.mark.parametrize(
    "name",
    ["protocol.md", "cli.md", "config.md", "architecture.md", "archive.md", "install.md", "development.md", "performance.md"],
)
def test_every_reader_has_a_page(name):
    assert len(page(name)) > 500
