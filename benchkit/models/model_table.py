"""`benchkit models`: every preset, the files it needs and whether each is present locally.

Presence is checked offline (local paths and the Hugging Face cache), so the table answers
"what can I run on this machine" before any weights are loaded.
"""

from __future__ import annotations

from typing import Any

from benchkit.models.locations import find_local, spec_locations
from benchkit.models.spec import ModelSpec


def model_row(spec: ModelSpec) -> dict[str, Any]:
    files = []
    for loc in spec_locations(spec):
        local = find_local(loc)
        if local is not None and loc.field == "base" and local.is_dir() and not (local / "model_index.json").exists():
            local = None  # a partial snapshot without the pipeline index cannot be loaded
        files.append({"field": loc.field, "location": loc.display(), "repo": loc.repo, "path_in_repo": loc.path_in_repo,
                      "present": local is not None, "local_path": str(local) if local else None})
    builtin = spec.base.startswith("builtin:")
    r = spec.recipe
    return {
        **spec.to_dict(),
        "recipe_label": spec.recipe_label(),
        "resolution": [r.height, r.width] if r.height and r.width else None,
        "files": files,
        "present": builtin or all(f["present"] for f in files),
    }


def model_rows(presets: dict[str, ModelSpec]) -> list[dict[str, Any]]:
    return [model_row(spec) for spec in presets.values()]


def models_table(rows: list[dict[str, Any]]):
    """Names never wrap (they are what people copy); files say which are missing."""
    from rich.table import Table

    table = Table(title="model presets (files: local paths and the HF cache, never downloaded)")
    table.add_column("name", no_wrap=True)
    table.add_column("recipe", ratio=1)
    table.add_column("present", no_wrap=True)
    table.add_column("files", ratio=1)
    for r in rows:
        size = f" · {r['resolution'][1]}x{r['resolution'][0]}" if r["resolution"] else ""
        lora = f" · lora x{r['lora_scale']:g}" + ("" if r["lora_fused"] else " (unfused)") if r["lora"] else ""
        present = "yes" if r["present"] else "[red]missing[/red]"
        table.add_row(r["name"], r["recipe_label"] + size + lora, present, files_cell(r))
    return table


def files_cell(row: dict[str, Any]) -> str:
    if not row["files"]:
        return row["base"]
    return "\n".join(("" if f["present"] else "[red]missing[/red] ") + f"{f['field']}: {f['location']}" for f in row["files"])
