"""The interface language: Simplified Chinese or English, following the system locale unless
the user chose one (Settings → Language, kept in the profile).

The texts are Qt translation files: `translations/corridor_zh_CN.ts` is the source translators
edit (with Qt Linguist), `corridor_zh_CN.qm` the compiled file loaded here; `translations/README.md`
says how to refresh both. Qt's own strings (standard buttons) come from the translations
PySide6 ships."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

TRANSLATIONS = Path(__file__).parent / "translations"
# code → its name in that language ("" is the system's language)
LANGUAGES = {"": "", "en": "English", "zh_CN": "简体中文"}
_installed: list[QTranslator] = []


def resolve(choice: str, system: str | None = None) -> str:
    """The language to show for a setting: the choice, else the system locale's ("zh…" is
    Simplified Chinese, everything else English)."""
    if choice in LANGUAGES and choice:
        return choice
    system = system if system is not None else QLocale.system().name()
    return "zh_CN" if system.startswith("zh") else "en"


def install(choice: str) -> str:
    """Load the translations for a language setting into the running application; returns
    the language now shown."""
    app = QCoreApplication.instance()
    for translator in _installed:
        app.removeTranslator(translator)
    _installed.clear()
    language = resolve(choice)
    if language == "en":
        return language
    ours = QTranslator()
    if not ours.load(str(TRANSLATIONS / f"corridor_{language}.qm")):
        raise FileNotFoundError(f"the translation {TRANSLATIONS / f'corridor_{language}.qm'} is missing or unreadable")
    qt = QTranslator()
    if qt.load(f"qtbase_{language}", QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)):
        _installed.append(qt)
    _installed.append(ours)
    for translator in _installed:
        app.installTranslator(translator)
    return language
