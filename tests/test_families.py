"""The family registry: recognising a model folder, builtins, image sizes, spec validation, listing."""

from __future__ import annotations

import json

import pytest

from benchkit.core.errors import BenchkitError
from benchkit.models.families import (
    FAMILIES,
    builtin_folder,
    describe_families,
    detect_family,
    family_of_images,
    get_family,
)


def test_the_builtin_families_are_registered_through_the_plugin_entry_point():
    from benchkit.core.plugins import plugin_modules

    assert "benchkit.models.families" in plugin_modules()
    # one module each (sana.py holds SANA and its Sprint student), tried on a folder in this order
    assert list(FAMILIES)[:19] == ["toy", "sd15", "sdxl", "sd3", "flux", "flux2", "sana", "sana-sprint", "zimage", "qwenimage",
                                   "cogvideox", "cogvideox-i2v", "wan", "wan-i2v", "hunyuanvideo", "hunyuanvideo-i2v", "ltx",
                                   "ltx-condition", "command"]


@pytest.mark.parametrize("index, family", [
    ({"_class_name": "StableDiffusionPipeline", "unet": [], "vae": []}, "sd15"),
    ({"_class_name": "StableDiffusionXLPipeline"}, "sdxl"),
    ({"_class_name": "StableDiffusion3Pipeline"}, "sd3"),
    ({"_class_name": "CogVideoXPipeline"}, "cogvideox"),
    # no known pipeline class: recognised by the components it has
    ({"_class_name": "MyPipeline", "unet": [], "text_encoder": []}, "toy"),
    ({"_class_name": "MyPipeline", "unet": [], "text_encoder": [], "vae": []}, "sd15"),
    ({"_class_name": "MyPipeline", "unet": [], "text_encoder": [], "text_encoder_2": [], "vae": []}, "sdxl"),
])
def test_a_folder_is_recognised_by_pipeline_class_then_layout(index, family):
    assert detect_family(index).name == family


def test_an_unrecognised_folder_is_one_line_naming_the_families():
    with pytest.raises(BenchkitError, match=r"set family = \"" + r"\|".join(FAMILIES) + r"\" in the spec$"):
        detect_family({"_class_name": "NobodysPipeline", "transformer": []})


def test_builtins_come_from_their_family():
    from benchkit.toy import TEACHER_DIR

    assert builtin_folder("builtin:toy-digits") == TEACHER_DIR
    with pytest.raises(BenchkitError, match="unknown builtin model 'builtin:nope'; builtins: builtin:toy-digits"):
        builtin_folder("builtin:nope")


def test_images_only_one_family_makes_are_that_familys():
    assert family_of_images({(8, 8)}).name == "toy"
    assert family_of_images({(8, 8), (512, 512)}) is None
    assert family_of_images({(512, 512)}) is None


def test_what_each_family_declares():
    assert get_family("cogvideox").is_video and not get_family("sdxl").is_video
    assert not get_family("toy").uses_pipeline and get_family("sd3").uses_pipeline
    assert get_family("sd3").denoiser == "transformer" and get_family("sd15").denoiser == "unet"
    assert {get_family(n).conditioning for n in ("toy", "sd15")} == {"clip"}
    assert "add_q_proj" in get_family("sd3").lora_targets and "time_emb_proj" in get_family("sdxl").lora_targets
    assert get_family("toy").default_metrics == ("toy-fid", "toy-alignment", "toy-diversity", "latency")
    assert get_family("flux").guidance == "embedded" and get_family("flux").packing is not None
    assert get_family("sd3").guidance == "cfg" and get_family("sd3").packing is None
    with pytest.raises(BenchkitError, match="unknown model family 'nope'"):
        get_family("nope")


def test_a_spec_names_a_registered_family(tmp_path):
    from benchkit.models.spec import load_spec_file

    spec = tmp_path / "m.toml"
    spec.write_text('name = "m"\nbase = "builtin:toy-digits"\nfamily = "toy"\n[recipe]\nscheduler = "ddim"\nsteps = 2\n')
    assert load_spec_file(spec).family == "toy"
    spec.write_text('name = "m"\nbase = "builtin:toy-digits"\nfamily = "nope"\n[recipe]\nscheduler = "ddim"\nsteps = 2\n')
    with pytest.raises(BenchkitError, match=f"field 'family' must be one of {', '.join(FAMILIES)}, got 'nope'"):
        load_spec_file(spec)


def test_a_family_registered_from_outside_is_used_by_loading():
    """What an outside package's plugin module does on import: register a Family. Nothing in benchkit changes."""
    from benchkit.models.families import Family, register_family

    register_family()(Family("outside", "a test family", "SomeoneElsesPipeline", denoiser="transformer"))
    try:
        assert detect_family({"_class_name": "SomeoneElsesPipeline"}).name == "outside"
        assert get_family("outside").uses_pipeline
    finally:
        FAMILIES._items.pop("outside")
    with pytest.raises(ValueError, match="registered twice"):
        register_family()(Family("toy", "another toy", None))


def test_no_plugins_is_one_line(monkeypatch):
    from benchkit.core import plugins
    from benchkit.core.registry import Registry

    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setattr(plugins, "plugin_modules", lambda: [])
    with pytest.raises(BenchkitError, match="benchkit's plugins are not registered .*pip install -e"):
        list(Registry("thing"))


def test_benchkit_families_lists_them(cli):
    code, out, _ = cli("families", "--json")
    assert code == 0
    rows = json.loads(out)
    assert rows == describe_families()
    assert [r["name"] for r in rows] == list(FAMILIES)
    assert rows[0]["builtins"] == ["builtin:toy-digits"] and rows[[r["name"] for r in rows].index("cogvideox")]["media"] == "video"
