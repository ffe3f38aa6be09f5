"""Keeping the archive's search index up with the chain.

Entries are appended in the transaction of what they record; the index (full text and the
people each entry is about) follows in batches: every `INDEX_INTERVAL`, and before every search,
export or retention pass, which call `catch_up` so they never miss an entry.
"""

from __future__ import annotations

from ...storage.database import Database
from ..periodic import every
from .store import index_behind, index_pending_txn

INDEX_INTERVAL = 1.0
# A batch's SQL runs on the event loop (as every write function does), at about 40 µs an entry:
# 200 entries keep each batch under ~10 ms, so the second's worth of entries at 1,000 msg/s no
# longer holds up every connection for 40 ms at once. Each batch still writes one full-text
# segment for many entries.
INDEX_BATCH = 200


async def catch_up(db: Database) -> None:
    """Index every entry appended so far (a read first: most calls find nothing to do, and a
    write would cost a commit)."""
    while await db.read(index_behind):
        await db.write(lambda conn: index_pending_txn(conn, INDEX_BATCH))


async def run_indexer(db: Database) -> None:
    """The background task: catch up every `INDEX_INTERVAL`."""
    await every(INDEX_INTERVAL, lambda: catch_up(db), "indexing the archive")
