"""The console's two languages: English (the keys) and Simplified Chinese (the catalog `zh.json`).

The language is the `corridor_lang` cookie when someone chose one with the switch, else the
browser's Accept-Language (any `zh` ranked above English gives Chinese), else English. A test
checks that every string the templates and pages translate has its Chinese here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request as HttpRequest

LANG_COOKIE = "corridor_lang"
LANGUAGES = ("en", "zh")

# English text → Simplified Chinese, one entry per string the console shows.
ZH: dict[str, str] = json.loads((Path(__file__).parent / "zh.json").read_text(encoding="utf-8"))


def language(request: HttpRequest) -> str:
    """The page language for this request: the chosen one, else the browser's, else English."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    ranked = []
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, weight = part.strip().partition(";q=")
        try:
            ranked.append((float(weight or 1), tag.strip().lower()))
        except ValueError:
            continue
    for _weight, tag in sorted(ranked, key=lambda r: -r[0]):
        if tag.startswith(("zh", "en")):
            return tag[:2]
    return "en"


def translator(lang: str) -> Callable[..., str]:
    """`_(text, **values)` for one language: the translation with `{name}`s filled in."""
    catalog = ZH if lang == "zh" else {}

    def _(text: str, **values) -> str:
        return catalog.get(text, text).format(**values)

    return _
