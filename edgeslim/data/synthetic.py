"""Seeded generator of the embedded PCB-inspection set, for each ultralytics task (YOLO format).

Why synthetic: no dataset can be downloaded where this runs, yet every later stage (calibration
curation above all) needs the variation a production line shows: very dark to overexposed boards,
motion and defocus blur, components half hidden by cables or fingers, and boards from sparse to
crowded. Each image is drawn from its own RNG stream ``(seed, split, index)``, so one image never
depends on how many others exist, and the same seed gives byte-identical PNG files and labels.
Per-image conditions are written to ``meta/<split>.json`` for the curation stage to stratify on.

Every task is labelled from the same scene (edgeslim/data/tasks.py has the formats): detect boxes;
pose, the parts' corners with their visibility (a cable or finger over a corner hides it); segment,
each part's outline plus a defect class, solder bridges across the pin rows of ICs and connectors;
obb, the parts turned by up to ``max_angle`` degrees. Detect and pose share their images byte for
byte; segment adds the bridges and obb turns the parts, so their images differ.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edgeslim.config import DatasetParams
from edgeslim.data.tasks import HIDDEN, VISIBLE, Part, Point, Task, data_yaml_extras, label_line

SPLITS = ("train", "val", "calib_pool")
DONE_MARKER = ".complete"
JPEG_QUALITY = 92  # close to what line cameras ship; PNG of noisy boards is ~9x larger

Color = tuple[int, int, int]
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (inclusive-exclusive)

MASK_COLORS: tuple[Color, ...] = ((40, 110, 30), (30, 90, 20), (110, 60, 20), (30, 40, 130), (25, 25, 25))
COPPER: Color = (70, 160, 200)
SILK: Color = (235, 235, 235)
SOLDER: Color = (200, 205, 210)
UNPAINTED: Color = (255, 0, 255)  # obb: a part is painted upright on a canvas of this colour, which no painter uses
CIRCLE_VERTICES = 16  # a round part's outline polygon
BRIDGE_VERTICES = (5, 8)  # a solder bridge's irregular outline: this many corners (low inclusive, high exclusive)


@dataclass(frozen=True)
class DatasetInfo:
    """Where a generated dataset lives and what identifies it."""

    root: Path
    data_yaml: Path
    sha256: str
    names: tuple[str, ...]


def _rand_color(rng: np.random.Generator, base: Color, jitter: int) -> Color:
    return tuple(int(np.clip(c + rng.integers(-jitter, jitter + 1), 0, 255)) for c in base)  # type: ignore[return-value]


# --- component painters: each draws one part into box (x0, y0, x1, y1), BGR image -------------


def _draw_resistor(img: np.ndarray, box: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = box
    horizontal = (x1 - x0) >= (y1 - y0)
    lead = max(2, (x1 - x0 if horizontal else y1 - y0) // 6)
    body = _rand_color(rng, (120, 190, 215) if rng.random() < 0.6 else (200, 150, 80), 20)
    metal = (190, 190, 190)
    if horizontal:
        cy = (y0 + y1) // 2
        cv2.line(img, (x0, cy), (x1 - 1, cy), metal, max(1, (y1 - y0) // 5))
        cv2.rectangle(img, (x0 + lead, y0), (x1 - lead - 1, y1 - 1), body, -1)
        span = (x1 - lead) - (x0 + lead)
        for i in range(4):
            bx = x0 + lead + (i + 1) * span // 6
            cv2.line(img, (bx, y0), (bx, y1 - 1), _rand_color(rng, (60, 60, 160), 90), max(1, span // 14))
    else:
        cx = (x0 + x1) // 2
        cv2.line(img, (cx, y0), (cx, y1 - 1), metal, max(1, (x1 - x0) // 5))
        cv2.rectangle(img, (x0, y0 + lead), (x1 - 1, y1 - lead - 1), body, -1)
        span = (y1 - lead) - (y0 + lead)
        for i in range(4):
            by = y0 + lead + (i + 1) * span // 6
            cv2.line(img, (x0, by), (x1 - 1, by), _rand_color(rng, (60, 60, 160), 90), max(1, span // 14))


def _draw_capacitor(img: np.ndarray, box: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = box
    c = ((x0 + x1) // 2, (y0 + y1) // 2)
    r = max(3, min(x1 - x0, y1 - y0) // 2 - 1)
    body = _rand_color(rng, (120, 40, 20) if rng.random() < 0.7 else (20, 20, 20), 25)
    cv2.circle(img, c, r, body, -1)
    cv2.circle(img, c, r, (200, 200, 200), max(1, r // 6))
    start = int(rng.integers(0, 360))
    cv2.ellipse(img, c, (r - max(1, r // 5), r - max(1, r // 5)), 0, start, start + 70, (220, 220, 220), max(1, r // 4))
    cv2.line(img, (c[0] - r // 2, c[1]), (c[0] + r // 2, c[1]), (150, 150, 150), 1)
    cv2.line(img, (c[0], c[1] - r // 2), (c[0], c[1] + r // 2), (150, 150, 150), 1)


def _draw_ic(img: np.ndarray, box: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = box
    horizontal = (x1 - x0) >= (y1 - y0)
    pin = max(2, min(x1 - x0, y1 - y0) // 6)
    pins = int(rng.integers(4, 9))
    metal = _rand_color(rng, (200, 200, 205), 15)
    if horizontal:
        for i in range(pins):
            px = x0 + pin + i * (x1 - x0 - 2 * pin) // max(1, pins - 1)
            cv2.rectangle(img, (px - 1, y0), (px + 1, y1 - 1), metal, -1)
        cv2.rectangle(img, (x0, y0 + pin), (x1 - 1, y1 - pin - 1), _rand_color(rng, (30, 30, 30), 12), -1)
        cv2.circle(img, (x0 + 2 * pin, y0 + 2 * pin), max(1, pin // 2), (110, 110, 110), -1)
    else:
        for i in range(pins):
            py = y0 + pin + i * (y1 - y0 - 2 * pin) // max(1, pins - 1)
            cv2.rectangle(img, (x0, py - 1), (x1 - 1, py + 1), metal, -1)
        cv2.rectangle(img, (x0 + pin, y0), (x1 - pin - 1, y1 - 1), _rand_color(rng, (30, 30, 30), 12), -1)
        cv2.circle(img, (x0 + 2 * pin, y0 + 2 * pin), max(1, pin // 2), (110, 110, 110), -1)


def _draw_led(img: np.ndarray, box: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = box
    cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), SILK, 1)
    c = ((x0 + x1) // 2, (y0 + y1) // 2)
    r = max(2, min(x1 - x0, y1 - y0) // 2 - 2)
    hue = [(40, 40, 230), (40, 220, 60), (30, 220, 240), (230, 120, 30)][int(rng.integers(0, 4))]
    cv2.circle(img, c, r, hue, -1)
    cv2.circle(img, (c[0] - r // 3, c[1] - r // 3), max(1, r // 3), (255, 255, 255), -1)


def _draw_connector(img: np.ndarray, box: Box, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = box
    body = _rand_color(rng, (215, 225, 230) if rng.random() < 0.6 else (40, 40, 40), 15)
    cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), body, -1)
    horizontal = (x1 - x0) >= (y1 - y0)
    long_side, short_side = (x1 - x0, y1 - y0) if horizontal else (y1 - y0, x1 - x0)
    holes = max(2, long_side // max(4, short_side // 2))
    rows = 2 if short_side >= 10 else 1
    for i in range(holes):
        for j in range(rows):
            a = (i + 0.5) * long_side / holes
            b = (j + 0.5) * short_side / rows
            pt = (int(x0 + a), int(y0 + b)) if horizontal else (int(x0 + b), int(y0 + a))
            cv2.circle(img, pt, max(1, short_side // (3 * rows)), (70, 160, 200), -1)


def _rect_outline(box: Box) -> tuple[Point, ...]:
    x0, y0, x1, y1 = box
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def _round_outline(box: Box) -> tuple[Point, ...]:
    """The circle :func:`_draw_capacitor` paints in ``box``, as a polygon."""
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) // 2, (y0 + y1) // 2, max(3, min(x1 - x0, y1 - y0) // 2 - 1)
    turns = np.linspace(0, 2 * math.pi, CIRCLE_VERTICES, endpoint=False)
    return tuple((cx + r * math.cos(t), cy + r * math.sin(t)) for t in turns)


Painter = Callable[[np.ndarray, Box, np.random.Generator], None]

# Painter, aspect ratio range (long/short side) and outline (the segment mask) per class slot; names
# come from params. Parts with pin rows can carry a solder bridge (segment's defect class).
PAINTERS: tuple[tuple[Painter, tuple[float, float], Callable[[Box], tuple[Point, ...]]], ...] = (
    (_draw_resistor, (2.2, 3.2), _rect_outline),
    (_draw_capacitor, (1.0, 1.0), _round_outline),
    (_draw_ic, (1.3, 2.2), _rect_outline),
    (_draw_led, (1.0, 1.15), _rect_outline),
    (_draw_connector, (2.8, 4.5), _rect_outline),
)
PIN_ROWS: tuple[Painter, ...] = (_draw_ic, _draw_connector)


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    mask = MASK_COLORS[int(rng.integers(0, len(MASK_COLORS)))]
    img = np.empty((size, size, 3), np.uint8)
    img[:] = mask
    texture = rng.normal(0, 6, (size // 8 + 1, size // 8 + 1, 1))
    texture = cv2.resize(texture, (size, size), interpolation=cv2.INTER_CUBIC)[..., None]  # type: ignore[assignment]  # cv2 stubs widen the dtype
    img = np.clip(img.astype(np.float32) + texture, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(6, 16))):  # copper traces, Manhattan routed
        pts = [tuple(int(v) for v in rng.integers(0, size, 2))]
        for _ in range(int(rng.integers(1, 4))):
            x, y = pts[-1]
            if rng.random() < 0.5:
                pts.append((int(rng.integers(0, size)), y))
            else:
                pts.append((x, int(rng.integers(0, size))))
        cv2.polylines(img, [np.array(pts, np.int32)], False, _rand_color(rng, COPPER, 20), int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(10, 30))):  # vias and pads
        p = tuple(int(v) for v in rng.integers(0, size, 2))
        if rng.random() < 0.6:
            cv2.circle(img, p, int(rng.integers(2, 4)), (160, 170, 175), -1)
            cv2.circle(img, p, 1, (20, 20, 20), -1)
        else:
            s = int(rng.integers(2, 5))
            cv2.rectangle(img, (p[0] - s, p[1] - s), (p[0] + s, p[1] + s), (150, 190, 210), -1)
    for _ in range(int(rng.integers(2, 7))):  # silkscreen designators
        text = "".join(chr(int(c)) for c in rng.choice([*range(65, 91), *range(48, 58)], int(rng.integers(2, 5))))
        p = (int(rng.integers(0, size - 20)), int(rng.integers(10, size)))
        cv2.putText(img, text, p, cv2.FONT_HERSHEY_PLAIN, float(rng.uniform(0.6, 1.0)), SILK, 1, cv2.LINE_AA)
    return img


def _place(rng: np.random.Generator, size: int, w: int, h: int, taken: list[Box], dense: bool) -> Box | None:
    """Find a spot for a w x h part; dense boards accept some overlap (crowding), sparse ones none."""
    max_iou = 0.25 if dense else 0.0
    for _ in range(40):
        x0 = int(rng.integers(0, size - w))
        y0 = int(rng.integers(0, size - h))
        box = (x0, y0, x0 + w, y0 + h)
        if all(_iou(box, t) <= max_iou for t in taken):
            return box
    return None


def _iou(a: Box, b: Box) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _occlude(img: np.ndarray, boxes: list[Box], rng: np.random.Generator, covered: np.ndarray) -> int:
    """Lay a cable or a fingertip across part of some components, marking ``covered`` where they lie;
    returns how many were touched."""
    touched = 0
    for box in boxes:
        if rng.random() > 0.5:
            continue
        x0, y0, x1, y1 = box
        cx = int(rng.integers(x0, x1))
        cy = int(rng.integers(y0, y1))
        if rng.random() < 0.5:  # cable crossing the part
            angle = rng.uniform(0, math.pi)
            length = img.shape[0]
            p0 = (int(cx - length * math.cos(angle)), int(cy - length * math.sin(angle)))
            p1 = (int(cx + length * math.cos(angle)), int(cy + length * math.sin(angle)))
            thick = max(2, int(min(x1 - x0, y1 - y0) * rng.uniform(0.25, 0.45)))
            cv2.line(img, p0, p1, _rand_color(rng, (60, 60, 60), 40), thick, cv2.LINE_AA)
            cv2.line(covered, p0, p1, 1, thick)
        else:  # fingertip covering a corner
            axes = (max(3, (x1 - x0) // 2), max(3, (y1 - y0) // 2))
            turn = float(rng.uniform(0, 180))
            cv2.ellipse(img, (cx, cy), axes, turn, 0, 360, _rand_color(rng, (120, 150, 205), 20), -1)
            cv2.ellipse(covered, (cx, cy), axes, turn, 0, 360, 1, -1)
        touched += 1
    return touched


def _degrade(img: np.ndarray, rng: np.random.Generator, p: DatasetParams) -> tuple[np.ndarray, dict]:
    """Photometric and optical conditions of the line: gain, blur, sensor noise."""
    lo, hi = p.brightness
    gain = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    blur = "none"
    strength = 0.0
    if rng.random() < p.blur_fraction:
        if rng.random() < 0.5:
            blur = "motion"
            length = int(rng.integers(3, 10))
            kernel = np.zeros((length, length), np.float32)
            kernel[length // 2, :] = 1.0 / length
            rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
            kernel = cv2.warpAffine(kernel, rot, (length, length))  # type: ignore[assignment]  # cv2 stubs widen the dtype
            kernel /= max(kernel.sum(), 1e-6)
            img = cv2.filter2D(img, -1, kernel)
            strength = float(length)
        else:
            blur = "defocus"
            strength = float(rng.uniform(1.0, 2.5))
            img = cv2.GaussianBlur(img, (0, 0), strength)
    out = img.astype(np.float32) * gain + rng.normal(0, p.noise_sigma, img.shape)
    return np.clip(out, 0, 255).astype(np.uint8), {"gain": round(gain, 4), "blur": blur, "blur_strength": round(strength, 3)}


def _turned_extent(w: int, h: int, angle: float) -> tuple[int, int]:
    """Width and height of the upright box around a w x h part turned by ``angle`` degrees."""
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    return math.ceil(w * c + h * s), math.ceil(w * s + h * c)


def _paint_turned(img: np.ndarray, painter: Painter, w: int, h: int, angle: float, box: Box, rng: np.random.Generator) -> tuple[Point, ...]:
    """Paint a w x h part upright on its own canvas, turn it by ``angle`` degrees into the middle of
    ``box`` and lay what the painter drew onto ``img``; return its four turned corners."""
    x0, y0, x1, y1 = box
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = UNPAINTED
    painter(canvas, (0, 0, w, h), rng)
    drawn = np.any(canvas != UNPAINTED, axis=2).astype(np.uint8)
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    turn[:, 2] += np.array([(x1 - x0 - w) / 2, (y1 - y0 - h) / 2])  # centred in box
    size = (x1 - x0, y1 - y0)
    turned = cv2.warpAffine(canvas, turn, size, flags=cv2.INTER_NEAREST)
    mask = cv2.warpAffine(drawn, turn, size, flags=cv2.INTER_NEAREST).astype(bool)
    region = img[y0:y1, x0:x1]
    region[mask] = turned[mask]
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) @ turn[:, :2].T + turn[:, 2] + (x0, y0)
    return tuple((float(x), float(y)) for x, y in corners)


def _solder_bridges(img: np.ndarray, parts: list[Part], rng: np.random.Generator, p: DatasetParams) -> list[Part]:
    """segment's defect: on a share (``defect_fraction``) of the parts with pin rows, an irregular blob
    of solder across the edge their pins leave by, labelled as class ``len(classes)``."""
    bridges = []
    size = img.shape[0]
    for part in parts:
        if PAINTERS[part.cls % len(PAINTERS)][0] not in PIN_ROWS or rng.random() >= p.defect_fraction:
            continue
        x0, y0, x1, y1 = part.box
        along = float(rng.uniform(0.2, 0.8))
        far_side = bool(rng.random() < 0.5)
        if (x1 - x0) >= (y1 - y0):  # pins leave by the long edges
            cx, cy = x0 + along * (x1 - x0), float(y1 if far_side else y0)
        else:
            cx, cy = float(x1 if far_side else x0), y0 + along * (y1 - y0)
        radius = float(rng.uniform(*p.defect_size))
        turns = np.sort(rng.uniform(0, 2 * math.pi, int(rng.integers(*BRIDGE_VERTICES))))
        reach = radius * rng.uniform(0.6, 1.0, len(turns))
        poly = np.clip(np.stack([cx + reach * np.cos(turns), cy + reach * np.sin(turns)], axis=1), 0, size - 1)
        cv2.fillPoly(img, [np.round(poly).astype(np.int32)], _rand_color(rng, SOLDER, 15), cv2.LINE_AA)
        lo, hi = np.floor(poly.min(axis=0)).astype(int), np.ceil(poly.max(axis=0)).astype(int) + 1
        box = (int(lo[0]), int(lo[1]), int(min(hi[0], size)), int(min(hi[1], size)))
        outline = tuple((float(x), float(y)) for x, y in poly)
        bridges.append(Part(len(p.classes), box, outline, ()))
    return bridges


def _with_visibility(part: Part, covered: np.ndarray) -> Part:
    """``part`` with its box's corners as keypoints, each marked hidden where a cable or finger lies over it."""
    size = covered.shape[0]
    seen = tuple((x, y, HIDDEN if covered[min(int(y), size - 1), min(int(x), size - 1)] else VISIBLE) for x, y in _rect_outline(part.box))
    return Part(part.cls, part.box, part.outline, seen)


def render_scene(p: DatasetParams, task: Task, split_index: int, index: int) -> tuple[np.ndarray, list[Part], dict]:
    """Render one board for ``task``: image (BGR), its labelled parts and its condition metadata.

    Detect and pose draw the same numbers from the image's RNG stream in the same order as they
    always have, so their images and boxes stay byte-identical per seed; segment and obb draw more
    (bridges, angles) and so make boards of their own."""
    rng = np.random.default_rng([p.seed, split_index, index])
    size = p.image_size
    img = _background(size, rng)
    dense = bool(rng.random() < p.dense_fraction)
    lo, hi = p.dense_objects if dense else p.sparse_objects
    wanted = int(rng.integers(lo, hi + 1))
    parts: list[Part] = []
    ncls = len(p.classes)
    for _ in range(wanted):
        cls = int(rng.integers(0, ncls))
        painter, (amin, amax), outline = PAINTERS[cls % len(PAINTERS)]
        long_side = int(rng.integers(p.object_size[0], p.object_size[1] + 1))
        short_side = max(6, int(round(long_side / rng.uniform(amin, amax))))
        w, h = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
        angle = float(rng.uniform(-p.max_angle, p.max_angle)) if task == "obb" else 0.0
        box = _place(rng, size, *_turned_extent(w, h, angle), [q.box for q in parts], dense)
        if box is None:
            continue
        if task == "obb":
            shape = _paint_turned(img, painter, w, h, angle, box, rng)
        else:
            painter(img, box, rng)
            shape = outline(box)
        parts.append(Part(cls, box, shape, ()))
    if task == "segment":
        parts += _solder_bridges(img, parts, rng, p)
    covered = np.zeros((size, size), np.uint8)
    components = [q.box for q in parts if q.cls < ncls]
    occluded = _occlude(img, components, rng, covered) if rng.random() < p.occlusion_fraction else 0
    img, cond = _degrade(img, rng, p)
    meta = {"density": "dense" if dense else "sparse", "n_objects": len(parts), "occluded": occluded, **cond}
    return img, [_with_visibility(q, covered) for q in parts], meta


def dataset_sha256(root: Path) -> str:
    """Content hash of images, labels, metadata and data.yaml, independent of where root lives.

    ultralytics writes ``labels/*.cache`` beside the labels on first use; those are derived files
    whose bytes change between runs, so they are left out or the hash would drift.
    """
    digest = hashlib.sha256()
    files = (q for q in root.rglob("*") if q.is_file() and q.name != DONE_MARKER and q.suffix != ".cache")
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def class_names(p: DatasetParams, task: Task) -> tuple[str, ...]:
    """The classes a task's labels use: the components, and for segment the defect class after them."""
    return (*p.classes, p.defect_class) if task == "segment" else tuple(p.classes)


def generate_dataset(p: DatasetParams, out_dir: Path, progress: bool = True, task: Task = "detect") -> DatasetInfo:
    """Write the dataset for ``task`` under ``out_dir`` (idempotent: a completed folder is reused as is)."""
    out_dir = Path(out_dir)
    marker = out_dir / DONE_MARKER
    names = class_names(p, task)
    if marker.exists():
        return DatasetInfo(out_dir, out_dir / "data.yaml", marker.read_text().strip(), names)
    counts = p.splits.model_dump()
    for split_index, split in enumerate(SPLITS):
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
        meta: dict[str, dict] = {}
        for i in tqdm(range(counts[split]), desc=f"dataset {split}", disable=not progress, unit="img"):
            img, parts, cond = render_scene(p, task, split_index, i)
            stem = f"{split}_{i:05d}"
            if not cv2.imwrite(str(out_dir / "images" / split / f"{stem}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                raise OSError(f"could not write image {stem}.jpg under {out_dir}")
            rows = "".join(f"{label_line(part, p.image_size, task)}\n" for part in parts)
            (out_dir / "labels" / split / f"{stem}.txt").write_text(rows)
            meta[f"{stem}.jpg"] = cond
        (out_dir / "meta").mkdir(exist_ok=True)
        (out_dir / "meta" / f"{split}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    listed = "\n".join(f"  {i}: {n}" for i, n in enumerate(names))
    # No 'path:' key: ultralytics then resolves splits next to this file, wherever the folder is moved.
    splits = "train: images/train\nval: images/val\ncalib_pool: images/calib_pool\n"
    (out_dir / "data.yaml").write_text(f"{splits}{data_yaml_extras(task)}names:\n{listed}\n")
    sha = dataset_sha256(out_dir)
    marker.write_text(sha + "\n")
    return DatasetInfo(out_dir, out_dir / "data.yaml", sha, names)
