"""VBench's scene dimension (``vbench/scene.py`` ``compute_scene``, vbench 0.1.5) against benchkit's
``vbench-scene`` on the same clips, prompts and random Tag2Text weights.

VBench's side is the package's own code, run as VBench runs it: its ``compute_scene`` on a VBench info json of
mp4 clips written as `benchkit eval` writes them, decoded and resized to 384 x 384 by decord, captioned by its
``Tag2Text_Caption`` (its Swin, its med.py BERTs, transformers' ``generate``). VBench pins transformers 4.33.2,
whose ``generate`` defines its captions and which does not coexist with benchkit's transformers 5, so VBench runs
in a child process with transformers 4.33.2 first on its path: ``$BENCHKIT_TRANSFORMERS_433`` names that folder
(``pip install --no-deps --target DIR transformers==4.33.2 tokenizers==0.13.3 huggingface_hub==0.17.3``);
without it the parity tests skip. Only what downloads is replaced there: the bert-base-uncased tokenizer (a local
folder) and the pretrained BERT ``from_pretrained`` the tag head starts from (built from its config, then the
checkpoint overwrites it, as in VBench); and, because the package reads its model sizes from json files beside
its code, the Swin and tag-head configs are read from tiny copies. The checkpoint is a random
``{'model': state dict}`` in the release's layout, which VBench's own loader reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from run_files import score_in_two_chunks

from benchkit.core.errors import BenchkitError
from metrics import weights as W
from metrics.base import MetricContext, ScorePlan

TRANSFORMERS_433 = "BENCHKIT_TRANSFORMERS_433"
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# the tiny model: Tag2Text's structure at small sizes (BERT width 768 is hard-wired in tag2text.py)
TINY_SWIN = {"vision_width": 128, "image_res": 384, "window_size": 12, "embed_dim": 16, "depths": [1, 2, 1, 1],
             "num_heads": [1, 1, 2, 4]}  # stage 2 (48 x 48 tokens) has a shifted-window block
TINY_MED = {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 64,
            "layer_norm_eps": 1e-12, "max_position_embeddings": 48, "model_type": "bert", "num_attention_heads": 12,
            "num_hidden_layers": 2, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 0, "encoder_width": 768,
            "add_cross_attention": True}
TINY_Q2L = {**TINY_MED, "num_attention_heads": 4, "num_hidden_layers": 1, "add_tag_cross_attention": False}


def tag_vocabulary() -> list[str]:
    """A WordPiece vocabulary of BERT's special tokens, the prompt's words and every word of Tag2Text's tags."""
    from metrics.tag2text import TAGS

    words = sorted({w for tag in TAGS for w in re.findall(r"[a-z0-9]+|[^a-z0-9\s]", tag)} | {"a", "picture", "of"})
    return [*SPECIALS, *words, "##s", "##ing", ",", "."]


def save_tokenizer(folder: Path) -> Path:
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(tag_vocabulary()) + "\n")
    BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(str(folder))
    return folder


# ---- VBench's side, in a child process with transformers 4.33.2 -------------------------------------------------

REFERENCE = r'''
import json, sys, logging
import torch
args = json.loads(open(sys.argv[1]).read())
torch.set_num_threads(1)
import transformers
assert transformers.__version__ == "4.33.2", transformers.__version__
from transformers import BertTokenizer
import vbench.third_party.tag2Text.med as med
import vbench.third_party.tag2Text.tag2text as t2t
from vbench import scene

root = logging.getLogger()
root.handlers[:] = []

class LocalTokenizer(BertTokenizer):  # init_tokenizer's download of bert-base-uncased: the local folder
    @classmethod
    def from_pretrained(cls, name, *a, **k):
        assert name == "bert-base-uncased", name
        return super().from_pretrained(args["tokenizer"])

def pretrained_bert(cls, name, config=None, **kwargs):  # the tag head's start from bert-base-uncased: built from its config
    assert name == "bert-base-uncased", name
    return cls(config, **kwargs)

class TinyConfigs(t2t.BertConfig):  # q2l_config.json is read beside the package's code: the tiny one instead
    @classmethod
    def from_json_file(cls, path):
        return super().from_json_file(args["q2l_config"] if str(path).endswith("q2l_config.json") else path)

read_json = t2t.read_json
t2t.BertTokenizer = LocalTokenizer
med.BertModel.from_pretrained = classmethod(pretrained_bert)
t2t.BertConfig = TinyConfigs
t2t.read_json = lambda path: args["swin_config"] if str(path).endswith("config_swinB_384.json") else read_json(path)
loaded = {}
load = t2t.load_checkpoint_swinbase
def load_and_report(model, path, kwargs):
    model, msg = load(model, path, kwargs)
    loaded["missing"], loaded["unexpected"] = list(msg.missing_keys), list(msg.unexpected_keys)
    return model, msg
t2t.load_checkpoint_swinbase = load_and_report
calls = []
def get_caption(model, image_arrays):  # scene.py:25-27, recording what it returns
    caption, tags = model.generate(image_arrays, tag_input=None, return_tag_predict=True)
    calls.append({"captions": caption, "tags": tags})
    return caption
scene.get_caption = get_caption
with torch.no_grad():
    value, per_clip = scene.compute_scene(args["info"], torch.device("cpu"), {
        "pretrained": args["checkpoint"], "image_size": 384, "vit": "swin_b", "med_config": args["med_config"]})
tokenizer = t2t.init_tokenizer()
encoded = [tokenizer(t, padding="max_length", truncation=True, max_length=40).input_ids for t in args["encode"]]
json.dump({"value": value, "per_clip": per_clip, "calls": calls, "loaded": loaded, "encoded": encoded,
           "decoded": [tokenizer.decode(ids, skip_special_tokens=True) for ids in args["decode"]]},
          open(args["out"], "w"))
'''


def start_vbench_scene(folder: Path, info: Path, checkpoint: Path, tokenizer: Path, encode=(), decode=()):
    """VBench's compute_scene on ``info`` in a child process under transformers 4.33.2, started (it runs beside
    benchkit's scoring); None without that transformers. :func:`vbench_result` waits for it."""
    import importlib.util

    target = os.environ.get(TRANSFORMERS_433)
    if not target or not (Path(target) / "transformers" / "__init__.py").is_file():
        return None
    if any(importlib.util.find_spec(m) is None for m in ("vbench", "decord", "av", "cv2")):
        return None
    (folder / "q2l_config.json").write_text(json.dumps({**TINY_Q2L, "vocab_size": len(tag_vocabulary())}))
    (folder / "med_config.json").write_text(json.dumps({**TINY_MED, "vocab_size": len(tag_vocabulary()) + 2}))
    args = {"tokenizer": str(tokenizer), "q2l_config": str(folder / "q2l_config.json"), "swin_config": TINY_SWIN,
            "med_config": str(folder / "med_config.json"), "info": str(info), "checkpoint": str(checkpoint),
            "encode": list(encode), "decode": [list(map(int, d)) for d in decode], "out": str(folder / "vbench.json")}
    (folder / "args.json").write_text(json.dumps(args))
    (folder / "reference.py").write_text(REFERENCE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([target, *filter(None, [os.environ.get("PYTHONPATH")])]),
           "OMP_NUM_THREADS": "1"}
    log = open(folder / "vbench.log", "w")
    return subprocess.Popen([sys.executable, str(folder / "reference.py"), str(folder / "args.json")], env=env,
                            stdout=log, stderr=subprocess.STDOUT), folder


def vbench_result(started) -> dict:
    if started is None:
        pytest.skip(f"VBench's side needs vbench 0.1.5, decord, av, cv2 and ${TRANSFORMERS_433}: a folder holding "
                    "transformers 4.33.2, the version VBench pins, whose generate() makes its captions (pip install "
                    "--no-deps --target DIR transformers==4.33.2 tokenizers==0.13.3 huggingface_hub==0.17.3)")
    import resource

    process, folder = started
    assert process.wait(timeout=900) == 0, (folder / "vbench.log").read_text()[-3000:]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"VBench's child process: {usage.ru_utime + usage.ru_stime:.1f} s CPU")
    return json.loads((folder / "vbench.json").read_text())


# ---- the weights, the clips ------------------------------------------------------------------------------------

def tiny_captioner(tokenizer_folder: Path, seed: int):
    """benchkit's Tag2Text module at the TINY_* sizes with random weights: order-1 activations, a few tags per
    frame (the class bias lowered), and [SEP] favoured enough that captions end between 10 and 30 tokens."""
    from metrics.tag2text import TAGS, Tag2TextCaptioner, Tag2TextSizes, Tag2TextTokenizer

    tokenizer = Tag2TextTokenizer(tokenizer_folder)
    sizes = Tag2TextSizes(embed_dim=TINY_SWIN["embed_dim"], depths=tuple(TINY_SWIN["depths"]),
                          swin_heads=tuple(TINY_SWIN["num_heads"]), vocab=len(tag_vocabulary()) + 2,
                          positions=TINY_MED["max_position_embeddings"], decoder_layers=TINY_MED["num_hidden_layers"],
                          encoder_layers=TINY_MED["num_hidden_layers"], tag_layers=TINY_Q2L["num_hidden_layers"],
                          med_width=TINY_MED["intermediate_size"], q2l_width=TINY_Q2L["intermediate_size"],
                          num_class=len(TAGS))
    model = Tag2TextCaptioner(sizes, tokenizer, TAGS)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # shared tensors are listed once
            if p.dim() == 1:
                is_scale = name.endswith("weight") and "norm" in name.lower()
                p.copy_((1.0 if is_scale else 0.0) + 0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[-1] if p.dim() <= 3 else p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * fan_in ** -0.5)
        model.fc.b.sub_(2.5)
        model.text_decoder.cls.predictions.bias[tokenizer.sep_id] += 3.0
    return model.eval()


def save_tiny_tag2text(path: Path, tokenizer_folder: Path, seed: int) -> Path:
    """A random tag2text_swin_14m.pth: ``{'model': state dict}`` in the release's layout. The word-embedding copy
    of the tensor VBench's model shares with the LM head is made different, so that which copy wins shows."""
    from metrics.tag2text import checkpoint_state

    checkpoint = checkpoint_state(tiny_captioner(tokenizer_folder, seed))
    words = checkpoint["model"]["text_decoder.bert.embeddings.word_embeddings.weight"]
    checkpoint["model"]["text_decoder.bert.embeddings.word_embeddings.weight"] = words + 0.5
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


def _clips() -> dict[str, np.ndarray]:
    """'mixed': 16 frames, a new picture every 2 (its frames get different tags and captions); 'short': 5 frames
    of a wide picture panning (VBench pads its 16 picks with the last frame)."""
    rng = np.random.default_rng(1)

    def smooth(h, w):
        small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float64)
        big = np.kron(small, np.ones((8, 8, 1)))[:h, :w]
        return np.clip(big + rng.normal(0, 12, big.shape), 0, 255).astype(np.uint8)

    pictures, wide = [smooth(64, 64) for _ in range(8)], smooth(48, 80)
    return {"mixed": np.stack([pictures[t // 2] for t in range(16)]),
            "short": np.stack([np.roll(wide, 4 * t, axis=1) for t in range(5)])}


# chosen after reading the captions: 'mixed' matches on some frames and not on others (a word of its first
# frames' caption); 'short' has one word its captions hold and one they lack, so no frame matches
SCENES = {"mixed": "crowd flag", "short": "stove park"}


ENCODE = ["a picture of ", "oak tree | spectator | 3d cg rendering", "", "picnic table | vase | relief | abstract " * 5]


def _decode_cases() -> list[list[int]]:
    """Token id lists with [DEC], [ENC], specials, WordPiece pieces and punctuation, for the decoder."""
    vocab = {t: i for i, t in enumerate(tag_vocabulary())}
    dec, enc = len(vocab), len(vocab) + 1
    w = [vocab[t] for t in ("a", "picture", "of", "park", "##s", ",", ".", "[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")]
    return [[dec, w[0], w[1], w[2], w[3], w[4], w[5], w[3], w[6], w[8], w[9]], [enc, w[7], w[3], w[10], w[11], w[4], dec],
            [w[4], w[3], w[6], w[6]]]


def _meta(scene: str) -> dict:
    return {"dimension": ["scene"], "auxiliary_info": {"scene": {"scene": {"scene": scene}}}}  # as VBench_full_info.json


SEED = 3  # the tiny Tag2Text's random weights
RECORDED = Path(__file__).resolve().parent / "data" / "vbench" / "scene"  # make_scene_reference.py's clips and result


def write_clips() -> None:
    """The clips as mp4, once, in RECORDED/videos (VBench's recorded result is of these files)."""
    from benchkit.models.video import write_video

    for name, frames in _clips().items():
        if not (RECORDED / "videos" / f"{name}_0.mp4").exists():
            RECORDED.mkdir(parents=True, exist_ok=True)
            assert write_video(RECORDED, f"{name}_0", frames, 8)["video_format"] == "mp4", "PyAV is needed"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import shutil

    pytest.importorskip("av")
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("scene")
    run = root / "run"
    (run / "videos").mkdir(parents=True)
    tokenizer = save_tokenizer(root / "weights" / "bert-tokenizer")
    checkpoint = save_tiny_tag2text(root / "weights" / "caption_model" / "tag2text_swin_14m.pth", tokenizer, seed=SEED)
    records, info = [], []
    for name in _clips():
        rec = {"prompt_id": name, "prompt": name, "seed": 0, "meta": _meta(SCENES[name]), "video": f"videos/{name}_0.mp4",
               "video_format": "mp4", "fps": "8", "frames": str(len(_clips()[name]))}
        shutil.copyfile(RECORDED / rec["video"], run / rec["video"])
        records.append(rec)
        info.append({"prompt_en": name, "dimension": ["scene"], "video_list": [str(run / rec["video"])],
                     "auxiliary_info": _meta(SCENES[name])["auxiliary_info"]})
    (root / "full_info.json").write_text(json.dumps(info))
    started = start_vbench_scene(root, root / "full_info.json", checkpoint, tokenizer, ENCODE, _decode_cases())
    yield {"vbench": started, "root": root, "run": run, "records": records, "checkpoint": checkpoint,
           "tokenizer": tokenizer, "weights": {"tag2text-swin-14m": str(checkpoint),
                                               "bert-base-uncased-tokenizer": str(tokenizer)}}
    if started is not None and started[0].poll() is None:  # a run of only some tests: the child is not waited for
        started[0].kill()
        started[0].wait()


def _use_test_weights(mp, world) -> MetricContext:
    """The weights registry with the entries the metric resolves (bert-base-uncased-tokenizer is there already;
    tag2text-swin-14m is added, as the real entry will be), pointing at the random files."""
    mp.setitem(W.REGISTRY, "tag2text-swin-14m", W.WeightSpec(
        "tag2text-swin-14m", "Tag2Text Swin-B 14M (test entry)", "test", "test", ("tag2text_swin_14m.pth",)))
    mp.setenv("BENCHKIT_WEIGHT_PATHS", json.dumps(world["weights"]))
    ctx = MetricContext(cache_dir=world["root"] / "cache")
    ctx.run_dir = world["run"]
    return ctx


@pytest.fixture()
def registry(monkeypatch, world):
    return _use_test_weights(monkeypatch, world)


@pytest.fixture(scope="module")
def scored(world):
    """benchkit's metric over the clips in two chunks, merged as the scorer merges them, with the tag encodings it
    computed kept (the mistake test decodes them again), and the time it took."""
    import metrics.vbench_scene  # noqa: F401  (registers vbench-scene)
    from metrics import build_metrics

    if world["vbench"] is None:  # every test that uses this compares with VBench: skip before scoring
        vbench_result(None)
    with pytest.MonkeyPatch.context() as mp:
        ctx = _use_test_weights(mp, world)
        start = time.process_time()
        metric = build_metrics(["vbench-scene"], ctx)[0]
        encodings, tags = [], []
        tag_encoding = metric.model.tag_encoding

        def keep(frame_tags, embeds):
            tags.append(frame_tags)
            encodings.append(tag_encoding(frame_tags, embeds))
            return encodings[-1]

        mp.setattr(metric.model, "tag_encoding", keep)
        score_in_two_chunks(metric, world["records"], 1)  # merged as the scorer merges chunks
        value = metric.compute()[0]
        seconds = time.process_time() - start
    return {"metric": metric, "value": value, "encodings": encodings, "tags": tags, "seconds": seconds}


@pytest.fixture(scope="module")
def vbench(world):
    return vbench_result(world["vbench"])


@pytest.fixture(scope="module")
def recorded(world) -> dict:
    """VBench's result on these clips: live under transformers 4.33.2 where it can run, else as
    tests/data/vbench/make_scene_reference.py recorded it (clip paths mapped to this run's copies)."""
    if world["vbench"] is not None:
        return vbench_result(world["vbench"])
    result = json.loads((RECORDED / "reference.json").read_text())
    for clip in result["per_clip"]:
        clip["video_path"] = str(world["run"] / "videos" / clip["video_path"])
    return result


# ---- the tests -------------------------------------------------------------------------------------------------

def test_scene_equals_vbench(world, scored, vbench):
    """The same tags and 16 captions per clip (exact strings), the same per-clip shares and the same value."""
    metric, value = scored["metric"], scored["value"]
    assert vbench["loaded"]["unexpected"] == []  # VBench's loader took every tensor of the file, and lacks only buffers
    assert all(k.endswith(("relative_position_index", "attn_mask", "position_ids")) for k in vbench["loaded"]["missing"])
    by_path = {r["video_path"]: r for r in vbench["per_clip"]}
    for rec, call, tags in zip(world["records"], vbench["calls"], scored["tags"]):
        key = f"{rec['prompt_id']}\x1f0"
        assert metric.captions[key] == call["captions"], rec["prompt_id"]
        # generate(return_tag_predict=True) returns the first 16 of its per-beam list: frame i // 3's tags
        assert [tags[i // 3] for i in range(16)] == call["tags"], rec["prompt_id"]
        want = by_path[str(world["run"] / rec["video"])]
        matched, frames = metric.videos[key]
        assert (matched, frames) == (want["success_frame_count"], want["frame_count"]) == (matched, 16)
        assert matched / frames == want["video_results"]
    assert value.value == vbench["value"] and value.n == 2
    assert value.extra["frames_scored"] == 32 and value.variant["dimension"] == "scene"
    shares = [metric.videos[f"{r['prompt_id']}\x1f0"][0] / 16 for r in world["records"]]
    print(f"vbench-scene: benchkit {value.value} vbench {vbench['value']}, per clip {shares}; benchkit "
          f"{scored['seconds']:.1f} s CPU")
    # both outcomes occur: frames that match and frames that do not (else the test could not tell)
    assert 0 < shares[0] < 1 and shares[1] == 0, shares


def test_the_first_captions_equal_vbenchs_recorded_ones(world, recorded, monkeypatch):
    """What CI can afford of the test above: the 'mixed' clip's 16 frames through the Swin and the tag head (its
    tags equal VBench's), then the captions of its first 3 frames (as the mistakes test below decodes them), each
    equal to VBench's exact string."""
    import metrics.vbench_scene  # noqa: F401  (registers vbench-scene)
    from metrics import build_metrics
    from metrics.clips import read_clip
    from metrics.vbench_scene import scene_pixels

    ctx = _use_test_weights(monkeypatch, world)
    model = build_metrics(["vbench-scene"], ctx)[0].model
    rec = world["records"][0]
    assert rec["prompt_id"] == "mixed"
    pixels = scene_pixels(world["run"] / rec["video"], read_clip(world["run"] / rec["video"]))
    with torch.no_grad():
        embeds = model.image_embeds(pixels)
        tags = model.tag_strings(embeds)
        assert [tags[i // 3] for i in range(16)] == recorded["calls"][0]["tags"]
        captions = model.decode(model.tag_encoding(tags[:3], embeds[:3]))  # rows of frames 0-2, 3 beams each
    print(f"first captions: {captions}")
    assert captions == recorded["calls"][0]["captions"][:3]


def test_tokenizer_equals_transformers_433(world, recorded):
    """Tags and the prompt are encoded, captions decoded, as transformers 4.33's BertTokenizer does."""
    from metrics.tag2text import Tag2TextTokenizer

    tok = Tag2TextTokenizer(world["tokenizer"])
    assert [tok.encode([t], 40)[0][0].tolist() for t in ENCODE] == recorded["encoded"]
    assert [tok.decode(ids) for ids in _decode_cases()] == recorded["decoded"]
    assert (tok.dec_id, tok.enc_id) == (len(tag_vocabulary()), len(tag_vocabulary()) + 1)


def test_plausible_mistakes_change_the_captions(world, scored, vbench, monkeypatch):
    """Decoding each frame from its own tag encoding (what tag2text.py means, not what VBench computes), or
    normalising finished beams by their generated length only (transformers >= 4.36), gives other captions."""
    import metrics.tag2text as T

    # the 'mixed' clip's first 3 frames (2 pictures; VBench decodes all 3 from the first frame's tag encoding)
    model, encoding = scored["metric"].model, scored["encodings"][0][:9]
    want = vbench["calls"][0]["captions"][:3]
    assert model.decode(encoding) == want
    own = model.decode(encoding, cross_states=encoding)

    def add_generated_only(self, tokens, sum_logprobs):
        score = sum_logprobs / (tokens.shape[-1] - 4)  # the prompt "[DEC] a picture of" not counted
        if len(self.beams) < self.num_beams or score > self.worst_score:
            self.beams.append((score, tokens))
            if len(self.beams) > self.num_beams:
                ranked = sorted([(s, i) for i, (s, _) in enumerate(self.beams)])
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    monkeypatch.setattr(T._Hypotheses, "add", add_generated_only)
    generated_only = model.decode(encoding)
    differ = [sum(a != b for a, b in zip(got, want)) for got in (own, generated_only)]
    print(f"frames whose caption differs from VBench's: own tag encoding {differ[0]}/3, beams normalised by "
          f"generated length {differ[1]}/3")
    assert all(differ), differ


def test_decoded_frames_are_decords(world):
    """benchkit's 384 x 384 frames are decord's (VideoReader(width=384, height=384), as scene.py reads clips) byte
    for byte; resizing the RGB frames afterwards, as the other dimensions' transforms do, is not the same."""
    decord = pytest.importorskip("decord")
    from torchvision.transforms import functional as TF

    from metrics.clips import read_clip
    from metrics.vbench_scene import decord_frames

    for rec in world["records"]:
        path = world["run"] / rec["video"]
        reader = decord.VideoReader(str(path), width=384, height=384, num_threads=1)
        want = reader.get_batch(list(range(len(reader)))).asnumpy()
        got = decord_frames(path)
        assert got.shape == want.shape and np.array_equal(got, want), rec["prompt_id"]
        native = torch.from_numpy(read_clip(path)).permute(0, 3, 1, 2).float()
        resized = TF.resize(native, [384, 384], antialias=False).round().clamp(0, 255).permute(0, 2, 3, 1).numpy()
        assert np.abs(resized - want).max() > 8, rec["prompt_id"]


def test_tag_list_is_vbenchs():
    import importlib.util

    from metrics.tag2text import TAGS

    spec = importlib.util.find_spec("vbench")
    if spec is None:
        pytest.skip("vbench not installed (pip install --no-deps vbench==0.1.5)")
    path = Path(spec.submodule_search_locations[0]) / "third_party" / "tag2Text" / "tag_class.py"
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("vbench_tag_class", path))
    module.__spec__.loader.exec_module(module)
    assert list(TAGS) == [str(t) for t in module.tra_array] and len(TAGS) == 3429


def test_scene_prompts(tmp_path, registry):
    """The scene comes from VBench's auxiliary info (nested as in its full-info json, or as load_dimension_info hands
    it on); prompts without one are left out, and a run whose prompts name none is refused in one line."""
    from metrics import REGISTRY
    from metrics.vbench_scene import scene_matches, scene_text

    assert scene_text({"meta": _meta("amusement park")}) == "amusement park"
    assert scene_text({"meta": {"auxiliary_info": {"scene": {"scene": "alley"}}}}) == "alley"
    assert scene_text({"meta": {"dimension": ["scene"]}}) is None and scene_text({}) is None
    assert scene_matches("amusement park", "a parking lot at an amusement ride") and not scene_matches("park x", "park")
    cls = REGISTRY["vbench-scene"]
    plan = ScorePlan(records=[{"prompt_id": "c", "meta": {}}], seeds_per_prompt=1, family="wan", media="video")
    with pytest.raises(BenchkitError) as err:
        cls.check(plan, registry)
    assert "--dimension scene" in str(err.value) and "\n" not in str(err.value)
    cls.check(dataclasses.replace(plan, records=[*plan.records, {"prompt_id": "s", "meta": _meta("alley")}]), registry)


def test_wrong_checkpoints_are_one_line(tmp_path, world):
    from metrics.tag2text import TAGS, load_tag2text

    state = torch.load(world["checkpoint"], weights_only=True)["model"]
    cases = {"dino.pth": ({"pos_embed": torch.zeros(1, 5, 8)}, "not a Tag2Text checkpoint"),
             "partial.pth": ({"model": {k: v for k, v in state.items() if "layer.1.attention.self.query" not in k}},
                             "tensors missing"),
             "layers.pth": ({"model": {k: v for k, v in state.items() if "tag_encoder.encoder.layer.1." not in k}},
                            "1 tag-encoder layers"),
             "list.pth": ([1, 2], "expected a dict")}
    for name, (content, words) in cases.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(BenchkitError) as err:
            load_tag2text(tmp_path / name, world["tokenizer"], torch.device("cpu"), TAGS)
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
