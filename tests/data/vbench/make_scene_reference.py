"""Record what VBench's ``compute_scene`` (vbench 0.1.5 under transformers 4.33.2, the version it pins) computes on
the clips in ``scene/``, for tests/test_vbench_scene.py to compare with in CI, which does not install that second
transformers (its live test needs ``$BENCHKIT_TRANSFORMERS_433``).

    BENCHKIT_TRANSFORMERS_433=DIR python tests/data/vbench/make_scene_reference.py

DIR holds ``pip install --no-deps --target DIR transformers==4.33.2 tokenizers==0.13.3 huggingface_hub==0.17.3``.
VBench runs as the live test runs it (tests/test_vbench_scene.py's child process, the same tiny random Tag2Text
and tokenizer). Writes scene/reference.json; the clips are written only when they are not there yet.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "scene"


def main() -> None:
    sys.path.insert(0, str(HERE.parent.parent))  # tests/
    import test_vbench_scene as T

    T.write_clips()  # scene/videos/, once
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tokenizer = T.save_tokenizer(root / "bert-tokenizer")
        checkpoint = T.save_tiny_tag2text(root / "tag2text_swin_14m.pth", tokenizer, seed=T.SEED)
        info = [{"prompt_en": name, "dimension": ["scene"], "video_list": [str(DATA / "videos" / f"{name}_0.mp4")],
                 "auxiliary_info": T._meta(T.SCENES[name])["auxiliary_info"]} for name in T.SCENES]
        (root / "full_info.json").write_text(json.dumps(info))
        started = T.start_vbench_scene(root, root / "full_info.json", checkpoint, tokenizer, T.ENCODE, T._decode_cases())
        if started is None:
            raise SystemExit(f"set {T.TRANSFORMERS_433} to a folder holding transformers 4.33.2 (see this file's doc)")
        result = T.vbench_result(started)
    for clip in result["per_clip"]:
        clip["video_path"] = Path(clip["video_path"]).name  # where the clips were: the test maps them to its own
    result["transformers"] = "4.33.2"
    (DATA / "reference.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"value": result["value"], "per_clip": result["per_clip"]}, indent=1))


if __name__ == "__main__":
    main()
