"""The desktop client's Simplified Chinese translation is complete, current and actually shown.

A Chinese user must never meet an English string the translators forgot, nor a `%s` lost in
translation (the message would then be shown wrong or raise), and the compiled `.qm` the client
loads must be the one built from the reviewed `.ts`. So: every message in
`client/desktop/translations/corridor_zh_CN.ts` is translated with the same placeholders, the
file lists exactly the strings `pyside6-lupdate` finds in the source today, the committed `.qm`
is what `pyside6-lrelease` makes of it, and a real dialog shows Chinese after `i18n.install`.
How to refresh the files is in `client/desktop/translations/README.md`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest.importorskip("PySide6")
from PySide6.QtCore import QCoreApplication

from corridor.client.desktop import i18n
from corridor.client.desktop.quiet_hours import QuietHoursDialog

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(str(path) for path in (ROOT / "client" / "desktop").glob("*.py"))
TS = i18n.TRANSLATIONS / "corridor_zh_CN.ts"
QM = i18n.TRANSLATIONS / "corridor_zh_CN.qm"
PLACEHOLDER = re.compile(r"%(?:\d+|[a-zA-Z%])")
REFRESH = "refresh it as client/desktop/translations/README.md says"


def messages(ts: Path) -> dict[tuple[str, str], ET.Element]:
    """(context, source text) → its <message> element."""
    return {
        (context.findtext("name"), message.findtext("source")): message
        for context in ET.parse(ts).getroot().iter("context")
        for message in context.iter("message")
    }


def qt_tool(name: str) -> str:
    """A PySide6 tool, from this interpreter's scripts directory or else the PATH."""
    tool = Path(sys.executable).parent / name
    found = str(tool) if tool.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def test_every_message_is_translated_with_the_same_placeholders():
    assert ET.parse(TS).getroot().get("language") == "zh_CN"
    found = messages(TS)
    assert found
    for (context, source), message in found.items():
        translation = message.find("translation")
        where = f"{context}: {source!r}"
        assert translation.get("type") is None, f"{where} is {translation.get('type')}"
        forms = [form.text for form in translation.iter("numerusform")] or [translation.text]
        for text in forms:
            assert text and text.strip(), f"{where} has an empty translation"
            assert PLACEHOLDER.findall(text) == PLACEHOLDER.findall(source), f"{where} -> {text!r}"


def test_ts_lists_exactly_the_strings_in_the_source(tmp_path: Path):
    fresh = tmp_path / "fresh.ts"
    run = subprocess.run([qt_tool("pyside6-lupdate"), *SOURCES, "-ts", str(fresh)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert set(messages(fresh)) == set(messages(TS)), f"{TS.name} is out of date with client/desktop; {REFRESH}"


def test_committed_qm_is_built_from_the_ts(tmp_path: Path):
    built = tmp_path / "built.qm"
    run = subprocess.run([qt_tool("pyside6-lrelease"), str(TS), "-qm", str(built)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert built.read_bytes() == QM.read_bytes(), f"{QM.name} is stale; {REFRESH}"


def test_install_switches_a_real_dialog_between_chinese_and_english(qapp, qtbot):
    current = types.SimpleNamespace(quiet_hours=None, active=False, until=0.0)
    try:
        assert i18n.install("zh_CN") == "zh_CN"
        dialog = QuietHoursDialog(current)
        qtbot.addWidget(dialog)
        assert dialog.windowTitle() == "免打扰时段"
        assert QCoreApplication.translate("Tray", "Corridor — %n unread", "", 3) == "Corridor — 3 条未读"
    finally:
        assert i18n.install("en") == "en"
    dialog = QuietHoursDialog(current)
    qtbot.addWidget(dialog)
    assert dialog.windowTitle() == "Quiet hours"


@pytest.mark.parametrize(
    ("choice", "system", "shown"),
    [
        ("", "zh_CN", "zh_CN"),
        ("", "zh_TW", "zh_CN"),  # any zh… locale gets the one Chinese translation there is
        ("", "en_US", "en"),
        ("", "de_DE", "en"),
        ("en", "zh_CN", "en"),  # the user's choice wins over the system
        ("zh_CN", "en_US", "zh_CN"),
        ("fr", "zh_CN", "zh_CN"),  # an unknown setting falls back to the system's language
    ],
)
def test_resolve_follows_the_choice_then_the_system(choice: str, system: str, shown: str):
    assert i18n.resolve(choice, system) == shown
