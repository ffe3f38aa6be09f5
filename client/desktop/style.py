"""The window's look: one Qt style sheet, applied to the whole application. Sizes are in
points and pixels that Qt scales by the screen's device pixel ratio, so high-DPI screens get
the same layout, sharper."""

from __future__ import annotations

from .icons import ACCENT

STYLE_SHEET = f"""
QListWidget#messages {{ background: #f7f8fa; border: 1px solid #dcdfe4; }}
QListWidget#messages::item {{ padding: 6px 10px; margin: 2px 0; border-bottom: 1px solid #eceef1; }}
QListWidget#messages::item:selected {{ background: #dde9f6; color: black; }}
QListWidget#recent::item, QListWidget#notices::item {{ padding: 7px 6px; border-bottom: 1px solid #eceef1; }}
QListWidget#recent::item:selected, QListWidget#notices::item:selected {{ background: #dde9f6; color: black; }}
QTreeWidget#org_tree::item, QTreeWidget#search_results::item {{ padding: 3px 2px; }}
QPlainTextEdit#composer {{ border: 1px solid #dcdfe4; padding: 4px; }}
QPlainTextEdit#composer:focus {{ border: 1px solid {ACCENT}; }}
QLabel#connection {{ padding: 0 8px; }}
QLabel#connection[state="online"] {{ color: #2e7d32; }}
QLabel#connection[state="offline"], QLabel#connection[state="failed"] {{ color: #c62828; }}
QProgressBar#transfer {{ max-height: 10px; }}
"""
