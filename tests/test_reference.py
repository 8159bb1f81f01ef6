"""COCO reference pairing on a small fake val2014 folder made here."""

import hashlib
import json

import pytest
from PIL import Image

from benchkit.core.errors import BenchkitError
from benchkit.reference import coco_file_name, coco_reference, write_reference
from prompts import load_prompt_file


@pytest.fixture()
def val2014(tmp_path):
    folder = tmp_path / "val2014"
    folder.mkdir()
    for i, image_id in enumerate([42, 73, 74, 133, 136, 139]):
        Image.new("RGB", (6, 4), (i * 40, 0, 0)).save(folder / coco_file_name(image_id), format="JPEG")
    (folder / "notes.txt").write_text("not an image")
    return folder


def prompts(tmp_path, ids):
    p = tmp_path / "p.csv"
    p.write_text("image_id,text\n" + "".join(f"{i},caption {i}\n" for i in ids))
    return load_prompt_file(p)


def test_matched_pairs_ids_to_files(tmp_path, val2014):
    ref = coco_reference(val2014, "matched", prompts(tmp_path, [133, 42, 74]), show_progress=False)
    assert ref.files == ["COCO_val2014_000000000042.jpg", "COCO_val2014_000000000074.jpg", "COCO_val2014_000000000133.jpg"]
    for name in ref.files:
        assert ref.file_sha256[name] == hashlib.sha256((val2014 / name).read_bytes()).hexdigest()
    saved = json.loads(write_reference(ref, tmp_path / "ref").read_text())
    assert saved["count"] == 3 and saved["pairing"] == "matched" and saved["sha256"] == ref.sha256


def test_missing_files_are_named(tmp_path, val2014):
    with pytest.raises(BenchkitError, match=r"lacks 2 image\(s\).*COCO_val2014_000000000001.jpg, COCO_val2014_000000000999.jpg"):
        coco_reference(val2014, "matched", prompts(tmp_path, [42, 1, 999]), show_progress=False)


def test_all_pairing_checks_the_count(tmp_path, val2014):
    with pytest.raises(BenchkitError, match="has 6 val2014 images, the protocol needs all 40504"):
        coco_reference(val2014, "all", show_progress=False)
    ref = coco_reference(val2014, "all", allow_partial=True, show_progress=False)
    assert len(ref.files) == 6 and ref.files[0].endswith("000000000042.jpg")


def test_content_hash_changes_with_a_file(tmp_path, val2014):
    ps = prompts(tmp_path, [42, 73])
    before = coco_reference(val2014, "matched", ps, show_progress=False).sha256
    Image.new("RGB", (6, 4), (9, 9, 9)).save(val2014 / coco_file_name(73), format="JPEG")
    assert coco_reference(val2014, "matched", ps, show_progress=False).sha256 != before


def test_not_a_coco_folder(tmp_path):
    with pytest.raises(BenchkitError, match="not a folder"):
        coco_reference(tmp_path / "nope", "all", show_progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchkitError, match="no COCO_val2014_<id>.jpg"):
        coco_reference(tmp_path / "empty", "all", show_progress=False)


def test_cli_writes_reference_json(tmp_path, val2014, cli):
    p = tmp_path / "ids.csv"
    p.write_text("image_id,text\n42,a\n136,b\n")
    code, _, err = cli("reference", "coco", "--coco-dir", str(val2014), "-p", str(p), "--pairing", "matched", "-o", str(tmp_path / "refs"))
    assert code == 0, err
    (saved,) = (tmp_path / "refs").glob("*/reference.json")
    assert json.loads(saved.read_text())["count"] == 2
