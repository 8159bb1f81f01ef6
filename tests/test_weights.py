"""The weights registry: where weights are found, how they are verified, and the one-line
errors and `benchkit weights` listing when they are missing or corrupt."""

from __future__ import annotations

import hashlib
import json

import pytest

from benchkit.core.errors import BenchkitError
from metrics import weights as W


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    for var in ("BENCHKIT_WEIGHTS", W.OVERRIDES_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(W, "REGISTRY", {**W.REGISTRY, "fid-inception": _no_tmp(W.REGISTRY["fid-inception"])})
    W._RESOLVED.clear()


def _no_tmp(spec):
    """The real registry also looks at clean-fid's /tmp copy; tests must not see this machine's."""
    from dataclasses import replace

    return replace(spec, extra_paths=())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_lookup_order_override_then_weights_dir_then_hf_cache_then_torch_home(tmp_path, monkeypatch):
    # TORCH_HOME
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "alexnet-owt-7be5be79.pth").write_bytes(b"a")
    with pytest.raises(BenchkitError, match="does not start with 7be5be79"):  # the published name's hash prefix
        W.resolve("lpips-alexnet")
    # HF cache snapshot of a folder weight
    snap = tmp_path / "hub" / "models--yuvalkirstain--PickScore_v1" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(b"pick")
    (snap / "config.json").write_text("{}")
    found = W.resolve("pickscore-v1")
    assert found.path == snap and found.sha256 == _sha(b"pick") and found.found_via == "HF cache"
    assert found.verified == "unverified"
    # $BENCHKIT_WEIGHTS wins over the HF cache
    wd = tmp_path / "w"
    (wd / "pickscore-v1").mkdir(parents=True)
    (wd / "pickscore-v1" / "model.safetensors").write_bytes(b"mine")
    (wd / "pickscore-v1" / "config.json").write_text("{}")
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(wd))
    assert W.resolve("pickscore-v1").sha256 == _sha(b"mine")
    # --weights wins over everything
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"override")
    (other / "config.json").write_text("{}")
    W.set_overrides(W.parse_weight_overrides([f"pickscore-v1={other}"]))
    assert W.resolve("pickscore-v1").found_via == "--weights" and W.resolve("pickscore-v1").sha256 == _sha(b"override")


def test_file_weight_in_weights_dir_by_file_name(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path))
    (tmp_path / "HPS_v2.1_compressed.pt").write_bytes(b"hps")
    found = W.resolve("hpsv2.1")
    assert found.hashed_file == tmp_path / "HPS_v2.1_compressed.pt" and found.sha256 == _sha(b"hps")


def test_user_pin_verifies_and_catches_a_corrupt_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path))
    path = tmp_path / "inception-2015-12-05.pt"
    path.write_bytes(b"good")
    (tmp_path / "SHA256SUMS").write_text(f"# pinned by me\n{_sha(b'good')}  fid-inception\n")
    assert W.resolve("fid-inception").verified == "pin"
    path.write_bytes(b"truncated download")
    W._RESOLVED.clear()
    with pytest.raises(BenchkitError) as exc:
        W.resolve("fid-inception")
    message = str(exc.value)
    assert "\n" not in message and "does not match the pin" in message and "curl -L -o" in message
    (tmp_path / "SHA256SUMS").write_text("nonsense\n")
    with pytest.raises(BenchkitError, match=r"SHA256SUMS line 1: expected '<64 hex sha256>  <weight name>'"):
        W.resolve("fid-inception")


def test_missing_weight_is_one_line_with_places_and_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path))
    with pytest.raises(BenchkitError) as exc:
        W.resolve("fid-inception")
    message = str(exc.value)
    assert "\n" not in message
    assert str(tmp_path / "inception-2015-12-05.pt") in message and "nvlabs-fi-cdn.nvidia.com" in message
    assert "--weights fid-inception=PATH" in message
    with pytest.raises(BenchkitError, match=r"--weights pickscore-v1=.*: no model.safetensors there"):
        W.set_overrides({"pickscore-v1": str(tmp_path / "nothing")})
        W.resolve("pickscore-v1")


def test_folder_missing_a_required_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path))
    (tmp_path / "pickscore-v1").mkdir()
    (tmp_path / "pickscore-v1" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(BenchkitError, match="lacks config.json"):
        W.resolve("pickscore-v1")


def test_bad_override_syntax_and_unknown_name():
    with pytest.raises(BenchkitError, match="write NAME=PATH"):
        W.parse_weight_overrides(["fid-inception"])
    with pytest.raises(BenchkitError, match="unknown weight 'nope'"):
        W.parse_weight_overrides(["nope=/x"])


def test_hashes_are_remembered_by_path_size_and_mtime(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert W.file_sha256(path) == _sha(b"abc")
    cache = json.loads((tmp_path / "cache" / "weight-hashes.json").read_text())
    assert list(cache.values()) == [_sha(b"abc")]
    path.write_bytes(b"abcd")  # size changes: hashed again
    assert W.file_sha256(path) == _sha(b"abcd")


def test_cli_lists_present_and_missing_with_fetch_commands(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("BENCHKIT_WEIGHTS", str(tmp_path))
    (tmp_path / "HPS_v2_compressed.pt").write_bytes(b"v2")
    code, out, err = cli("weights", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == set(W.REGISTRY)
    assert rows["hpsv2.0"]["status"] == "present" and rows["hpsv2.0"]["sha256"] == _sha(b"v2")
    assert rows["hpsv2.1"]["status"] == "missing" and "hf download xswu/HPSv2 HPS_v2.1_compressed.pt" in rows["hpsv2.1"]["fetch"]
    code, out, _ = cli("weights")
    assert code == 0 and "hf download laion/CLIP-ViT-g-14-laion2B-s12B-b42K" in out and "present" in out
    code, _, err = cli("weights", "--weights", "hpsv2.1")
    assert code == 2 and "write NAME=PATH" in err
