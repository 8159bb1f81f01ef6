"""Built-in prompt sets: the public benchmark files vendored in ``prompts/data`` and how to read each.

Each upstream file is kept byte-for-byte (``data/MANIFEST.tsv`` holds their sha256), so a
set's hash is the upstream file's hash and anyone can check it against the source. A reader
turns the upstream layout into records with that benchmark's own ids and meta; only the
requested set's files are read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from benchkit.core.errors import BenchkitError
from benchkit.core.items import IMAGE_COLUMN
from prompts.files import index_ids, parse_records
from prompts.sets import PromptRecord, PromptSet

DATA_DIR = Path(__file__).parent / "data"

VBENCH_CATEGORIES = ("animal", "architecture", "food", "human", "lifestyle", "plant", "scenery", "vehicles")


def _lines(text: str) -> list[str]:
    """Lines split on LF or CRLF only (captions may hold other Unicode separators); no final empty line."""
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _plain(texts: list[str]) -> list[PromptRecord]:
    lines = _lines(texts[0])
    return [PromptRecord(pid, p) for pid, p in zip(index_ids(len(lines)), lines)]


def _coco_csv(texts: list[str]) -> list[PromptRecord]:
    rows = csv.reader(io.StringIO(texts[0], newline=""))
    if next(rows) != ["image_id", "text"]:
        raise ValueError("expected the header image_id,text")
    return [PromptRecord(image_id, caption) for image_id, caption in rows]


def _dalle3_lines(texts: list[str]) -> list[PromptRecord]:
    """Ids are 1-based line numbers, as in dalle3-eval-samples' ``{line}_{k}.png``; its 21 empty lines have no samples."""
    return [PromptRecord(str(n), line) for n, line in enumerate(_lines(texts[0]), 1) if line.strip()]


def _parti(texts: list[str]) -> list[PromptRecord]:
    # Plain tab-separated, no quoting: a prompt may start with '"' ("G I G G L E" painted ...).
    lines = _lines(texts[0])
    if lines[0].split("\t") != ["Prompt", "Category", "Challenge", "Note"]:
        raise ValueError("expected the header Prompt, Category, Challenge, Note")
    rows = [line.split("\t") for line in lines[1:]]
    return [PromptRecord(pid, prompt, {"category": category, "challenge": challenge, "note": note})
            for pid, (prompt, category, challenge, note) in zip(index_ids(len(rows)), rows)]


def _vbench_meta(prompts: list[str], info_text: str) -> list[dict]:
    """VBench_full_info.json lists the same prompts in the same order; align by index and check the
    text (two prompts occur twice, each time probing different dimensions)."""
    info = json.loads(info_text)
    if len(info) != len(prompts):
        raise ValueError(f"VBench_full_info.json has {len(info)} entries for {len(prompts)} prompts")
    metas = []
    for i, (prompt, entry) in enumerate(zip(prompts, info)):
        if entry["prompt_en"] != prompt:
            raise ValueError(f"prompt {i} differs from VBench_full_info.json")
        meta = {"dimension": list(entry["dimension"])}
        if "auxiliary_info" in entry:
            meta["auxiliary_info"] = entry["auxiliary_info"]
        metas.append(meta)
    return metas


def _vbench(texts: list[str]) -> list[PromptRecord]:
    prompts = _lines(texts[0])
    return [PromptRecord(pid, p, m) for pid, p, m in zip(index_ids(len(prompts)), prompts, _vbench_meta(prompts, texts[1]))]


def _vbench_long(texts: list[str]) -> list[PromptRecord]:
    """GPT-enhanced prompts, line i extending all_dimension line i (VBench scores them under the short one)."""
    long, short = _lines(texts[0]), _lines(texts[1])
    if len(long) != len(short):
        raise ValueError(f"{len(long)} long prompts for {len(short)} short ones")
    metas = _vbench_meta(short, texts[2])
    return [PromptRecord(pid, p, {**m, "short_prompt": s}) for pid, p, s, m in zip(index_ids(len(long)), long, short, metas)]


def _vbench_category(texts: list[str]) -> list[PromptRecord]:
    """all_category.txt is the per-category files concatenated in alphabetical order; checked line by line."""
    prompts = _lines(texts[0])
    labels = [(cat, line) for cat, text in zip(VBENCH_CATEGORIES, texts[1:]) for line in _lines(text)]
    if [line for _, line in labels] != prompts:
        raise ValueError("all_category.txt is not the per-category files in order")
    return [PromptRecord(pid, p, {"category": cat}) for pid, p, (cat, _) in zip(index_ids(len(prompts)), prompts, labels)]


def _vbench_i2v(texts: list[str]) -> list[PromptRecord]:
    """VBench-I2V's info json: prompt, the dimensions it probes, the image's type and file name. The file name is
    the item's input ``image``, relative: `--image-dir` names the crop folder of the chosen aspect ratio
    (vbench2_beta_i2v/data/crop/<ratio>/, from VBench's download_data.sh)."""
    entries = json.loads(texts[0])
    return [PromptRecord(pid, e["prompt_en"], {"dimension": list(e["dimension"]), "image_type": e["image_type"],
                                               "image_name": e["image_name"], IMAGE_COLUMN: e["image_name"]})
            for pid, e in zip(index_ids(len(entries)), entries)]


def _geneval(texts: list[str]) -> list[PromptRecord]:
    objs = [json.loads(line) for line in _lines(texts[0])]
    return [PromptRecord(pid, o["prompt"], {k: o[k] for k in ("tag", "include", "exclude") if k in o})
            for pid, o in zip(index_ids(len(objs)), objs)]


def _toy(texts: list[str]) -> list[PromptRecord]:
    return parse_records(texts[0], DATA_DIR / "toy-digits.tsv")


@dataclass(frozen=True)
class BuiltinSet:
    name: str
    description: str
    files: tuple[str, ...]  # under DATA_DIR; the first is the prompt file
    read: Callable[[list[str]], list[PromptRecord]]
    count: int  # records after ``first``; checked on every load
    source: str  # repository@commit
    upstream: str  # the prompt file's path there
    license: str
    group_fields: tuple[str, ...] = ()
    first: int | None = None  # a documented prefix of the file
    default_seeds: str = "0-3"  # the protocol's samples per prompt (VBench: 5, its videos {prompt}-0..4.mp4)

    def info(self) -> dict[str, object]:
        return {"name": self.name, "count": self.count, "subset": f"first {self.first}" if self.first else "all",
                "group_fields": list(self.group_fields), "description": self.description, "source": self.source,
                "upstream": self.upstream, "license": self.license, "files": list(self.files),
                "default_seeds": self.default_seeds}


_COCO = ("coco/MS-COCO_val2014_30k_captions.csv",)
_COCO_SRC = ("siliconflow/odeval@d149638", "resources/MS-COCO_val2014_30k_captions.csv")
_COCO_LIC = "CC-BY-4.0 captions, Apache-2.0 file"
_VB = "Vchitect/VBench@45e79ec"
_VB_INFO = "vbench/VBench_full_info.json"
_VB_SEEDS = "0-4"  # "For each prompt, sample 5 videos" (VBench prompts/README.md:56; 25 for temporal flickering)

_SETS = [
    BuiltinSet("toy-digits", "20 prompts for the toy digits world (two phrasings x ten digits)", ("toy-digits.tsv",),
               _toy, 20, "benchkit", "prompts/data/toy-digits.tsv", "Apache-2.0", ("digit",)),
    BuiltinSet("coco2014-30k", "MS-COCO val2014: one caption for each of 30,000 images (zero-shot FID, CLIP score)",
               _COCO, _coco_csv, 30000, *_COCO_SRC, _COCO_LIC),
    BuiltinSet("coco2014-10k", "the first 10,000 rows of coco2014-30k", _COCO, _coco_csv, 10000, *_COCO_SRC, _COCO_LIC, first=10000),
    BuiltinSet("coco2014-5k", "the first 5,000 rows of coco2014-30k", _COCO, _coco_csv, 5000, *_COCO_SRC, _COCO_LIC, first=5000),
    BuiltinSet("dalle3-coco-8k", "DALL-E 3 CLIP-score COCO captions; ids are line numbers, matching its sample files",
               ("dalle3/8k_coco.txt",), _dalle3_lines, 8192, "openai/dalle3-eval-samples@d7c88c0", "prompts/8k_coco.txt", "MIT"),
    BuiltinSet("partiprompts", "PartiPrompts: 1,632 prompts in 12 categories x 11 challenges", ("parti/PartiPrompts.tsv",),
               _parti, 1632, "google-research/parti@5a65797", "PartiPrompts.tsv", "Apache-2.0", ("category", "challenge")),
    BuiltinSet("drawbench", "DrawBench, 200 prompts (DALL-E 3 eval copy: no categories, 2 prompts differ from the sheet)",
               ("dalle3/drawbench.txt",), _plain, 200, "openai/dalle3-eval-samples@d7c88c0", "prompts/drawbench.txt", "MIT"),
    BuiltinSet("geneval", "GenEval object-composition prompts with their detector checks", ("geneval/evaluation_metadata.jsonl",),
               _geneval, 553, "djghosh13/geneval@af4902f", "prompts/evaluation_metadata.jsonl", "MIT", ("tag",)),
    BuiltinSet("vbench", "VBench prompts for the 16 dimensions (list meta: a prompt can probe several)",
               ("vbench/all_dimension.txt", _VB_INFO), _vbench, 946, _VB, "prompts/all_dimension.txt", "Apache-2.0",
               ("dimension",), default_seeds=_VB_SEEDS),
    BuiltinSet("vbench-long", "VBench prompts GPT-enhanced, aligned 1:1 with vbench",
               ("vbench/all_dimension_longer.txt", "vbench/all_dimension.txt", _VB_INFO), _vbench_long, 946,
               _VB, "prompts/augmented_prompts/gpt_enhanced_prompts/all_dimension_longer.txt", "Apache-2.0", ("dimension",),
               default_seeds=_VB_SEEDS),
    BuiltinSet("vbench-category", "VBench content categories, 8 x 100 prompts",
               ("vbench/all_category.txt", *(f"vbench/prompts_per_category/{c}.txt" for c in VBENCH_CATEGORIES)),
               _vbench_category, 800, _VB, "prompts/all_category.txt", "Apache-2.0", ("category",),
               default_seeds=_VB_SEEDS),
    BuiltinSet("vbench-i2v", "VBench-I2V (VBench++) image-prompt pairs; needs --image-dir with its cropped images",
               ("vbench/vbench2_i2v_full_info.json",), _vbench_i2v, 1118, _VB, "vbench2_beta_i2v/vbench2_i2v_full_info.json",
               "Apache-2.0 (prompts; the images are under their own licenses)", ("dimension", "image_type"),
               default_seeds=_VB_SEEDS),
    BuiltinSet("vbench2", "VBench-2.0 prompts", ("vbench/VBench2_full_text.txt",), _plain, 1013,
               _VB, "VBench-2.0/prompts/VBench2_full_text.txt", "Apache-2.0"),
]
BUILTIN_SETS: dict[str, BuiltinSet] = {s.name: s for s in _SETS}


def load_builtin(name: str) -> PromptSet:
    """Read one built-in set; its sha256 is the file's (several files: the hash of their names and hashes)."""
    spec = BUILTIN_SETS[name]
    paths = [DATA_DIR / f for f in spec.files]
    try:
        blobs = [p.read_bytes() for p in paths]
        records = spec.read([b.decode("utf-8") for b in blobs])
    except (OSError, UnicodeDecodeError, ValueError, KeyError) as exc:
        raise BenchkitError(f"built-in prompt set {name} is damaged ({exc}); reinstall benchkit") from None
    hashes = [hashlib.sha256(b).hexdigest() for b in blobs]
    sha = hashes[0] if len(hashes) == 1 else hashlib.sha256(
        "".join(f"{f}\t{h}\n" for f, h in zip(spec.files, hashes)).encode()).hexdigest()
    ps = PromptSet(name, records, sha, source=f"{spec.source} {spec.upstream}", group_fields=spec.group_fields,
                   default_seeds=spec.default_seeds)
    if spec.first:
        ps = ps.limit(spec.first)
    if len(ps) != spec.count:
        raise BenchkitError(f"built-in prompt set {name} has {len(ps)} prompts, expected {spec.count}; reinstall benchkit")
    return ps
