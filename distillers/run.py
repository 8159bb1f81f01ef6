"""`benchkit distill` and `benchkit pairs`: from a teacher spec to a student spec folder.

The output folder of ``distill`` is itself a model spec: ``spec.toml`` (name, ``base =
"model"``, the method's sampling recipe) next to ``model/``, a diffusers-layout folder with
the student's UNet and the teacher's other components, plus ``distill.json`` (method,
config, teacher, training history), ``train.log`` and ``checkpoints/``. Re-running the same
command resumes from the last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from benchkit.core.atomic import write_json_atomic, write_text_atomic
from benchkit.core.errors import BenchkitError
from distillers.adapter import Denoiser, teacher_from_parts
from distillers.data import BUILTIN_DATA, DistillData, Pairs, pairs_as_real
from distillers.flow_recipe import student_recipe
from distillers.methods import get_method


def method_class(method: str):
    """The Distiller class of a registered method (``distillers.methods``), or one line naming the known ones."""
    return get_method(method).cls


def released_spec(method: str, steps: int | None = None):
    """The released student of a method (4-step unless ``steps`` says otherwise), or a clear error."""
    from benchkit.models.presets import PRESETS

    info = get_method(method)
    released = info.released
    if not released:
        raise BenchkitError(f"--from-release: {method} has no released weights"
                            + (f" ({info.unreleased_reason})" if info.unreleased_reason else "")
                            + "; train one with --teacher")
    steps = steps or (4 if 4 in released else min(released))
    if steps not in released:
        raise BenchkitError(f"--from-release: {method} was released for {', '.join(map(str, sorted(released)))} steps, not {steps}; pass --student-steps")
    name = released[steps]
    if name not in PRESETS:
        raise BenchkitError(f"--from-release: preset '{name}' is not defined in this benchkit; see `benchkit models`, or train with --teacher")
    return PRESETS[name]


def resolve_teacher(spec_name: str):
    """The teacher's spec; a model benchkit cannot open (an outside command: its family loads it, no
    denoiser here) is one line before any work."""
    from benchkit.models.families import get_family
    from benchkit.models.presets import resolve_spec

    spec = resolve_spec(spec_name)
    family = get_family(spec.family) if spec.family else None
    if family is not None and family.load is not None:
        raise BenchkitError(f"teacher '{spec_name}': a {family.name} model ({family.description.split(':')[0]}) has no "
                            "denoiser benchkit can distill from; give a diffusers teacher")
    return spec


def teacher_denoiser(model, text=None) -> Denoiser:
    """The teacher Denoiser of a loaded model; ``text`` (its ``TeacherText``) gives the training resolution's
    token count, which a scheduler that shifts by resolution (FLUX.1-dev) needs for its schedule, and the
    scheduler config its spec samples with where the recipe changes the shipped one (Wan's flow_shift)."""
    config = text.scheduler_config if text is not None and text.scheduler_config is not None else model.scheduler_config
    return teacher_from_parts(model.unet, config, text.image_tokens if text is not None else None)


def load_teacher(spec_name: str, device: torch.device, pairs_path: Path | None = None):
    """(spec, loaded model, teacher Denoiser, DistillData, recipe fields) for a teacher spec; the recipe fields
    (``TeacherText.recipe``) are what the student's recipe must carry for its pipeline (FLUX's guidance, size; Wan's
    size, frames and UMT5 length)."""
    from benchkit.models.loading import load_model

    spec = resolve_teacher(spec_name)
    model = load_model(spec, device, torch.float32)
    pairs = Pairs.load(pairs_path) if pairs_path else None
    if model.family in BUILTIN_DATA:  # a family with its own data (the toy world's digits)
        teacher, fields = teacher_denoiser(model), {}
        data = BUILTIN_DATA[model.family](model.tokenizer, model.text_encoder, device, pairs=pairs)
    else:
        from distillers.prompt_encoding import teacher_text

        text = teacher_text(model, device)  # SD1.5 / SDXL / SD3 / FLUX / Wan conditioning, as the family's pipeline builds it
        teacher, fields = teacher_denoiser(model, text), text.recipe
        if pairs is None:
            raise BenchkitError(f"{spec_name}: give --pairs FILE (from `benchkit pairs --teacher {spec_name}`): its prompts are the training prompts and its samples the real data")
        if tuple(pairs.x0.shape[1:]) != text.shape:
            raise BenchkitError(f"--pairs {pairs_path}: its samples are {tuple(pairs.x0.shape[1:])} but {spec_name} denoises "
                                f"{text.shape}; make pairs with `benchkit pairs --teacher {spec_name}`")
        real, real_prompts = pairs_as_real(pairs)
        data = DistillData(pairs.prompts, text.encode, text.shape, real=real, real_prompts=real_prompts, pairs=pairs,
                           negative=text.negative)
    return spec, model, teacher, data, fields


def init_weights(spec_name: str, teacher_unet) -> dict[str, torch.Tensor]:
    """The UNet weights of another spec (a student folder), checked against the teacher's architecture."""
    from benchkit.models.loading import resolve_base
    from benchkit.models.presets import resolve_spec

    path = resolve_base(resolve_spec(spec_name).base) / "unet"
    try:
        from diffusers import UNet2DConditionModel

        unet = UNet2DConditionModel.from_pretrained(str(path), torch_dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise BenchkitError(f"--init {spec_name}: cannot load {path}: {str(exc).splitlines()[0]}") from None
    arch = lambda cfg: {k: v for k, v in dict(cfg).items() if not k.startswith("_")}  # noqa: E731
    if arch(unet.config) != arch(teacher_unet.config):
        raise BenchkitError(f"--init {spec_name}: its UNet config differs from the teacher's; --init needs the same architecture")
    return unet.state_dict()


def write_student(out_dir: Path, teacher_path: Path, denoiser: Denoiser, recipe: dict[str, Any], name: str,
                  description: str, half: bool = False) -> Path:
    """Write ``model/`` (teacher components + student denoiser) and ``spec.toml``; returns spec.toml.

    The student replaces the teacher's denoiser folder, ``unet/`` or SD3's, FLUX's and Wan's ``transformer/``
    (as model_index.json names it), so the folder loads with the teacher's pipeline class and runs the
    student; the teacher's denoiser is not copied.
    """
    from distillers.student import merged_copy

    out_dir = Path(out_dir)
    model_dir = out_dir / "model"
    tmp = out_dir / "model.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    index = json.loads((teacher_path / "model_index.json").read_text())
    denoiser_folder = "unet" if "unet" in index else "transformer"
    if denoiser_folder not in index:
        raise BenchkitError(f"{teacher_path}/model_index.json names neither a unet nor a transformer; cannot place the student")
    for entry in sorted(teacher_path.iterdir()):
        if entry.name == denoiser_folder or entry.name == "training.json":
            continue
        if entry.is_dir():
            shutil.copytree(entry, tmp / entry.name)
        else:
            shutil.copy2(entry, tmp / entry.name)
    student = merged_copy(denoiser.model)
    if half:  # halves the shipped size; loading casts back to the requested dtype
        student = student.to(torch.float16)
    student.save_pretrained(tmp / denoiser_folder, safe_serialization=True)
    if denoiser.prediction_type == "sample" and denoiser.schedule.kind != "flow":  # flow schedulers read velocity only
        sched_file = tmp / "scheduler" / "scheduler_config.json"
        sched = json.loads(sched_file.read_text())
        sched["prediction_type"] = "sample"
        write_json_atomic(sched_file, sched)
    write_json_atomic(tmp / "model_index.json", index)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    tmp.rename(model_dir)
    lines = [f'name = "{name}"', 'base = "model"', f'description = "{description}"', "", "[recipe]"]
    for key, value in recipe.items():
        lines.append(f"{key} = {_toml(value)}")
    spec_path = out_dir / "spec.toml"
    write_text_atomic(spec_path, "\n".join(lines) + "\n")
    return spec_path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def distill(method: str, teacher_spec: str, steps: int, out_dir: Path, overrides: dict[str, Any] | None = None,
            pairs_path: Path | None = None, device: str = "auto", checkpoint_every: int = 100, eval_every: int = 0,
            cache_dir: Path | None = None, show_progress: bool = True, half: bool = False, name: str | None = None,
            stop_after: int | None = None, init: str | None = None) -> dict[str, Any]:
    from benchkit.core.hardware import resolve_device
    from benchkit.core.lock import folder_lock

    cls = method_class(method)
    config = cls.Config.from_overrides({**(overrides or {}), "steps": steps})
    explicit_cfg = "guidance" in (overrides or {})
    out_dir = Path(out_dir)
    resolve_teacher(teacher_spec)
    check_distill_out(out_dir, teacher_spec, pairs_path)
    dev = resolve_device(device)
    with folder_lock(out_dir, "benchkit distill"):
        return _distill(method, cls, config, teacher_spec, out_dir, pairs_path, dev, checkpoint_every, eval_every,
                        cache_dir, show_progress, half, name, stop_after, init, explicit_cfg)


DEFAULT_PAIRS_CFG = 2.0  # `benchkit pairs --guidance` on a CFG teacher

# What `benchkit distill` writes in its --out; a folder holding anything else is not replaced.
DISTILL_ENTRIES = {"checkpoints", "train.log", "losses.jsonl", "model", "model.tmp", "spec.toml", "distill.json", "cache"}
_DISTILL_MARKS = {"checkpoints", "train.log", "distill.json"}  # only a distill run has one of these


def check_distill_out(out_dir: Path, teacher_spec: str, pairs_path: Path | None) -> None:
    """--out is new, empty, or an earlier distill run (resumed); never a folder of other files,
    and never the teacher's folder or the pairs file, or a folder inside or around them."""
    from benchkit.core.lock import LOCK_NAME
    from benchkit.core.outpaths import check_separate
    from benchkit.models.presets import resolve_spec

    if out_dir.exists():
        if not out_dir.is_dir():
            raise BenchkitError(f"--out {out_dir} is a file; give a folder for the student")
        entries = {p.name for p in out_dir.iterdir()} - {LOCK_NAME}
        if entries and (entries - DISTILL_ENTRIES or not entries & _DISTILL_MARKS):
            raise BenchkitError(f"--out {out_dir} is not a benchkit distill folder (it holds "
                                f"{', '.join(sorted(entries)[:3])}); choose an empty or new folder")
    check_separate(out_dir, [("teacher", path) for path in resolve_spec(teacher_spec).local_paths()]
                   + [("pairs file", pairs_path)])


def _distill(method: str, cls, config, teacher_spec: str, out_dir: Path, pairs_path: Path | None, dev: torch.device,
             checkpoint_every: int, eval_every: int, cache_dir: Path | None, show_progress: bool, half: bool,
             name: str | None, stop_after: int | None, init: str | None, explicit_cfg: bool = False) -> dict[str, Any]:
    from benchkit.core.distributed import current_world

    world = current_world(dev)  # a world of one unless launched by torchrun / accelerate launch
    dev = world.device(dev)
    spec, model, teacher, data, fields = load_teacher(teacher_spec, dev, pairs_path)
    if not explicit_cfg and model.family_info.guidance == "embedded" and hasattr(config, "guidance"):
        # a guidance-distilled teacher (FLUX.1-dev) is guided by its embedded guidance (the recipe's); the methods'
        # CFG defaults are for CFG teachers, so real CFG is off unless asked for with --set guidance=
        config = dataclasses.replace(config, guidance=1.0)
    if world.is_main:  # rank 0 writes everything: log, checkpoints, student, distill.json
        out_dir.mkdir(parents=True, exist_ok=True)
    distiller = cls(teacher, data, config, world=world)

    def recipe() -> dict[str, Any]:
        """The method's recipe, completed for the teacher's pipeline (FLUX: embedded guidance, size, no dynamic shift)."""
        return student_recipe(distiller.recipe(), model.scheduler_config, fields)

    recipe()  # a student the recipe could not sample (e.g. x0 prediction on a flow teacher) fails before training
    if init:
        distiller.init_student(init_weights(init, model.unet))
    evaluator = None
    from distillers.evaluation import MINI_EVALS

    if model.family in MINI_EVALS and eval_every:
        evaluator = MINI_EVALS[model.family](Path(cache_dir or out_dir / "cache"))
    from distillers.training import Trainer

    trainer = Trainer(distiller, out_dir, checkpoint_every=checkpoint_every, eval_every=eval_every,
                      evaluator=evaluator, show_progress=show_progress)
    start = time.time()
    result = trainer.run(stop_after=stop_after)
    if result["step"] < config.steps:
        world.barrier()  # the checkpoint rank 0 writes is on disk before any rank returns
        return {"finished": False, **result}
    if not world.is_main:
        world.barrier()
        return {"finished": True, "spec": out_dir / "spec.toml", **result}
    student_name = name or f"{spec.name}-{method}-{config.student_steps}step"
    description = f"{method} student of {spec.name}, {config.student_steps}-step, {config.steps} training steps"
    spec_path = write_student(out_dir, model.path, distiller.export_denoiser(), recipe(), student_name,
                              description, half=half)
    provenance = {
        "method": method,
        "config": dataclasses.asdict(config),
        "teacher": spec.to_dict(),
        "teacher_weights_sha256": model.weights_sha256,
        "pairs": str(pairs_path) if pairs_path else None,
        "init": init,
        "pairs_meta": data.pairs.meta if data.pairs is not None else None,
        "history": result["history"],
        "last_losses": result["logs"],
        "seconds_this_session": round(time.time() - start, 1),
        "torch": torch.__version__,
        # this (last) session's processes; the update is the same for any world size with this global batch
        "parallel": {"world_size": world.size, "per_rank_batch": distiller.cfg.batch_size,
                     "global_batch": config.batch_size, "backend": world.describe()["backend"],
                     "gradient_sync": "all-reduce mean of each optimizer's gradients before its step" if world.distributed else None,
                     **distiller.fsdp_record()},
        "memory": {"gradient_checkpointing": config.gradient_checkpointing, "teacher_dtype": config.teacher_dtype},
    }
    write_json_atomic(out_dir / "distill.json", provenance)
    trainer.log(f"exported {spec_path}")
    world.barrier()
    return {"finished": True, "spec": spec_path, **result}


def check_pairs_out(out: Path) -> None:
    """--out of `benchkit pairs` may replace an earlier pairs file, never another file."""
    if not out.exists():
        return
    if out.is_dir():
        raise BenchkitError(f"--out {out} is a folder; give a file name such as pairs.safetensors")
    try:
        Pairs.load(out)
    except BenchkitError:
        raise BenchkitError(f"--out {out} exists and is not a benchkit pairs file; choose a new file name") from None


def pairs_command(teacher_spec: str, out: Path, count: int, steps: int, guidance: float | None, seed: int, device: str = "auto",
                  show_progress: bool = True, prompts: str | None = None, batch_size: int | None = None) -> Pairs:
    """Teacher ODE pairs for ``count`` noises; ``batch_size`` (default: the family's, 100 for the toy, 8
    for latent models, whose CFG batch is twice that) changes memory, not the pairs: each noise is seeded by its index."""
    from benchkit.core.hardware import resolve_device
    from benchkit.core.progress import progress_bar
    from benchkit.models.loading import load_model
    from distillers.pairs import make_pairs

    spec = resolve_teacher(teacher_spec)
    if count < 1 or steps < 1:
        raise BenchkitError("--count and --steps must be at least 1")
    check_pairs_out(Path(out))
    dev = resolve_device(device)
    model = load_model(spec, dev, torch.float32)
    if guidance is None:  # CFG 2, except on a guidance-distilled teacher, which its embedded guidance guides
        guidance = 1.0 if model.family_info.guidance == "embedded" else DEFAULT_PAIRS_CFG
    conditioning = None
    if prompts is None and model.family in BUILTIN_DATA:
        teacher = teacher_denoiser(model)
        data = BUILTIN_DATA[model.family](model.tokenizer, model.text_encoder, dev)
    elif prompts is None:
        raise BenchkitError(f"{teacher_spec}: give --prompts (a prompt set or file): the pairs' prompts are the training prompts")
    else:
        from distillers.prompt_encoding import teacher_text
        from prompts import load_prompt_set

        text = teacher_text(model, dev)  # SD1.5 / SDXL / SD3 / FLUX / Wan conditioning, as the family's pipeline builds it
        teacher = teacher_denoiser(model, text)
        texts = [r.prompt for r in load_prompt_set(prompts).records]
        data = DistillData(texts, text.encode, text.shape, negative=text.negative)
        conditioning = text.details
    with progress_bar(show_progress) as bar:
        task = bar.add_task("teacher ODE pairs", total=count, info=f"{steps} DDIM steps, CFG {guidance:g}")
        batch = batch_size or model.family_info.pairs_batch_size
        pairs = make_pairs(teacher, data, count, steps, guidance, seed, batch_size=batch, progress=lambda n: bar.advance(task, n))
    pairs.meta.update({"teacher": spec.name, "teacher_weights_sha256": model.weights_sha256, "family": model.family,
                       "conditioning": conditioning})
    pairs.save(out)
    return pairs
