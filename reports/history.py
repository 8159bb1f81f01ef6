"""The nightly history store: an SQLite database of every night's runs, metrics and verdicts.

Schema (stable; columns are only ever added, never renamed or dropped)::

    nights   (night TEXT PRIMARY KEY, started TEXT, config_sha256 TEXT, status TEXT,
              pid INTEGER, host TEXT, finished TEXT)
    runs     (night, job, run_dir, spec_hash, label, device, dtype,
              prompt_sha256, prompt_subset, seeds TEXT JSON)                              -- PK (night, job)
    metrics  (night, job, name, value REAL, unit, higher_is_better INTEGER, variant TEXT JSON)  -- PK (night, job, name)
    verdicts (night, job, baseline_night, name, verdict, delta REAL, band REAL, band_source,
              reason)                                                                     -- PK (night, job, name)

``nights.status`` is one of:

- ``running``: the night is in progress (``pid`` on ``host`` is running it);
- ``pass`` / ``fail``: it finished; only ``pass`` nights are ever baselines;
- ``aborted``: it did not finish (the process was killed, crashed or was interrupted). A
  night still ``running`` when another night starts is marked ``aborted`` then, unless its
  process is alive on this host. Re-running an aborted night's id resumes and replaces it.

Nights are ordered by ``started`` (UTC ISO 8601), then by insertion, never by their ids:
ids are free text (``--night``), and "zeta" before "alpha" is a valid history.

SQLite ships with Python and is one file, so a history can be copied, diffed in CI
artifacts and queried with any SQL client. Every write is one transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

from benchkit.core.errors import BenchkitError

SCHEMA = """
CREATE TABLE IF NOT EXISTS nights (night TEXT PRIMARY KEY, started TEXT, config_sha256 TEXT, status TEXT);
CREATE TABLE IF NOT EXISTS runs (night TEXT, job TEXT, run_dir TEXT, spec_hash TEXT, label TEXT, device TEXT,
                                 dtype TEXT, PRIMARY KEY (night, job));
CREATE TABLE IF NOT EXISTS metrics (night TEXT, job TEXT, name TEXT, value REAL, unit TEXT, higher_is_better INTEGER,
                                    variant TEXT, PRIMARY KEY (night, job, name));
CREATE TABLE IF NOT EXISTS verdicts (night TEXT, job TEXT, baseline_night TEXT, name TEXT, verdict TEXT, delta REAL,
                                     band REAL, band_source TEXT, PRIMARY KEY (night, job, name));
"""
# Columns added after the first schema: a history written by an older benchkit gains them on open.
ADDED_COLUMNS = {
    "nights": (("pid", "INTEGER"), ("host", "TEXT"), ("finished", "TEXT")),
    "runs": (("prompt_sha256", "TEXT"), ("prompt_subset", "TEXT"), ("seeds", "TEXT")),
    "verdicts": (("reason", "TEXT"),),
}
STATUSES = ("running", "pass", "fail", "aborted")


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists here (POSIX only: on Windows os.kill would end it)."""
    if os.name != "posix" or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _time_key(started: str | None) -> dt.datetime:
    """A sortable moment from ``started``; a missing or unreadable one sorts first."""
    try:
        moment = dt.datetime.fromisoformat(str(started))
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


class History:
    def __init__(self, path: Path):
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise BenchkitError(f"cannot open nightly history {path}: {exc}") from None
        try:
            with self.db:
                self.db.executescript(SCHEMA)
                for table, columns in ADDED_COLUMNS.items():
                    have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
                    for name, kind in columns:
                        if name not in have:
                            self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise BenchkitError(f"{path} is not a readable benchkit history ({exc}): move it away to start a new one") from None

    def close(self) -> None:
        self.db.close()

    def start_night(self, night: str, started: str, config_sha256: str) -> list[str]:
        """Record ``night`` as running (replacing an earlier attempt of the same id) and mark
        nights left ``running`` by a dead process ``aborted``; returns the ids so marked."""
        host, pid = socket.gethostname(), os.getpid()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")  # the check and the marking see the same history
            row = self.db.execute("SELECT status, pid, host FROM nights WHERE night = ?", (night,)).fetchone()
            if row and row[0] == "running" and row[2] == host and row[1] not in (None, pid) and _pid_alive(int(row[1])):
                raise BenchkitError(f"night {night} is being run by process {row[1]} on {host}: wait for it to finish "
                                    "or choose another --night")
            aborted = [n for n, n_pid, n_host in self.db.execute(
                "SELECT night, pid, host FROM nights WHERE status = 'running' AND night != ?", (night,))
                if not (n_host == host and n_pid is not None and n_pid != pid and _pid_alive(int(n_pid)))]
            self.db.executemany("UPDATE nights SET status = 'aborted' WHERE night = ?", [(n,) for n in aborted])
            self.db.execute("DELETE FROM nights WHERE night = ?", (night,))  # a new row: insertion order = start order
            self.db.execute("INSERT INTO nights (night, started, config_sha256, status, pid, host) "
                            "VALUES (?, ?, ?, 'running', ?, ?)", (night, started, config_sha256, pid, host))
            for table in ("runs", "metrics", "verdicts"):  # a re-run of the same night replaces it
                self.db.execute(f"DELETE FROM {table} WHERE night = ?", (night,))
        return aborted

    def finish_night(self, night: str, status: str, finished: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown night status {status!r}")
        with self.db:
            self.db.execute("UPDATE nights SET status = ?, finished = ? WHERE night = ?", (status, finished, night))

    def record_run(self, night: str, job: str, run_dir: Path, results: dict[str, Any], manifest: dict[str, Any]) -> None:
        run = results.get("run") or {}
        prompt_set = run.get("prompt_set") or manifest.get("prompt_set") or {}
        seeds = run.get("seeds", manifest.get("seeds"))
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO runs (night, job, run_dir, spec_hash, label, device, dtype, "
                            "prompt_sha256, prompt_subset, seeds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (night, job, str(run_dir), run.get("spec_hash"), run.get("label"), manifest.get("device"),
                             manifest.get("dtype"), prompt_set.get("sha256"), prompt_set.get("subset"),
                             None if seeds is None else json.dumps(seeds)))
            self.db.executemany(
                "INSERT OR REPLACE INTO metrics (night, job, name, value, unit, higher_is_better, variant) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(night, job, m["name"], m["value"], m.get("unit"), None if m.get("higher_is_better") is None
                  else int(m["higher_is_better"]), json.dumps(m.get("variant"), sort_keys=True))
                 for m in results["metrics"]])

    def record_verdicts(self, night: str, job: str, baseline_night: str, comparisons) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO verdicts (night, job, baseline_night, name, verdict, delta, "
                                "band, band_source, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                [(night, job, baseline_night, c.name, c.verdict, c.delta, c.band, c.band_source,
                                  c.reason or None) for c in comparisons])

    def _order(self) -> dict[str, tuple[dt.datetime, int]]:
        """night -> its place in time: (started, insertion rowid)."""
        return {night: (_time_key(started), rowid)
                for rowid, night, started in self.db.execute("SELECT rowid, night, started FROM nights")}

    def last_good(self, job: str, before: str, prompt_sha256: str | None = None, prompt_subset: str | None = None,
                  seeds: list[int] | None = None) -> tuple[str, str] | None:
        """(night, run_dir) of the newest passing night that started before night ``before`` and ran
        this job over the same prompts and seeds (where both record them); None if there is none."""
        order = self._order()
        if before not in order:
            return None
        rows = self.db.execute(
            "SELECT r.night, r.run_dir, r.prompt_sha256, r.prompt_subset, r.seeds FROM runs r "
            "JOIN nights n ON n.night = r.night WHERE r.job = ? AND n.status = 'pass' AND r.night != ?", (job, before))
        candidates = []
        for night, run_dir, sha, subset, seeds_json in rows:
            if order[night] >= order[before]:
                continue
            if prompt_sha256 is not None and sha is not None and sha != prompt_sha256:
                continue
            if prompt_subset is not None and subset is not None and subset != prompt_subset:
                continue
            if seeds is not None and seeds_json is not None and json.loads(seeds_json) != list(seeds):
                continue
            candidates.append((order[night], night, run_dir))
        if not candidates:
            return None
        _, night, run_dir = max(candidates)
        return night, run_dir

    def trend(self, metric: str) -> dict[str, list[tuple[str, float]]]:
        """job -> [(night, value), ...] in start order, over every recorded night."""
        order = self._order()
        out: dict[str, list[tuple[str, float]]] = {}
        rows = self.db.execute("SELECT night, job, value FROM metrics WHERE name = ?", (metric,)).fetchall()
        for night, job, value in sorted(rows, key=lambda r: order.get(r[0], (_time_key(None), -1))):
            out.setdefault(job, []).append((night, value))
        return out

    def nights(self) -> list[tuple[str, str]]:
        """(night, status) in start order."""
        order = self._order()
        rows = self.db.execute("SELECT night, status FROM nights").fetchall()
        return sorted(rows, key=lambda r: order[r[0]])
