"""Built-in prompt sets: the vendored files match their manifest, and each set has the counts,
ids and meta the papers' protocols rely on. Also selection and export through the CLI."""

import csv
import hashlib
import json
from collections import Counter

import pytest

from benchkit.core.errors import BenchkitError
from prompts import (
    BUILTIN_SETS,
    DATA_DIR,
    PromptRecord,
    PromptSet,
    load_prompt_file,
    load_prompt_set,
    write_prompt_file,
)

COCO_SHA = "96abd3116ee2be49c4aaf7619a65152bb66f372a3021bee33de3bbccffab060b"
PARTI_CATEGORIES = {"Animals": 314, "Artifacts": 287, "World Knowledge": 214, "People": 177, "Outdoor Scenes": 131,
                    "Illustrations": 124, "Vehicles": 104, "Food & Beverage": 74, "Arts": 66, "Abstract": 51,
                    "Produce & Plants": 50, "Indoor Scenes": 40}
PARTI_CHALLENGES = {"Fine-grained Detail": 312, "Basic": 272, "Simple Detail": 232, "Style & Format": 206,
                    "Imagination": 150, "Complex": 113, "Writing & Symbols": 91, "Quantity": 90, "Perspective": 70,
                    "Linguistic Structures": 61, "Properties & Positioning": 35}
VBENCH_DIMENSIONS = {"subject_consistency", "background_consistency", "aesthetic_quality", "imaging_quality", "object_class",
                     "multiple_objects", "color", "spatial_relationship", "scene", "temporal_style", "overall_consistency",
                     "human_action", "temporal_flickering", "motion_smoothness", "dynamic_degree", "appearance_style"}


def manifest():
    with open(DATA_DIR / "MANIFEST.tsv", encoding="utf-8") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def test_vendored_files_match_manifest():
    rows = manifest()
    on_disk = {str(p.relative_to(DATA_DIR)) for p in DATA_DIR.rglob("*") if p.is_file()} - {"MANIFEST.tsv", "SOURCES.md", ".gitattributes"}
    assert set(rows) == on_disk
    for name, row in rows.items():
        data = (DATA_DIR / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (int(row["bytes"]), row["sha256"]), name
    assert sum(int(r["bytes"]) for r in rows.values()) < 6_000_000
    for spec in BUILTIN_SETS.values():
        assert set(spec.files) <= set(rows) and spec.license and spec.source


def test_every_set_loads_with_its_registered_count():
    for name, spec in BUILTIN_SETS.items():
        ps = load_prompt_set(name)
        assert len(ps) == spec.count and len({r.prompt_id for r in ps.records}) == spec.count, name
        assert ps.group_fields == spec.group_fields and ps.describe()["group_fields"] == list(spec.group_fields)


def test_coco_30k_ids_hash_newlines_and_prefixes():
    ps = load_prompt_set("coco2014-30k")
    assert len(ps) == 30000 and len({r.prompt_id for r in ps.records}) == 30000
    assert ps.sha256 == COCO_SHA == manifest()["coco/MS-COCO_val2014_30k_captions.csv"]["sha256"]
    assert int(manifest()["coco/MS-COCO_val2014_30k_captions.csv"]["records"]) == 30000
    first = ps.records[0]
    assert (first.prompt_id, first.prompt) == ("521669", "Someone is holding a phone while watching a video on it.")
    multiline = [r for r in ps.records if "\n" in r.prompt]
    assert len(multiline) == 97 and multiline[0].prompt == "That is a picture of an outside locale.\n"
    ten, five = load_prompt_set("coco2014-10k"), load_prompt_set("coco2014-5k")
    assert (len(ten), ten.subset, ten.sha256) == (10000, "first 10000", COCO_SHA)
    assert (len(five), five.subset) == (5000, "first 5000")
    assert [r.prompt_id for r in ten.records] == [r.prompt_id for r in ps.records[:10000]]


def test_partiprompts_categories_and_challenges():
    ps = load_prompt_set("partiprompts")
    assert len(ps) == 1632 and ps.sha256 == manifest()["parti/PartiPrompts.tsv"]["sha256"]
    assert Counter(r.meta["category"] for r in ps.records) == PARTI_CATEGORIES
    assert Counter(r.meta["challenge"] for r in ps.records) == PARTI_CHALLENGES
    assert ps.records[0].prompt_id == "00000" and ps.records[-1].prompt_id == "01631"
    # a raw TSV with no quoting: the leading '"' is part of the prompt
    assert any(r.prompt.startswith('"G I G G L E" painted') for r in ps.records)
    assert sum(1 for r in ps.records if r.meta["note"]) == 190


def test_vbench_dimensions_long_and_categories():
    vb = load_prompt_set("vbench")
    assert len(vb) == 946 and all(isinstance(r.meta["dimension"], list) for r in vb.records)
    assert {d for r in vb.records for d in r.meta["dimension"]} == VBENCH_DIMENSIONS
    assert Counter(d for r in vb.records for d in r.meta["dimension"])["human_action"] == 100
    # the same text twice, probing different dimensions: aligned by position, not merged by text
    bund = [r.meta["dimension"] for r in vb.records if r.prompt == "The bund Shanghai, oil painting"]
    assert sorted(map(tuple, bund)) == [("appearance_style",), ("overall_consistency", "aesthetic_quality", "imaging_quality")]
    long = load_prompt_set("vbench-long")
    assert len(long) == 946 and not any("\r" in r.prompt for r in long.records)
    assert all(lr.meta["dimension"] == r.meta["dimension"] and lr.meta["short_prompt"] == r.prompt
               for lr, r in zip(long.records, vb.records))
    assert long.records[0].prompt.startswith("In a still frame, a weathered stop sign")
    cat = load_prompt_set("vbench-category")
    assert Counter(r.meta["category"] for r in cat.records) == {c: 100 for c in
                                                               ("animal", "architecture", "food", "human", "lifestyle",
                                                                "plant", "scenery", "vehicles")}
    v2 = load_prompt_set("vbench2")
    assert len(v2) == 1013 and v2.records[-1].prompt.strip()


def test_geneval_drawbench_dalle3():
    ge = load_prompt_set("geneval")
    assert len(ge) == 553 and ge.group_fields == ("tag",)
    assert Counter(r.meta["tag"] for r in ge.records) == {"position": 100, "color_attr": 100, "two_object": 99,
                                                          "colors": 94, "single_object": 80, "counting": 80}
    assert ge.records[0].meta == {"tag": "single_object", "include": [{"class": "bench", "count": 1}]}
    assert sum("exclude" in r.meta for r in ge.records) == 80
    db = load_prompt_set("drawbench")
    assert len(db) == 200 and db.records[0].prompt == "A red colored car."
    coco8k = load_prompt_set("dalle3-coco-8k")
    assert len(coco8k) == 8192 == int(manifest()["dalle3/8k_coco.txt"]["records"])
    lines = (DATA_DIR / "dalle3/8k_coco.txt").read_text(encoding="utf-8").split("\n")
    assert len(lines) == 8213 and all(lines[int(r.prompt_id) - 1] == r.prompt for r in coco8k.records)
    assert ("356" in {r.prompt_id for r in coco8k.records}, "357" in {r.prompt_id for r in coco8k.records}) == (True, False)


def test_filters_on_real_sets():
    parti = load_prompt_set("partiprompts")
    animals = parti.filter("category", "animals").sample(100, seed=0)
    assert animals.subset == "category=Animals; sample 100 of 314 seed 0" and len(animals) == 100
    assert [r.prompt_id for r in animals.records] == [r.prompt_id for r in parti.filter("category", "Animals").sample(100, 0).records]
    both = parti.select({"category": "Animals", "challenge": "Basic"})
    assert len(both) == 42 and both.subset == "category=Animals; challenge=Basic"
    color = load_prompt_set("vbench").select({"dimension": "color"}, limit=3)
    assert len(load_prompt_set("vbench").filter("dimension", "color")) == 85 and color.subset == "dimension=color; first 3"
    with pytest.raises(BenchkitError, match="valid values: Abstract, Animals, Artifacts"):
        parti.filter("category", "Animal")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
def test_export_round_trip_keeps_ids_text_and_meta(tmp_path, suffix):
    coco = load_prompt_set("coco2014-30k")
    multiline = [r for r in coco.records if "\n" in r.prompt][:3]
    for name, ps in (("coco", PromptSet(coco.name, coco.records[:50] + multiline, coco.sha256)),
                     ("parti", load_prompt_set("partiprompts")), ("vbench", load_prompt_set("vbench").sample(40, seed=2))):
        back = load_prompt_file(write_prompt_file(ps, tmp_path / f"{name}{suffix}"))
        assert [(r.prompt_id, r.prompt) for r in back.records] == [(r.prompt_id, r.prompt) for r in ps.records], name
    assert back.records[0].meta["dimension"] == (ps.records[0].meta["dimension"] if suffix == ".jsonl"
                                                 else json.dumps(ps.records[0].meta["dimension"]))
    items = load_prompt_file(write_prompt_file(ps, tmp_path / f"items{suffix}", seeds=[0, 1, 2]))
    assert [(r.prompt_id, r.prompt) for r in items.records] == [(r.prompt_id, r.prompt) for r in ps.records]


def test_export_txt_unicode_and_long_prompts(tmp_path):
    long = "a " + "very " * 400 + "long prompt"
    ps = load_prompt_set("drawbench").limit(3)
    ps.records += [PromptRecord("x", "Ein Bild von Straße 東京 🚀"), PromptRecord("y", long)]
    back = load_prompt_file(write_prompt_file(ps, tmp_path / "p.txt"))
    assert [r.prompt for r in back.records] == [r.prompt for r in ps.records]
    with pytest.raises(BenchkitError, match="spans lines, which txt cannot hold"):
        write_prompt_file(load_prompt_set("coco2014-30k"), tmp_path / "c.txt")
    with pytest.raises(BenchkitError, match="holds prompts only"):
        write_prompt_file(ps, tmp_path / "s.txt", seeds=[0])



def test_cli_list_show_export(cli, tmp_path):
    code, out, _ = cli("prompts", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and set(rows) == set(BUILTIN_SETS)
    assert rows["partiprompts"]["count"] == 1632 and rows["partiprompts"]["license"] == "Apache-2.0"
    assert rows["coco2014-10k"]["subset"] == "first 10000" and rows["vbench"]["group_fields"] == ["dimension"]
    code, out, _ = cli("prompts", "show", "partiprompts", "--category", "Animals", "--challenge", "Basic", "--limit", "2")
    assert code == 0 and "42 prompts" in out
    target = tmp_path / "sel.jsonl"
    code, out, _ = cli("prompts", "export", "partiprompts", "--out", str(target), "--category", "Indoor Scenes",
                       "--sample", "10", "--sample-seed", "4", "--seeds", "0-1")
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert code == 0 and len(lines) == 20 and list(lines[0])[:3] == ["prompt_id", "seed", "prompt"]
    assert [(x["prompt_id"], x["seed"]) for x in lines[:2]] == [(lines[0]["prompt_id"], 0), (lines[0]["prompt_id"], 1)]
    expected = load_prompt_set("partiprompts").filter("category", "Indoor Scenes").sample(10, seed=4)
    assert [r.prompt_id for r in load_prompt_file(target).records] == [r.prompt_id for r in expected.records]


def test_cli_eval_selection_errors_before_generating(cli, tmp_path):
    code, _, err = cli("eval", "-p", "partiprompts", "--challenge", "Nope", "--out", str(tmp_path / "r"), "--quiet")
    assert code == 2 and "no prompt of partiprompts has challenge=Nope; valid values: Basic, Complex" in err
    assert not (tmp_path / "r").exists()


def test_vbench_sets_default_to_five_seeds_per_prompt(monkeypatch, tmp_path):
    """VBench samples 5 videos per prompt (prompts/README.md:56): its sets' default seeds, which `benchkit eval`
    uses when --seeds is not given; other sets keep 0-3, and --seeds still wins."""
    import benchkit.evaluate
    from benchkit.cli import main

    assert [load_prompt_set(n).default_seeds for n in ("vbench", "vbench-long", "vbench-category")] == ["0-4"] * 3
    assert load_prompt_set("partiprompts").default_seeds == "0-3" and BUILTIN_SETS["vbench"].info()["default_seeds"] == "0-4"
    seen = []

    def fake_eval(spec, prompt_set, seeds, out, **kwargs):
        seen.append(seeds)
        raise BenchkitError("stop here")

    monkeypatch.setattr(benchkit.evaluate, "run_eval", fake_eval)
    for args, want in ((["-p", "vbench"], [0, 1, 2, 3, 4]), (["-p", "partiprompts"], [0, 1, 2, 3]),
                       (["-p", "vbench", "--seeds", "7"], [7])):
        with pytest.raises(SystemExit):
            main(["eval", "--limit", "1", "-o", str(tmp_path / "run"), *args])
        assert seen.pop() == want
