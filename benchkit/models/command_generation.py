"""Outside generators: a program benchkit runs once per batch, for models whose code is not in diffusers.

A spec names the program instead of weights (``command = ["python", "gen.py", "--steps", "4"]``,
optional ``timeout_s``). Loading reads no weights: it finds the program (one line, before any work,
when it is missing or not executable) and hashes the scripts the command names, so the run's identity
and manifest say exactly which script ran. For each batch the generator

1. makes a fresh folder inside the run directory (``.benchkit-command-*``; the system's temporary
   folder when the generator is used outside ``benchkit eval``),
2. starts the program in its own process group and writes one JSON request to its stdin::

       {"benchkit_request": 1, "output_dir": "/run/.benchkit-command-x1y2", "device": "cuda:0",
        "dtype": "float16", "recipe": {...every recipe field, scheduler as a class name...},
        "items": [{"prompt_id": "p1", "prompt": "...", "seed": 0, "noise_seed": 1234,
                   "file": "p1_0.png", "height": 512, "width": 512, "steps": 4, "guidance_scale": 1.0,
                   "num_frames": null, "image": null}, ...]}

   ``seed`` is the user's seed and ``noise_seed`` benchkit's per-item noise seed
   (:func:`benchkit.core.items.item_seed`): seeding ``torch.Generator("cpu").manual_seed(noise_seed)`` and
   drawing the initial latents from it, as ``examples/diffusers_command_generator.py`` does, gives
   benchkit's own images. ``image`` is the item's ``image`` prompt-set column as an absolute path (an
   input image), else null.
3. waits for it (``timeout_s`` per batch: then the whole process group is stopped), and reads
   ``<prompt_id>_<seed>.png`` (or ``.jpg``/``.jpeg``/``.webp``; lossy files change what metrics see) for
   every item, of exactly the recipe's size; with ``recipe.num_frames`` set the program makes clips of
   exactly that many frames: ``<prompt_id>_<seed>.npy`` (uint8 frames, height, width, 3; read as data,
   never unpickled), an animated ``.png``, or ``.mp4`` (decoded with PyAV when it is installed). It also
   reads the optional ``stages.json``: seconds for the whole batch, ``text_encoding_s``, ``denoising_s``
   and ``vae_decode_s`` (all three), plus any other numbers,
4. removes the folder (benchkit made it; nothing else is ever deleted).

The batch's latency is the program's wall time as the eval loop measures it (process start, model
load and all); ``stages.json`` adds the split and benchkit adds ``command_s``, the program's own wall
time. A failure is one line naming the model: the program exiting non-zero (with the last line of its
stderr), a timeout, a missing, unreadable or wrong-sized image or clip (or a clip with the wrong number
of frames), a malformed ``stages.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from benchkit.core.atomic import write_text_atomic
from benchkit.core.errors import BenchkitError, describe_os_error
from benchkit.core.hardware import dtype_name
from benchkit.core.items import Item, input_image, input_image_record, item_seed
from benchkit.models.generation import Generation
from benchkit.models.loading import LoadedModel, hash_file
from benchkit.models.spec import ModelSpec, Recipe

REQUEST_VERSION = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # what is looked for, in this order
CLIP_SUFFIXES = (".npy", ".png", ".mp4")  # a video program's clips, looked for in this order
STAGES_FILE = "stages.json"
REQUIRED_STAGES = ("text_encoding_s", "denoising_s", "vae_decode_s")  # what the latency metric splits a batch into
SCRATCH_PREFIX = ".benchkit-command-"
# written into every scratch folder as it is made: a leftover folder of a killed session is removed
# on the next only when it carries this mark (benchkit made it), never by its name alone
SCRATCH_MARK = ".made-by-benchkit"
STOP_GRACE_S = 2.0  # between SIGTERM and SIGKILL of a program past its timeout
# a script the command names: checked to exist before any work, like the program itself
_SCRIPT_SUFFIXES = (".py", ".sh", ".bash", ".zsh", ".js", ".mjs", ".rb", ".pl", ".lua", ".r", ".jl")


def find_program(spec: ModelSpec) -> str:
    """The path of the program a command spec runs, and any script it names must exist: else one line."""
    if not spec.command:
        raise BenchkitError(f"model '{spec.name}': family 'command' needs a 'command' field (the program to run per batch)")
    program = spec.command[0]
    if "/" in program or (os.altsep and os.altsep in program):
        path = Path(program)
        if not path.exists():
            raise BenchkitError(f"model '{spec.name}': command {program} not found (relative paths in a spec file "
                                f"are relative to its folder)")
        if not path.is_file() or not os.access(path, os.X_OK):
            raise BenchkitError(f"model '{spec.name}': command {program} is not executable: chmod +x it, or run it "
                                f"through its interpreter (command = [\"python\", \"{path.name}\", ...])")
        found = str(path)
    else:
        which = shutil.which(program)
        if which is None:
            raise BenchkitError(f"model '{spec.name}': command '{program}' not found on PATH; give its full path "
                                f"or install it")
        found = which
    for arg in spec.command[1:]:
        if not arg.startswith("-") and Path(arg).suffix.lower() in _SCRIPT_SUFFIXES and not Path(arg).exists():
            raise BenchkitError(f"model '{spec.name}': the command names {arg}, which does not exist (relative paths "
                                f"in a spec file are relative to its folder)")
    return found


def named_scripts(spec: ModelSpec) -> list[Path]:
    """The scripts a command names, in order: existing files with a script suffix (``gen.py``) or a ``#!``
    line, the program itself when it is one (not an interpreter such as a python executable). Only these
    are hashed: other files a command names may be its outputs (a log), which would change the run's identity."""
    out: list[Path] = []
    for i, arg in enumerate(spec.command or ()):
        path = Path(arg)
        script = path.is_file() and (_is_script(path) or (i > 0 and path.suffix.lower() in _SCRIPT_SUFFIXES))
        if not script:
            continue
        if path.resolve() not in {p.resolve() for p in out}:
            out.append(path)
    return out


def _is_script(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def load_command_model(spec: ModelSpec, device: torch.device, dtype: torch.dtype,
                       cache_dir: Path | None = None) -> LoadedModel:
    """What a command spec loads: nothing but the provenance of the scripts its command names."""
    start = time.perf_counter()
    program = find_program(spec)
    files = named_scripts(spec)
    hashes = {str(p): hash_file(p, cache_dir) for p in files}
    weight_files: dict[str, str] = {}  # into the run's identity: another script is another model
    for i, p in enumerate(files):
        key = f"script:{p.name}" if f"script:{p.name}" not in weight_files else f"script:{i}:{p.name}"
        weight_files[key] = hashes[str(p)]
    details = {"family": spec.family, "command": {"argv": list(spec.command or ()), "program": program,
                                                  "scripts": hashes, "timeout_s": spec.timeout_s}}
    return LoadedModel(spec=spec, path=files[0] if files else Path(program), unet=None, text_encoder=None,
                       tokenizer=None, scheduler_config={}, device=device, dtype=dtype, weight_files=weight_files,
                       size_bytes=0, load_seconds=time.perf_counter() - start, family=spec.family or "",
                       details=details)


class CommandGenerator:
    """A command spec plus a recipe: ``generate(items)`` runs the program on the batch and reads its images.

    ``scratch_dir``: where the per-batch output folders are made; ``benchkit eval`` sets it to the run folder.
    """

    def __init__(self, model: LoadedModel, recipe: Recipe):
        self.model = model
        self.recipe = recipe
        spec = model.spec
        self.name = spec.name
        self.argv = [find_program(spec), *(spec.command or ())[1:]]  # checked again: before the first batch
        if recipe.height is None or recipe.width is None:
            raise BenchkitError(f"model '{spec.name}': an outside generator's recipe needs height and width (the size "
                                f"its images must have): set recipe.height and recipe.width in the spec")
        self.height, self.width = recipe.height, recipe.width
        self.num_frames = recipe.num_frames  # a video program: every item is a clip of this many frames
        self.timeout = spec.timeout_s
        self._scratch_dir: Path | None = None

    @property
    def scratch_dir(self) -> Path | None:
        return self._scratch_dir

    @scratch_dir.setter
    def scratch_dir(self, folder: Path | None) -> None:
        """Work in ``folder`` (the run, whose lock this process holds), first removing the scratch folders a
        killed earlier session left there: only those carrying benchkit's mark."""
        self._scratch_dir = folder
        if folder is None:
            return
        for leftover in Path(folder).glob(f"{SCRATCH_PREFIX}*"):
            if leftover.is_dir() and not leftover.is_symlink() and (leftover / SCRATCH_MARK).is_file():
                shutil.rmtree(leftover, ignore_errors=True)

    def request(self, items: Sequence[Item], output_dir: Path) -> dict[str, Any]:
        """The JSON object the program reads from stdin (see the module docstring)."""
        r = self.recipe
        recipe = dataclasses.asdict(r)
        recipe["scheduler"] = r.scheduler_class
        for key in ("timesteps", "sigmas"):
            if recipe[key] is not None:
                recipe[key] = list(recipe[key])
        return {
            "benchkit_request": REQUEST_VERSION,
            "output_dir": str(output_dir),
            "device": str(self.model.device),
            "dtype": dtype_name(self.model.dtype),
            "recipe": recipe,
            "items": [{"prompt_id": it.prompt_id, "prompt": it.prompt, "seed": it.seed,
                       "noise_seed": item_seed(it.prompt_id, it.seed), "file": f"{it.key}.png",
                       "height": self.height, "width": self.width, "steps": r.steps,
                       "guidance_scale": r.guidance_scale, "num_frames": r.num_frames,
                       "image": self._input_image(it)} for it in items],
        }

    @staticmethod
    def _input_image(item: Item) -> str | None:
        path = input_image(item)
        return None if path is None else str(path)

    def generate(self, items: Sequence[Item]) -> Generation:
        items = list(items)
        parent = self.scratch_dir
        try:
            folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=parent))
            write_text_atomic(folder / SCRATCH_MARK, "benchkit made this folder for one batch of an outside generator\n")
        except OSError as exc:
            raise describe_os_error(exc, parent or tempfile.gettempdir(), "creating a folder in") from None
        try:
            payload = json.dumps(self.request(items, folder), allow_nan=False).encode("utf-8")
            seconds = self._run(payload, len(items))
            clips = [self._read_clip(folder, it) for it in items] if self.num_frames else None
            images = [c[0] for c in clips] if clips else [self._read_image(folder, it) for it in items]
            stages = self._read_stages(folder, seconds)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # benchkit made it: the program's outputs for this batch
        trace = {"command": self.argv, "command_s": seconds}
        inputs = [input_image_record(it) for it in items]  # the records keep each input image's path and sha256
        # denoiser calls are the program's own business: 0 says "not measured" (the manifest falls back to the recipe)
        return Generation(images, 0, videos=clips, stages=stages, trace=trace, inputs=inputs if any(inputs) else None)

    def _run(self, payload: bytes, n: int) -> float:
        """Run the program on one request; its wall time in seconds. Nothing of it outlives a failure."""
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)  # its own process group: a timeout stops all of it
        except OSError as exc:
            raise BenchkitError(f"model '{self.name}': cannot start {self.argv[0]}: {exc.strerror or exc}") from None
        try:
            out, err = proc.communicate(payload, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise BenchkitError(f"model '{self.name}': the command ran past its timeout of {self.timeout:g} s on a batch "
                                f"of {n} and was stopped with its process group; raise timeout_s in the spec if a batch "
                                f"needs longer") from None
        finally:
            if proc.returncode is None:  # interrupted (Ctrl-C) or failed here: leave nothing running
                _stop(proc)
        seconds = time.perf_counter() - start
        _signal_group(proc.pid, signal.SIGKILL)  # anything it left running in the background
        if proc.returncode != 0:
            how = (f"was killed by signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
                   else f"exited with status {proc.returncode}")
            raise BenchkitError(f"model '{self.name}': the command {how}: {_last_line(err, out)}")
        return seconds

    def _read_image(self, folder: Path, item: Item) -> np.ndarray:
        from PIL import Image

        found = next((folder / f"{item.key}{s}" for s in IMAGE_SUFFIXES if (folder / f"{item.key}{s}").is_file()), None)
        if found is None:
            raise self._missing(folder, item, "image", f"{item.key}.png")
        try:
            with Image.open(found) as im:
                im.load()
                got = (im.height, im.width)
                pixels = np.array(im.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            reason = " ".join(str(exc).replace(str(found), found.name).split()) or type(exc).__name__
            raise BenchkitError(f"model '{self.name}': the command's image {found.name} is unreadable: {reason}") from None
        if got != (self.height, self.width):
            raise BenchkitError(f"model '{self.name}': the command's image {found.name} is {got[0]}x{got[1]} (height x "
                                f"width), expected {self.height}x{self.width} (the recipe's size)")
        return pixels

    def _missing(self, folder: Path, item: Item, kind: str, expected: str) -> BenchkitError:
        wrote = sorted(p.name for p in folder.iterdir() if p.name not in (STAGES_FILE, SCRATCH_MARK))
        what = f"it wrote {', '.join(wrote[:5])}" + (", ..." if len(wrote) > 5 else "") if wrote else "it wrote nothing"
        return BenchkitError(f"model '{self.name}': the command wrote no {kind} for {item.key}: expected {expected} "
                             f"in the request's output_dir ({what})")

    def _read_clip(self, folder: Path, item: Item) -> np.ndarray:
        """One item's clip as uint8 (frames, height, width, 3), checked against the recipe's frames and size."""
        found = next((folder / f"{item.key}{s}" for s in CLIP_SUFFIXES if (folder / f"{item.key}{s}").is_file()), None)
        if found is None:
            raise self._missing(folder, item, "clip", f"{item.key}.npy, an animated {item.key}.png or {item.key}.mp4")
        where = f"model '{self.name}': the command's clip {found.name}"
        try:
            frames = _decode_clip(found)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            reason = " ".join(str(exc).replace(str(found), found.name).split()) or type(exc).__name__
            raise BenchkitError(f"{where} is unreadable: {reason}") from None
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise BenchkitError(f"{where} must hold uint8 frames shaped (frames, height, width, 3), got "
                                f"{frames.dtype} {tuple(frames.shape)}")
        if frames.shape[1:3] != (self.height, self.width):
            raise BenchkitError(f"{where} is {frames.shape[1]}x{frames.shape[2]} (height x width), expected "
                                f"{self.height}x{self.width} (the recipe's size)")
        if len(frames) != self.num_frames:
            raise BenchkitError(f"{where} has {len(frames)} frames, expected {self.num_frames} (recipe.num_frames)")
        return frames

    def _read_stages(self, folder: Path, seconds: float) -> dict[str, Any] | None:
        path = folder / STAGES_FILE
        if not path.exists():
            return None
        where = f"model '{self.name}': the command's {STAGES_FILE}"
        try:
            data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
        except (OSError, ValueError) as exc:
            raise BenchkitError(f"{where} is not valid JSON ({' '.join(str(exc).split())})") from None
        if not isinstance(data, dict):
            raise BenchkitError(f"{where} must be an object of stage seconds, e.g. {{\"denoising_s\": 1.5}}")
        stages: dict[str, Any] = {}
        for key, value in data.items():
            if _seconds(value) or (isinstance(value, list) and all(_number(v) for v in value)):
                stages[key] = value
            else:
                raise BenchkitError(f"{where}: '{key}' must be a number of seconds (0 or more), got {value!r}")
        missing = [k for k in REQUIRED_STAGES if k not in stages]
        if missing:
            raise BenchkitError(f"{where} has no '{missing[0]}': give {', '.join(REQUIRED_STAGES)} (seconds for the "
                                f"whole batch), or write no {STAGES_FILE}")
        steps = stages.get("steps")
        steps = steps if isinstance(steps, int) and steps > 0 else self.recipe.steps
        stages.setdefault("steps", steps)
        stages.setdefault("denoise_step_s", stages["denoising_s"] / steps)
        stages["command_s"] = seconds
        return stages


def _decode_clip(path: Path) -> np.ndarray:
    """A clip file's frames: a .npy array read as data only, an (animated) PNG through Pillow, an mp4 through
    PyAV. Raises OSError/ValueError for a file that is not what its name says."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)  # an object array would need unpickling: refused
    if path.suffix == ".png":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            return np.stack([np.array(frame.convert("RGB"), dtype=np.uint8) for frame in ImageSequence.Iterator(im)])
    try:
        import av
    except ImportError:
        raise ValueError("reading mp4 clips needs PyAV (pip install av); or write .npy or animated .png clips") from None
    try:
        with av.open(str(path)) as container:  # pragma: no cover - optional dependency
            return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    except av.FFmpegError as exc:  # pragma: no cover - optional dependency
        raise ValueError(str(exc)) from None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _seconds(value: Any) -> bool:
    return _number(value) and value >= 0


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _last_line(*streams: bytes | None) -> str:
    """The last non-empty line the program printed (stderr first), for a one-line error."""
    for data in streams:
        lines = [line.strip() for line in (data or b"").decode("utf-8", "replace").splitlines() if line.strip()]
        if lines:
            return lines[-1][:400]
    return "(it printed nothing on stderr)"


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen) -> None:
    """Stop a program and everything in its process group: SIGTERM, then SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
        _signal_group(proc.pid, sig)
        try:
            proc.communicate(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    _signal_group(proc.pid, signal.SIGKILL)  # what ignored SIGTERM after the program itself exited
    for stream in (proc.stdin, proc.stdout, proc.stderr):  # a process outside the group may still hold a pipe
        if stream is not None:
            stream.close()
    proc.wait()
