"""Loaded files are data, never code. A pickle planted in every kind of file benchkit reads (a UNet or
text-encoder .bin in a model folder, a single-file .ckpt, replacement weights, a LoRA, the distill
checkpoint, a pairs file, the MPS checkpoint, an LPIPS backbone, cached reference statistics and
features) never runs: the file is refused in one line (exit status 2, no traceback) or, for a cache,
recomputed. Truncated .safetensors files and files that are no LoRA are one line too, and the
package's source never unpickles (an AST and text scan)."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from benchkit.core.errors import BenchkitError

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchkit", "distillers", "metrics", "prompts", "reports")


# ---- payloads ------------------------------------------------------------------------------------

class _System:
    """Unpickling this runs ``os.system(command)``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Exec:
    """Unpickling this runs ``exec`` (a builtin, not a blocked module) to create ``path``."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return exec, (f"open({self.path!r}, 'w').close()",)


def payload(marker: Path, how: str = "system"):
    """A state dict with one tensor and one object whose unpickling creates ``marker``."""
    evil = _System(f"touch {marker}") if how == "system" else _Exec(marker)
    return {"conv_in.weight": torch.zeros(2), "evil": evil}


def plant(path: Path, marker: Path, how: str = "system", legacy: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload(marker, how), path, _use_new_zipfile_serialization=not legacy)
    return path


def truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def one_error_line(code: int, err: str) -> str:
    """The CLI refused in one line: exit status 2, exactly one ``error:`` line, no traceback."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks on a busy 2-core machine: one OpenMP thread is much faster (conftest restores it)."""
    torch.set_num_threads(1)


@pytest.fixture()
def marker(tmp_path):
    yield tmp_path / "pwned"
    assert not (tmp_path / "pwned").exists(), "a planted pickle ran"


# ---- model files: eval through the CLI on a tiny SD1.5 folder ---------------------------------------

@pytest.fixture(scope="module")
def sd15(tmp_path_factory):
    from tiny_pipelines import build_sd15

    return build_sd15(tmp_path_factory.mktemp("untrusted") / "sd15")


def model_copy(sd15: Path, dst: Path) -> Path:
    shutil.copytree(sd15, dst)
    return dst


def eval_spec(cli, tmp_path: Path, **fields: str) -> tuple[int, str, str]:
    """``benchkit eval`` of a spec with these fields (base, weights, lora, family, config)."""
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "untrusted"\n' + "".join(f"{k} = {json.dumps(str(v))}\n" for k, v in fields.items())
                    + '[recipe]\nscheduler = "ddim"\nsteps = 1\n')
    return cli("eval", "-m", str(spec), "--seeds", "0", "--limit", "1", "--metrics", "toy-alignment", "--device", "cpu",
               "-q", "--out", str(tmp_path / "run"))


def _unet_bin(sd15, tmp_path, marker):
    folder = model_copy(sd15, tmp_path / "model")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    plant(folder / "unet" / "diffusion_pytorch_model.bin", marker)
    return {"base": folder}, "diffusion_pytorch_model.bin"


def _text_encoder_bin(sd15, tmp_path, marker):
    folder = model_copy(sd15, tmp_path / "model")
    (folder / "text_encoder" / "model.safetensors").unlink()
    plant(folder / "text_encoder" / "pytorch_model.bin", marker, how="exec")
    return {"base": folder}, "text_encoder"


def _single_file_ckpt(sd15, tmp_path, marker):
    return {"base": plant(tmp_path / "all-in-one.ckpt", marker), "family": "sd15", "config": sd15}, "all-in-one.ckpt"


def _weights_bin(sd15, tmp_path, marker):
    return {"base": sd15, "weights": plant(tmp_path / "unet.bin", marker)}, "unet.bin"


def _weights_legacy(sd15, tmp_path, marker):
    return {"base": sd15, "weights": plant(tmp_path / "unet.pt", marker, how="exec", legacy=True)}, "unet.pt"


def _lora_bin(sd15, tmp_path, marker):
    return {"base": sd15, "lora": plant(tmp_path / "lora.bin", marker)}, "lora.bin"


def _lora_pt(sd15, tmp_path, marker):
    return {"base": sd15, "lora": plant(tmp_path / "lora.pt", marker, how="exec")}, "lora.pt"


PLANTED = [_unet_bin, _text_encoder_bin, _single_file_ckpt, _weights_bin, _weights_legacy, _lora_bin, _lora_pt]


@pytest.mark.parametrize("make", PLANTED, ids=[m.__name__.strip("_") for m in PLANTED])
def test_model_files_with_a_payload_are_refused(cli, sd15, tmp_path, marker, make):
    fields, names = make(sd15, tmp_path, marker)
    line = one_error_line(*eval_spec(cli, tmp_path, **fields)[::2])
    assert names in line


def _truncated_unet(sd15, tmp_path):
    folder = model_copy(sd15, tmp_path / "model")
    truncate(folder / "unet" / "diffusion_pytorch_model.safetensors")
    return {"base": folder}, "diffusion_pytorch_model.safetensors"


def _truncated_text_encoder(sd15, tmp_path):
    folder = model_copy(sd15, tmp_path / "model")
    truncate(folder / "text_encoder" / "model.safetensors")
    return {"base": folder}, "text_encoder"


def _truncated_single_file(sd15, tmp_path):
    shutil.copy(sd15 / "unet" / "diffusion_pytorch_model.safetensors", tmp_path / "all-in-one.safetensors")
    return {"base": truncate(tmp_path / "all-in-one.safetensors"), "family": "sd15", "config": sd15}, "all-in-one.safetensors"


def _truncated_weights(sd15, tmp_path):
    shutil.copy(sd15 / "unet" / "diffusion_pytorch_model.safetensors", tmp_path / "student.safetensors")
    return {"base": sd15, "weights": truncate(tmp_path / "student.safetensors")}, "student.safetensors"


def _truncated_lora(sd15, tmp_path):
    from diffusers import UNet2DConditionModel
    from tiny_pipelines import write_kohya_lora

    write_kohya_lora(UNet2DConditionModel.from_pretrained(sd15 / "unet"), tmp_path / "kohya.safetensors")
    return {"base": sd15, "lora": truncate(tmp_path / "kohya.safetensors")}, "kohya.safetensors"


TRUNCATED = [_truncated_unet, _truncated_text_encoder, _truncated_single_file, _truncated_weights, _truncated_lora]


@pytest.mark.parametrize("make", TRUNCATED, ids=[m.__name__.strip("_") for m in TRUNCATED])
def test_truncated_safetensors_are_one_line(cli, sd15, tmp_path, make):
    fields, name = make(sd15, tmp_path)
    line = one_error_line(*eval_spec(cli, tmp_path, **fields)[::2])
    assert name in line and "truncated" in line and "again" in line


def _save(tmp_path: Path, name: str, state: dict) -> Path:
    from safetensors.torch import save_file

    path = tmp_path / name
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("name,state,says", [
    ("unet.safetensors", None, "not a LoRA file"),  # a whole UNet state dict given as the LoRA
    ("random.bin", {"foo": torch.zeros(3), "bar.weight": torch.ones(2, 2)}, "not a LoRA file"),
    ("odd.safetensors", {"x.lora.weight": torch.zeros(3)}, "no LoRA format benchkit knows"),
    ("half-peft.safetensors", {"unet.down_blocks.0.lora_A.weight": torch.zeros(2, 2)}, "peft format"),
], ids=["unet-state-dict", "random-keys", "unknown-lora-keys", "broken-peft"])
def test_a_lora_in_the_wrong_format_is_one_line(cli, sd15, tmp_path, name, state, says):
    if state is None:
        from safetensors.torch import load_file

        state = load_file(str(sd15 / "unet" / "diffusion_pytorch_model.safetensors"))
    path = _save(tmp_path, name, state)
    line = one_error_line(*eval_spec(cli, tmp_path, base=sd15, lora=path)[::2])
    assert f"lora {path}" in line and says in line


# ---- the distill checkpoint and pairs: `benchkit distill` on the toy teacher ------------------------

def distill(cli, out: Path, *extra: str) -> tuple[int, str, str]:
    return cli("distill", "--method", "dmd2", "--teacher", "toy-digits", "--set", "ttur=1", "--batch-size", "2",
               "--checkpoint-every", "1", "--device", "cpu", "-q", "--out", str(out), *extra)


def test_old_pickled_distill_checkpoint_is_refused(cli, tmp_path, marker):
    out = tmp_path / "student"
    plant(out / "checkpoints" / "latest.pt", marker)
    line = one_error_line(*distill(cli, out, "--steps", "1")[::2])
    assert "latest.pt" in line and "old pickle format" in line and "new --out" in line


def test_distill_checkpoint_is_safetensors_and_a_bad_one_is_one_line(cli, tmp_path, marker):
    from safetensors import safe_open

    out = tmp_path / "student"
    code, _, err = distill(cli, out, "--steps", "2", "--stop-after", "1")
    assert code == 0, err
    checkpoint = out / "checkpoints" / "latest.safetensors"
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["latest.safetensors"]
    with safe_open(str(checkpoint), "pt") as f:  # tensors, plus the rest as JSON in the header
        assert json.loads(f.metadata()["state"])["step"] == 1 and any(k.startswith("state/distiller/nets/") for k in f.keys())
    good = checkpoint.read_bytes()

    truncate(checkpoint)
    line = one_error_line(*distill(cli, out, "--steps", "2")[::2])
    assert "latest.safetensors is damaged or not a benchkit distill checkpoint" in line

    plant(checkpoint, marker)  # a pickle under the new name is no safetensors file either
    line = one_error_line(*distill(cli, out, "--steps", "2")[::2])
    assert "latest.safetensors is damaged" in line

    checkpoint.write_bytes(good)  # the intact file resumes
    code, _, err = distill(cli, out, "--steps", "2")
    assert code == 0, err
    assert "resume at step 1 of 2" in (out / "train.log").read_text()


@pytest.mark.parametrize("name", ["pairs.safetensors", "pairs.pt"])
def test_pairs_file_with_a_payload_is_refused(cli, tmp_path, marker, name):
    pairs = plant(tmp_path / name, marker)
    line = one_error_line(*distill(cli, tmp_path / "student", "--steps", "1", "--pairs", str(pairs))[::2])
    assert f"{pairs} is not a benchkit pairs file" in line


# ---- metric weights: MPS checkpoint, LPIPS backbone --------------------------------------------------

def _trainer_classes():
    """A class importable as ``trainer.models.clip_model.CLIPModel`` (MPS's module path), for pickling."""
    module = types.ModuleType("trainer.models.clip_model")

    class CLIPModel(torch.nn.Module):
        pass

    CLIPModel.__module__, CLIPModel.__qualname__ = module.__name__, "CLIPModel"
    module.CLIPModel = CLIPModel
    return {"trainer": types.ModuleType("trainer"), "trainer.models": types.ModuleType("trainer.models"),
            "trainer.models.clip_model": module}


def _mps_disguised(marker: Path):
    """The payload inside a module of the class the real checkpoint has: its stub must not open a door."""
    model = sys.modules["trainer.models.clip_model"].CLIPModel()
    model.register_buffer("w", torch.zeros(2))
    model.config = _System(f"touch {marker}")
    return model


@pytest.mark.parametrize("kind", ["system", "exec", "in-a-state-dict", "disguised"])
def test_mps_checkpoint_payloads_never_run(tmp_path, marker, kind):
    from metrics.mps import load_checkpoint

    path = tmp_path / "MPS_overall_checkpoint.pth"
    if kind == "disguised":
        modules = _trainer_classes()
        assert not set(modules) & set(sys.modules)
        sys.modules.update(modules)
        try:
            torch.save(_mps_disguised(marker), path)
        finally:  # unimportable again, as on a machine without the MPS repo
            for name in modules:
                sys.modules.pop(name, None)
    elif kind == "in-a-state-dict":
        plant(path, marker)
    else:
        torch.save(_System(f"touch {marker}") if kind == "system" else _Exec(marker), path)
    with pytest.raises(BenchkitError, match="refusing global") as exc:
        load_checkpoint(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_lpips_backbone_with_a_payload_is_refused(tmp_path, marker, monkeypatch):
    from metrics import MetricContext, build_metrics

    path = plant(tmp_path / "random-alex.pth", marker)
    monkeypatch.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps({"lpips-alexnet": str(path)}))
    with pytest.raises(BenchkitError, match="refused") as exc:
        build_metrics(["lpips-diversity"], MetricContext(cache_dir=tmp_path / "cache"))
    assert "\n" not in str(exc.value) and str(path) in str(exc.value) and "posix.system" in str(exc.value)


# ---- caches: reference statistics and features are recomputed, never unpickled ------------------------

def _pickled_npz(path: Path, marker: Path, **plain) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    evil = np.empty(1, dtype=object)
    evil[0] = _System(f"touch {marker}")
    np.savez(path, mu=evil, sigma=np.eye(2), n=np.array(3), feats=evil, **plain)


def test_cached_reference_statistics_with_pickled_objects_are_recomputed(tmp_path, marker):
    from metrics.refstats import (
        cached_arrays,
        cached_stats,
        load_cached_arrays,
        stats_key,
    )

    cache = tmp_path / "cache"
    parts = {"reference_sha256": "r", "kind": "test"}
    key = stats_key(parts)
    path = cache / "refstats" / f"{key}.npz"
    fresh = {"mu": np.zeros(2), "sigma": np.eye(2), "n": np.array(5), "feats": np.ones((5, 2), dtype=np.float32)}

    _pickled_npz(path, marker, parts=np.array(json.dumps(parts, sort_keys=True)))
    assert load_cached_arrays(cache, key) is None
    arrays, got_key, was_cached = cached_arrays(cache, parts, lambda: fresh)
    assert got_key == key and not was_cached and int(arrays["n"]) == 5
    assert int(load_cached_arrays(cache, key)["n"]) == 5  # the entry was replaced by plain arrays

    _pickled_npz(path, marker)
    mu, sigma, n, _, was_cached = cached_stats(cache, parts, lambda: (fresh["mu"], fresh["sigma"], 5))
    assert not was_cached and n == 5 and np.array_equal(mu, fresh["mu"])

    path.write_bytes(path.read_bytes()[:40])  # a truncated entry is recomputed too
    assert cached_arrays(cache, parts, lambda: fresh)[2] is False


def test_fid_reference_index_or_features_damaged_are_one_line(tmp_path, marker):
    from metrics.fid import PROTOCOLS, load_reference

    cache = tmp_path / "cache"
    protocol = PROTOCOLS["clean-fid"]
    extractor = types.SimpleNamespace(weights_sha256="0" * 64)
    index = cache / "references" / "clean-fid.json"
    index.parent.mkdir(parents=True)
    index.write_text("{not json")
    with pytest.raises(BenchkitError, match="index .* is damaged") as exc:
        load_reference(cache, protocol, extractor)
    assert "\n" not in str(exc.value)

    key = "a" * 64
    _pickled_npz(cache / "refstats" / f"{key}.npz", marker)
    index.write_text(json.dumps({"protocol": "clean-fid", "reference": {"name": "x", "sha256": "y"},
                                 "extractor_sha256": "0" * 64, "views": {"fid": {"stats_key": key, "n": 3}}}))
    with pytest.raises(BenchkitError, match="missing or damaged; rebuild") as exc:
        load_reference(cache, protocol, extractor)
    assert "\n" not in str(exc.value)


# ---- the source never unpickles ------------------------------------------------------------------------

# Plain text no package file may contain, comments and docstrings included.
FORBIDDEN_TEXT = re.compile(r"weights_only\s*=\s*False|pickle\.loads?\(|allow_pickle\s*=\s*True|\bdill\b|joblib\.load"
                            r"|cloudpickle|\bUnpickler\b|yaml\.(unsafe_)?load\(")
UNSAFE_MODULES = {"dill", "joblib", "cloudpickle", "shelve", "marshal"}


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<not a constant>"
    return None


def unsafe_loads(source: str) -> list[str]:
    """Lines of ``source`` that could unpickle: torch.load without weights_only=True, np.load without
    allow_pickle=False, any pickle/dill/joblib/shelve/marshal load or Unpickler, yaml.load."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in UNSAFE_MODULES or (
                    node.module in ("pickle", "_pickle", "cPickle") and any(a.name in ("load", "loads", "Unpickler") for a in node.names)):
                found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, attr = node.value.id, node.attr
            if owner in ("pickle", "_pickle", "cPickle") and attr in ("load", "loads", "Unpickler", "_Unpickler"):
                found.append(f"{node.lineno}: {owner}.{attr}")
            elif owner in UNSAFE_MODULES or (owner == "yaml" and attr in ("load", "unsafe_load", "full_load")):
                found.append(f"{node.lineno}: {owner}.{attr}")
        elif isinstance(node, ast.Call):
            if _keyword(node, "weights_only") not in (None, True):
                found.append(f"{node.lineno}: weights_only={_keyword(node, 'weights_only')}")
            if _keyword(node, "allow_pickle") not in (None, False):
                found.append(f"{node.lineno}: allow_pickle={_keyword(node, 'allow_pickle')}")
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "load" and isinstance(func.value, ast.Name):
                if func.value.id == "torch" and _keyword(node, "weights_only") is not True:
                    found.append(f"{node.lineno}: torch.load without weights_only=True")
                if func.value.id in ("np", "numpy") and _keyword(node, "allow_pickle") is not False:
                    found.append(f"{node.lineno}: {func.value.id}.load without allow_pickle=False")
    return found


def test_the_scan_finds_what_it_looks_for():
    bad = ("import pickle, dill\nfrom joblib import load\nx = pickle.load(f)\nclass U(pickle.Unpickler): pass\n"
           "torch.load(p)\ntorch.load(p, weights_only=False)\nnp.load(p)\nnp.load(p, allow_pickle=True)\nyaml.load(s)\n")
    assert {int(found.split(":")[0]) for found in unsafe_loads(bad)} == set(range(1, 10))  # every line
    assert unsafe_loads("torch.load(p, map_location='cpu', weights_only=True)\nnp.load(p, allow_pickle=False)\n"
                        "torch.jit.load(p)\nimport pickle\ne = pickle.UnpicklingError\n") == []
    assert FORBIDDEN_TEXT.search("# torch.load(f, weights_only=False)") and not FORBIDDEN_TEXT.search("pickles and cheese")


def test_the_package_never_unpickles():
    problems = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            where = path.relative_to(ROOT)
            problems += [f"{where}:{line}" for line in unsafe_loads(source)]
            problems += [f"{where}: contains {m.group(0)!r}" for m in FORBIDDEN_TEXT.finditer(source)]
    assert not problems, "files benchkit loads must be read as data:\n" + "\n".join(problems)


def test_numpy_numbers_beside_weights_load_and_object_arrays_do_not(tmp_path, marker):
    """A training script's numpy learning rate or epoch beside the weights is data (AMT's trainer saves one), so it
    loads; a numpy object array, whose items unpickle as arbitrary objects, is still refused without running."""
    from benchkit.core.safe_load import load_state_dict_file, read_state_dict

    path = tmp_path / "trained.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "lr": np.float64(1e-4), "epoch": np.int64(3), "best": np.bool_(True)},
               path)
    assert torch.equal(load_state_dict_file(path)["w"], torch.ones(2))
    assert read_state_dict(path)["lr"] == 1e-4
    evil = np.empty(1, dtype=object)
    evil[0] = _System(f"touch {marker}")
    torch.save({"state_dict": {"w": torch.ones(2)}, "extra": evil}, path)
    with pytest.raises(BenchkitError, match="refused") as exc:
        load_state_dict_file(path)
    assert "\n" not in str(exc.value)
