"""Delivery ids already handled, in sqlite: MLflow retries and replays start at most one run.

Why sqlite and not memory: a receiver restarted between MLflow's retries must still recognise the
delivery. Ids are claimed atomically (primary key), so two concurrent copies of one delivery cannot
both start a run; a claim whose run could not be started is released so MLflow's retry can succeed.
Records older than twice the timestamp window are purged: a replay that old fails the timestamp
check anyway, so the store stays small.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class DeliveryStore:
    """Claim/release delivery ids; thread-safe for the receiver's handler threads."""

    def __init__(self, path: Path, retention_s: float) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, received REAL NOT NULL, outcome TEXT)")
        self._retention_s = retention_s
        self._lock = threading.Lock()

    def claim(self, delivery_id: str, now: float) -> bool:
        """True when this id is new (and now taken); False for a duplicate."""
        with self._lock:
            self._db.execute("DELETE FROM deliveries WHERE received < ?", (now - self._retention_s,))
            cur = self._db.execute("INSERT OR IGNORE INTO deliveries (id, received) VALUES (?, ?)", (delivery_id, now))
            return cur.rowcount == 1

    def record(self, delivery_id: str, outcome: str) -> None:
        """What the claimed delivery led to (a flow run id, or why it was ignored)."""
        with self._lock:
            self._db.execute("UPDATE deliveries SET outcome = ? WHERE id = ?", (outcome, delivery_id))

    def outcome(self, delivery_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT outcome FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
        return row[0] if row else None

    def release(self, delivery_id: str) -> None:
        """Forget a claim whose run could not be started, so a retry of the delivery is not a duplicate."""
        with self._lock:
            self._db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))

    def close(self) -> None:
        self._db.close()
