"""What directory search matches against: names, their pinyin and initials, title, departments.

"zs", "zhangsan", "zhang" and "张" all find 张三. Keys are computed in Python (pypinyin,
about 0.1 ms a name — too slow to redo for a whole org at every start-up) and stored, refreshed
only for the people changed since the last refresh. Parts are joined with a separator that no
query contains, so a match never spans two parts.
"""

from __future__ import annotations

from pypinyin import Style, lazy_pinyin

SEPARATOR = "\x1f"


def _pinyin_forms(name: str) -> list[str]:
    syllables = [s.strip().lower() for s in lazy_pinyin(name) if s.strip()]
    initials = [s.strip().lower() for s in lazy_pinyin(name, style=Style.FIRST_LETTER) if s.strip()]
    return ["".join(syllables), " ".join(syllables), "".join(initials)]


def search_key(display_name: str, username: str, title: str, departments: list[str]) -> str:
    """The lower-cased text a query is matched against."""
    parts = [
        display_name.lower(),
        username.lower(),
        *_pinyin_forms(display_name),
        title.lower(),
        *(d.lower() for d in departments),
    ]
    return SEPARATOR + SEPARATOR.join(p for p in parts if p) + SEPARATOR


def like_pattern(query: str) -> str:
    """A LIKE pattern for a substring match of `query` (escape character: backslash)."""
    escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def matches_without(key: str, query: str, removed: list[str]) -> bool:
    """Whether `query` still matches `key` once the parts in `removed` (e.g. the names of
    departments hidden from the viewer) are taken out — each once, as a key may hold a name twice."""
    parts = key.strip(SEPARATOR).split(SEPARATOR)
    for name in removed:
        if name.lower() in parts:
            parts.remove(name.lower())
    needle = query.lower()
    return any(needle in part for part in parts)
