"""The nightly history store: an SQLite database of every night's runs, metrics and verdicts.

Schema (stable; columns are only ever added)::

    nights   (night TEXT PRIMARY KEY, started TEXT, config_sha256 TEXT, status TEXT)  -- running|pass|fail
    runs     (night, job, run_dir, spec_hash, label, device, dtype)                  -- PK (night, job)
    metrics  (night, job, name, value REAL, unit, higher_is_better INTEGER, variant TEXT JSON)  -- PK (night, job, name)
    verdicts (night, job, baseline_night, name, verdict, delta REAL, band REAL, band_source)   -- PK (night, job, name)

SQLite ships with Python and is one file, so a history can be copied, diffed in CI
artifacts and queried with any SQL client.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS nights (night TEXT PRIMARY KEY, started TEXT, config_sha256 TEXT, status TEXT);
CREATE TABLE IF NOT EXISTS runs (night TEXT, job TEXT, run_dir TEXT, spec_hash TEXT, label TEXT, device TEXT,
                                 dtype TEXT, PRIMARY KEY (night, job));
CREATE TABLE IF NOT EXISTS metrics (night TEXT, job TEXT, name TEXT, value REAL, unit TEXT, higher_is_better INTEGER,
                                    variant TEXT, PRIMARY KEY (night, job, name));
CREATE TABLE IF NOT EXISTS verdicts (night TEXT, job TEXT, baseline_night TEXT, name TEXT, verdict TEXT, delta REAL,
                                     band REAL, band_source TEXT, PRIMARY KEY (night, job, name));
"""


class History:
    def __init__(self, path: Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path))
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def start_night(self, night: str, started: str, config_sha256: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO nights VALUES (?, ?, ?, 'running')", (night, started, config_sha256))
            for table in ("runs", "metrics", "verdicts"):  # a re-run of the same night replaces it
                self.db.execute(f"DELETE FROM {table} WHERE night = ?", (night,))

    def finish_night(self, night: str, status: str) -> None:
        with self.db:
            self.db.execute("UPDATE nights SET status = ? WHERE night = ?", (status, night))

    def record_run(self, night: str, job: str, run_dir: Path, results: dict[str, Any], manifest: dict[str, Any]) -> None:
        run = results.get("run") or {}
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (night, job, str(run_dir), run.get("spec_hash"), run.get("label"), manifest.get("device"),
                             manifest.get("dtype")))
            self.db.executemany(
                "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(night, job, m["name"], m["value"], m.get("unit"), None if m.get("higher_is_better") is None
                  else int(m["higher_is_better"]), json.dumps(m.get("variant"), sort_keys=True))
                 for m in results["metrics"]])

    def record_verdicts(self, night: str, job: str, baseline_night: str, comparisons) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                [(night, job, baseline_night, c.name, c.verdict, c.delta, c.band, c.band_source)
                                 for c in comparisons])

    def last_good(self, job: str, before: str) -> tuple[str, str] | None:
        """(night, run_dir) of the newest passing night before ``before`` that ran this job."""
        row = self.db.execute(
            "SELECT r.night, r.run_dir FROM runs r JOIN nights n ON n.night = r.night "
            "WHERE r.job = ? AND n.status = 'pass' AND r.night < ? ORDER BY r.night DESC LIMIT 1", (job, before)).fetchone()
        return (row[0], row[1]) if row else None

    def trend(self, metric: str) -> dict[str, list[tuple[str, float]]]:
        """job -> [(night, value), ...] in night order, over every recorded night."""
        out: dict[str, list[tuple[str, float]]] = {}
        for night, job, value in self.db.execute(
                "SELECT night, job, value FROM metrics WHERE name = ? ORDER BY night", (metric,)):
            out.setdefault(job, []).append((night, value))
        return out

    def nights(self) -> list[tuple[str, str]]:
        return list(self.db.execute("SELECT night, status FROM nights ORDER BY night"))
