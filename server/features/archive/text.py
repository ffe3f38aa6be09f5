"""Full-text search for the archive, Chinese included.

SQLite's unicode61 tokenizer splits on spaces and punctuation, so `请把合同发我` would be one
"word" and a search for `合同` would never find it. So CJK characters are indexed one per
token (a space on each side) and a query's CJK run becomes a phrase of its characters: `合同`
is the phrase `"合 同"`, which matches exactly where 合 is followed by 同. Other scripts keep
their words. Every query term is quoted before it reaches FTS5, so no input can inject FTS
syntax; a term ending in `*` is a prefix search.

PostgreSQL has no FTS5. There the index holds an entry's tokens, folded as unicode61 folds them
(lower case, diacritics removed), each between single spaces (`token_line`), and a term is the
substring ` 合 同 ` of that line (` 合 同` for a prefix): the same tokens, so the same hits.
A pg_trgm GIN index answers those `LIKE '%…%'` patterns without reading every line.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from corridor.protocol.errors import make_error

# Han (with extensions and compatibility forms), kana, Hangul, CJK punctuation, full-width forms.
_CJK = re.compile(r"([\u2e80-\u2fdf\u3000-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef])")
# What unicode61 keeps as a token: letters and digits (underscore separates).
_TOKEN = re.compile(r"[^\W_]+")
_TERM = re.compile(r'"([^"]*)"|(\S+)')
MAX_TERMS = 16


def segment(text: str) -> str:
    """Text as it is indexed: each CJK character its own token."""
    return _CJK.sub(r" \1 ", text)


def index_text(kind: str, fields: dict) -> str:
    """The searchable text of an archive entry's payload ('' when there is none)."""
    if kind == "message":
        return segment(fields.get("text", ""))
    if kind == "notice":
        return segment(f"{fields.get('title', '')}\n{fields.get('text', '')}")
    return ""


def _fold(token: str) -> str:
    """A token as unicode61 with `remove_diacritics 2` compares it: lower case, without the
    combining marks of its decomposed form (recomposed after, so Hangul stays whole). A CJK
    character stays as it is, as unicode61 leaves it (kana would lose its voicing marks)."""
    if _CJK.fullmatch(token):
        return token
    bare = "".join(c for c in unicodedata.normalize("NFD", token) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", bare).lower()


def token_line(text: str) -> str:
    """Indexed text (`index_text`) as PostgreSQL's index holds it: its folded tokens, each
    between single spaces, so a term is a plain substring."""
    return " " + " ".join(_fold(t) for t in _TOKEN.findall(text)) + " "


@dataclass(frozen=True)
class TextMatch:
    """What an auditor typed, as terms that must all occur: each a run of tokens that must occur
    together, the last one only as a prefix when the term ended in `*`."""

    terms: tuple[tuple[tuple[str, ...], bool], ...]

    def fts5(self) -> str:
        """SQLite's FTS5 MATCH expression: every term quoted, so nothing typed is FTS syntax."""
        return " AND ".join('"' + " ".join(tokens) + '"' + ("*" if prefix else "") for tokens, prefix in self.terms)

    def like_patterns(self) -> list[str]:
        """PostgreSQL's: one `LIKE` pattern a term on `token_line`. Tokens are letters and
        digits only, so no `%` or `_` of the auditor's needs escaping."""
        return ["% " + " ".join(_fold(t) for t in tokens) + ("%" if prefix else " %") for tokens, prefix in self.terms]


def match_expression(query: str) -> TextMatch:
    """What an auditor typed, parsed: every term must occur; "quoted words" must occur together;
    `term*` matches words starting with term."""
    terms = []
    for quoted, bare in _TERM.findall(query):
        prefix = bool(bare) and bare.endswith("*")
        tokens = _TOKEN.findall(segment(quoted or bare))
        if tokens:
            terms.append((tuple(tokens), prefix))
    if not terms:
        raise make_error("BAD_MESSAGE", f"nothing to search for in {query!r}: give at least one word or character")
    if len(terms) > MAX_TERMS:
        raise make_error("BAD_MESSAGE", f"a search takes at most {MAX_TERMS} terms")
    return TextMatch(tuple(terms))


def snippet(text: str, query: str, width: int = 80) -> str:
    """About `width` characters of `text` around the first place a query term occurs."""
    if len(text) <= width:
        return text
    lowered = text.casefold()
    spots = [lowered.find(t.casefold()) for t in _plain_terms(query)]
    found = [s for s in spots if s >= 0]
    start = max(0, min(found) - width // 3) if found else 0
    start = min(start, len(text) - width)
    return ("…" if start else "") + text[start : start + width] + ("…" if start + width < len(text) else "")


def _plain_terms(query: str) -> list[str]:
    return [(quoted or bare).rstrip("*") for quoted, bare in _TERM.findall(query) if (quoted or bare).rstrip("*")]
