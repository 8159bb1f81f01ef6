import json

import pytest

from benchkit.core.errors import BenchkitError
from prompts import load_prompt_file, load_prompt_set, parse_seeds


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0,5,7") == [0, 5, 7]
    assert parse_seeds("1-2,9") == [1, 2, 9]
    for bad in ("a", "3-1", "1,1", ""):
        with pytest.raises(BenchkitError):
            parse_seeds(bad)


def test_toy_set():
    ps = load_prompt_set("toy-digits")
    assert len(ps) == 20
    assert ps.records[7].prompt == "a handwritten digit seven" and ps.records[7].meta["digit"] == "7"
    assert len({r.prompt_id for r in ps.records}) == 20
    assert len(ps.sha256) == 64


def test_txt_keeps_unicode_and_long_prompts(tmp_path):
    long = "a " + "very " * 200 + "long prompt"
    p = tmp_path / "p.txt"
    p.write_text(f"Ein Bild von Straße 東京\n\n{long}\n", encoding="utf-8")
    ps = load_prompt_file(p)
    assert [r.prompt for r in ps.records] == ["Ein Bild von Straße 東京", long]
    assert [r.prompt_id for r in ps.records] == ["00000", "00001"]


def test_csv_ids_and_meta(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text('image_id,caption,category\n42,"a cat, sitting",Animals\n73,a dog,Animals\n', encoding="utf-8")
    ps = load_prompt_file(p)
    assert [(r.prompt_id, r.prompt, r.meta["category"]) for r in ps.records] == [("42", "a cat, sitting", "Animals"), ("73", "a dog", "Animals")]


def test_malformed_lines_name_the_line(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"prompt": "ok"}) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(BenchkitError, match=r"p.jsonl:2: invalid JSON"):
        load_prompt_file(p)
    t = tmp_path / "p.tsv"
    t.write_text("prompt\tcategory\nfine\tA\ntoo\tmany\tfields\n", encoding="utf-8")
    with pytest.raises(BenchkitError, match=r"p.tsv:3: more fields"):
        load_prompt_file(t)
    d = tmp_path / "d.csv"
    d.write_text("id,prompt\n1,a\n1,b\n", encoding="utf-8")
    with pytest.raises(BenchkitError, match="appears more than once"):
        load_prompt_file(d)
    n = tmp_path / "n.csv"
    n.write_text("id,words\n1,a\n", encoding="utf-8")
    with pytest.raises(BenchkitError, match=r"n.csv:2: no prompt column"):
        load_prompt_file(n)


def test_limit_records_subset():
    ps = load_prompt_set("toy-digits").limit(3)
    assert len(ps) == 3 and ps.describe()["subset"] == "first 3"


def test_limit_after_filter_appends_to_subset():
    ps = load_prompt_set("toy-digits").filter("digit", "7")
    assert [r.prompt_id for r in ps.records] == ["digit7-a", "digit7-b"] and ps.subset == "digit=7"
    assert ps.limit(1).subset == "digit=7; first 1"
    assert ps.describe()["group_fields"] == ["digit"] and ps.describe()["count"] == 2


def test_filter_errors_list_what_is_valid():
    ps = load_prompt_set("toy-digits")
    with pytest.raises(BenchkitError, match=r"has no 'category' field; its fields: digit"):
        ps.filter("category", "Animals")
    with pytest.raises(BenchkitError, match=r"digit=12; valid values: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"):
        ps.filter("digit", "12")


def test_sample_is_seeded_and_keeps_file_order():
    ps = load_prompt_set("toy-digits")
    a, b, c = ps.sample(5, seed=0), ps.sample(5, seed=0), ps.sample(5, seed=1)
    ids = [r.prompt_id for r in a.records]
    assert ids == [r.prompt_id for r in b.records] and ids != [r.prompt_id for r in c.records]
    assert ids == sorted(ids, key=[r.prompt_id for r in ps.records].index)
    assert a.subset == "sample 5 of 20 seed 0" and ps.sample(20, seed=3) is ps
    with pytest.raises(BenchkitError, match="--sample must be at least 1"):
        ps.sample(0)


def test_item_list_loads_back_as_its_prompts(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text("prompt_id,seed,prompt\na,0,x\na,1,x\nb,0,y\nb,1,y\n", encoding="utf-8")
    ps = load_prompt_file(p)
    assert [(r.prompt_id, r.prompt, r.meta) for r in ps.records] == [("a", "x", {}), ("b", "y", {})]
    p.write_text("prompt_id,seed,prompt\na,0,x\na,1,other\n", encoding="utf-8")
    with pytest.raises(BenchkitError, match=r"items.csv:3: prompt id 'a' appears more than once"):
        load_prompt_file(p)
