"""Compare finished runs: a metrics table, a quality-vs-latency plot and a report.

Reports only read run directories (manifest.json, results.json, samples.jsonl), so they
can be rebuilt at any time and never change what was measured.
"""

from reports.render import write_report
from reports.runs import load_run, metrics_table

__all__ = ["load_run", "metrics_table", "write_report"]
