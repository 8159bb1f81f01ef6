"""GenEval's decision rules in pure Python/numpy: which detections count, whether one image
satisfies its prompt's metadata, and how decisions add up to task and overall scores.

GenEval (Ghosh et al., NeurIPS 2023; github.com/djghosh13/geneval, MIT) judges an image by
running an object detector and checking the detections against the prompt's metadata. The
rules below follow, clause by clause, ``evaluation/evaluate_images.py`` ("EI" below) and
``evaluation/summary_scores.py`` ("SS") at commit :data:`GENEVAL_COMMIT`; line numbers are
those files' lines there. The detector and the colour classifier are not part of this module:
callers hand in detections (:class:`Detection`) and a colour callback, so the rules can be
checked against GenEval's own functions on hand-made detections
(``tests/data/geneval/make_reference.py`` records GenEval's decisions, ``tests/test_geneval.py``
compares).

Numbers behave as in GenEval's pinned environment (``environment.yml``: numpy 1.23): mmdet
hands over float32 ``(N, 5)`` arrays ``[x1, y1, x2, y2, score]`` per class, so scores are
compared with the thresholds in float32 (a score of float32(0.3) does not pass ``> 0.3``) and
box centres and sizes are float32; EI's ``compute_iou`` works on numpy float32 scalars, which
numpy 1.x promotes to float64 as soon as a Python number joins in (numpy 2 would stay in
float32). Detections are cast accordingly whatever their input type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

GENEVAL_REPO = "djghosh13/geneval"
GENEVAL_COMMIT = "af4902f24d3ca90ebbb446dd9891a59e0f82725f"

# evaluation/object_names.txt (the COCO classes in mmdet's order; prompts/object_names.txt is identical)
CLASSNAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "computer mouse", "tv remote",
    "computer keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock",
    "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
_CLASS_INDEX = {name: i for i, name in enumerate(CLASSNAMES)}

COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")  # EI l.76
# EI l.113-117: per class, three templates whose {c} is a colour (clip_benchmark fills it in)
COLOR_TEMPLATES: tuple[str, ...] = ("a photo of a {c} {classname}", "a photo of a {c}-colored {classname}",
                                    "a photo of a {c} object")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")  # EI l.153-156
# the six tasks of prompts/evaluation_metadata.jsonl, in its order of first appearance
TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


@dataclass(frozen=True)
class Options:
    """EI's ``--options`` and their defaults (EI l.286-290); the published scores use the defaults."""

    threshold: float = 0.3  # detection score a kept object must exceed
    counting_threshold: float = 0.9  # the same, for prompts tagged "counting"
    max_objects: int = 16  # most objects kept per class, best scores first
    max_overlap: float = 1.0  # a later object overlapping a kept one with IoU >= this is dropped; 1.0: none is
    position_threshold: float = 0.1  # margin, as a fraction of the two boxes' summed sizes, in relative positions
    bgcolor: str = "#999"  # EI l.84: what replaces the pixels outside an object's mask before colour classification


DEFAULT_OPTIONS = Options()


@dataclass
class Detection:
    """One detected object: GenEval class name, score, box ``(x1, y1, x2, y2)`` in pixels, and its
    binary mask (HxW bool) or None when the detector gives none."""

    name: str
    score: float
    box: Sequence[float]
    mask: np.ndarray | None = field(default=None, repr=False)

    def row(self) -> np.ndarray:
        """The detection as mmdet hands it to GenEval: float32 ``[x1, y1, x2, y2, score]``."""
        return np.array([*list(self.box)[:4], self.score], dtype=np.float32)


@dataclass
class Decision:
    correct: bool
    reason: str  # GenEval's explanation, one line per failed clause ("" when correct)
    objects: dict[str, list[Detection]]  # the objects the rules saw, by class, best first


# (objects of one class, that class) -> one colour name per object
ColorClassifier = Callable[[list[Detection], str], list[str]]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def metadata_problem(meta: Any) -> str | None:
    """What makes ``meta`` unusable as GenEval metadata (one phrase), or None when it is usable."""
    if not isinstance(meta, dict):
        return "has no meta"
    tag = meta.get("tag")
    if tag not in TAGS:
        return f"has tag {tag!r}, not one of {', '.join(TAGS)}" if "tag" in meta else "has no 'tag'"
    include = meta.get("include")
    if not isinstance(include, list) or not include:
        return "has no 'include' list of {class, count} clauses"
    for where, clauses in (("include", include), ("exclude", meta.get("exclude", []))):
        if not isinstance(clauses, list):
            return f"has an '{where}' that is not a list"
        for i, clause in enumerate(clauses):
            if not isinstance(clause, dict) or clause.get("class") not in _CLASS_INDEX:
                return f"has {where}[{i}] without a GenEval (COCO) class name"
            if not _is_count(clause.get("count")):
                return f"has {where}[{i}] without a positive integer count"
            if where == "exclude":
                continue
            if "color" in clause and clause["color"] not in COLORS:
                return f"has include[{i}] with colour {clause['color']!r}, not one of {', '.join(COLORS)}"
            if "position" in clause:
                pos = clause["position"]
                if not (isinstance(pos, list) and len(pos) == 2 and pos[0] in RELATIONS
                        and isinstance(pos[1], int) and not isinstance(pos[1], bool) and 0 <= pos[1] < i):
                    return f"has include[{i}] with position {pos!r}, not [relation, index of an earlier clause]"
    return None


def compute_iou(box_a: np.ndarray, box_b: np.ndarray) -> float:
    """EI ``compute_iou`` (l.130-137): pixel-inclusive sides (+1), 0 when the union is empty.

    Sides are float32 differences of the float32 coordinates, then float64 from the +1 on
    (numpy 1.x promotes a float32 scalar meeting a Python int)."""
    def area(x1, y1, x2, y2) -> float:
        return max(float(np.float32(x2) - np.float32(x1)) + 1, 0) * max(float(np.float32(y2) - np.float32(y1)) + 1, 0)

    a, b = box_a.astype(np.float32), box_b.astype(np.float32)
    inter = area(max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    union = area(*a[:4]) + area(*b[:4]) - inter
    return inter / union if union else 0.0


def relative_position(row_a: np.ndarray, row_b: np.ndarray, position_threshold: float) -> set[str]:
    """Where A lies relative to B (EI ``relative_position``, l.140-157).

    Box centres and sizes in float32; each axis' centre offset is shrunk towards 0 by
    ``position_threshold`` x (size of A + size of B) on that axis. If nothing is left (|.| < 1e-3
    on both axes) there is no relation; otherwise the shrunk offset over the length of the
    unshrunk one must pass 0.5 on an axis: x < -0.5 "left of", > 0.5 "right of"; y < -0.5
    "above", > 0.5 "below" (image y grows downwards). A pair may hold two relations."""
    corners = np.stack([row_a[:4], row_b[:4]]).astype(np.float32).reshape(2, 2, 2)  # (box, corner, xy)
    centres = corners.mean(axis=1)
    sizes = np.abs(corners[:, 1, :] - corners[:, 0, :])
    offset = centres[0] - centres[1]
    shrunk = np.maximum(np.abs(offset) - position_threshold * (sizes[0] + sizes[1]), 0) * np.sign(offset)
    if np.all(np.abs(shrunk) < 1e-3):
        return set()
    dx, dy = shrunk / np.linalg.norm(offset)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def select_objects(detections: Iterable[Detection], tag: str, options: Options = DEFAULT_OPTIONS) -> dict[str, list[Detection]]:
    """The objects GenEval's rules see, by class in CLASSNAMES order, best score first (EI l.228-244).

    Per class: keep scores above the threshold (``counting_threshold`` for the counting tag,
    l.230; strictly greater, in float32, l.233), ordered by ``np.argsort(score)[::-1]`` (l.232,
    so among equal scores the later detection comes first), at most ``max_objects`` (l.234);
    then, greedily from the best, drop any object whose IoU with a kept one is at least
    ``max_overlap`` (l.236-242; skipped entirely at the default 1.0). Classes left empty are absent.
    """
    by_class: dict[str, list[Detection]] = {}
    for det in detections:
        if det.name not in _CLASS_INDEX:
            raise ValueError(f"detection class {det.name!r} is not one of GenEval's 80 (COCO) classes")
        by_class.setdefault(det.name, []).append(det)
    threshold = options.counting_threshold if tag == "counting" else options.threshold
    selected: dict[str, list[Detection]] = {}
    for name in sorted(by_class, key=_CLASS_INDEX.__getitem__):
        dets = by_class[name]
        rows = np.stack([d.row() for d in dets])
        order = np.argsort(rows[:, 4])[::-1]
        order = order[rows[order, 4] > threshold][: options.max_objects].tolist()
        kept = []
        while order:
            best = order.pop(0)
            kept.append(dets[best])
            if options.max_overlap != 1:
                order = [i for i in order if compute_iou(rows[best], rows[i]) < options.max_overlap]
        if kept:
            selected[name] = kept
    return selected


def evaluate(objects: dict[str, list[Detection]], meta: dict[str, Any], classify_colors: ColorClassifier,
             options: Options = DEFAULT_OPTIONS) -> tuple[bool, list[str]]:
    """EI ``evaluate`` (l.160-220) on already selected objects: (correct, reasons).

    Every include clause must hold (AND), no exclude clause may (OR):

    - include ``{class, count}``: the ``count`` best objects of the class must exist (l.176-179);
      only they are checked further;
    - with ``color``: the colour callback, called on those objects, must name the colour for
      each of them (l.181-190);
    - with ``position: [relation, k]`` (checked only if the clause still holds, l.191): clause
      k must have held, and every checked object must stand in ``relation`` to every object
      clause k checked (l.192-209);
    - exclude ``{class, count}``: fails when at least ``count`` objects of the class were kept
      (l.215-219), all of them, not only the best ``count``.
    """
    correct = True
    reasons: list[str] = []
    groups: list[list[Detection] | None] = []  # per include clause: its checked objects, None if it failed
    for clause in meta.get("include", []):
        name, count = clause["class"], clause["count"]
        found = objects.get(name, [])[:count]
        ok = True
        if len(found) < count:
            ok = False
            reasons.append(f"expected {name}>={count}, found {len(found)}")
        else:
            if "color" in clause:
                colors = list(classify_colors(found, name))
                hits = colors.count(clause["color"])
                if hits < count:
                    ok = False
                    reasons.append(f"expected {clause['color']} {name}>={count}, found {hits} {clause['color']}; and "
                                   + ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors))
            if "position" in clause and ok:
                relation, target = clause["position"]
                if groups[target] is None:
                    ok = False
                    reasons.append(f"no target for {name} to be {relation}")
                else:
                    for obj in found:  # stops at the first pair in the wrong relation, as EI does
                        for other in groups[target]:
                            actual = relative_position(obj.row(), other.row(), options.position_threshold)
                            if relation not in actual:
                                ok = False
                                reasons.append(f"expected {name} {relation} target, found "
                                               f"{' and '.join(sorted(actual))} target")
                                break
                        if not ok:
                            break
        correct = correct and ok
        groups.append(found if ok else None)
    for clause in meta.get("exclude", []):
        n = len(objects.get(clause["class"], []))
        if n >= clause["count"]:
            correct = False
            reasons.append(f"expected {clause['class']}<{clause['count']}, found {n}")
    return correct, reasons


def decide(meta: dict[str, Any], detections: Iterable[Detection], classify_colors: ColorClassifier,
           options: Options = DEFAULT_OPTIONS) -> Decision:
    """One image's verdict under its prompt's GenEval metadata (EI ``evaluate_image`` after detection)."""
    objects = select_objects(detections, meta["tag"], options)
    correct, reasons = evaluate(objects, meta, classify_colors, options)
    return Decision(bool(correct), "\n".join(reasons), objects)


@dataclass
class Summary:
    """SS's report: image and prompt accuracy, per-task accuracy and the GenEval score."""

    images: int
    prompts: int
    correct_images: float  # fraction of images judged correct (SS l.30)
    correct_prompts: float  # fraction of prompts with at least one correct image (SS l.31)
    tasks: dict[str, tuple[int, int]]  # tag -> (correct, images), in order of first appearance (SS l.40)
    overall: float  # the GenEval score: the unweighted mean of the task accuracies (SS l.41, l.45)

    def accuracy(self, tag: str) -> float:
        correct, total = self.tasks[tag]
        return correct / total


def summarize(items: Iterable[tuple[str, str, bool]]) -> Summary:
    """``(prompt key, tag, correct)`` per image -> :class:`Summary`, as SS computes it.

    SS groups prompts by their metadata JSON, so a prompt key is whatever identifies a
    prompt (benchkit uses the prompt id); an overall score averages tasks, not images, so
    a task with fewer prompts weighs as much as one with more."""
    items = [(str(key), str(tag), bool(ok)) for key, tag, ok in items]
    if not items:
        raise ValueError("no decisions to summarise")
    tasks: dict[str, list[int]] = {}
    prompts: dict[str, bool] = {}
    for key, tag, ok in items:
        task = tasks.setdefault(tag, [0, 0])
        task[0] += ok
        task[1] += 1
        prompts[key] = prompts.get(key, False) or ok
    return Summary(
        images=len(items), prompts=len(prompts),
        correct_images=sum(ok for _, _, ok in items) / len(items),
        correct_prompts=sum(prompts.values()) / len(prompts),
        tasks={tag: (c, n) for tag, (c, n) in tasks.items()},
        overall=float(np.mean([c / n for c, n in tasks.values()])),
    )
