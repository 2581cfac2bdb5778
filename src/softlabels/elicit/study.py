"""A study file (YAML, checked against `study.schema.yaml`) -> the stimuli a participant is shown.

Two tasks, as the thesis ran them:

- `soft_label` (thesis §3.2, Appendix A Fig. A.1 and A.3): one image per trial; the most probable class with a
  probability 0-100, optionally a second class with a probability, and the classes that are definitely not in
  the image. A stimulus is one image; CIFAR-10 images are shown up-sampled with Lanczos (`display_px`, 160 in
  thesis §3.2.1).
- `mixing` (thesis §4.2.1, Fig. A.2): the image λ·x1 + (1−λ)·x2, mixed in pixel space and rounded (halves
  up) to uint8 as `softlabels.data.hmix.mix_images` does, with the two class names; the participant gives the
  share of each class and a confidence. One stimulus per (pair, λ); its name follows the H-Mix release:
  `mixed_{λ}_{Class1}_{id1}_{Class2}_{id2}.png`.

Relative paths in a study file are taken from the current directory, like every other `softlabels` path.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml
from PIL import Image

from softlabels import CLASSES
from softlabels.data.cifar10 import load_cifar10_test, read_test_batch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_CIFAR10_SOURCE = "results/data/cifar10_test.npz"
#: Values of the optional keys (documented in study.schema.yaml).
DEFAULTS: dict[str, Any] = {
    "repeats": 2,
    "attention_tolerance": 25,
    "batch_timeout_min": 60,
    "seed": 0,
    "display_px": 160,
    "framing": "third_person",
    "crowd_size": 100,
    "instructions": "",
    "consent": "",
    "participant_param": "PROLIFIC_PID",
    "completion": {},
    "access": {},
    "limits": {},
}
#: Values of the optional keys inside `access` and `limits`.
ACCESS_DEFAULTS = {"mode": "per_participant", "sig_param": "sig"}
LIMIT_DEFAULTS = {"open_batches_per_address": 3, "batches_per_address_per_hour": 20, "min_answer_ms": 1000}


class StudyError(ValueError):
    """A bad study file; the message names the file and the key."""


@dataclass
class Stimulus:
    """One thing shown on a trial. `name` is what the export calls it (a CIFAR-10 index, `class/file` of a
    folder study, or the mixed-image name); `image` the image id (soft_label) or None (mixing)."""

    name: str
    image: int | str | None
    true_class: str | None
    mix: dict | None = None  # lambda_f, class1, image1, class2, image2


@dataclass
class Study:
    path: Path
    spec: dict
    classes: tuple[str, ...]
    stimuli: list[Stimulus]
    _pixels: dict = field(default_factory=dict, repr=False)  # image id -> uint8 [H, W, 3]
    _png: dict = field(default_factory=dict, repr=False)  # stimulus index -> PNG bytes

    @property
    def task(self) -> str:
        return self.spec["task"]

    def __getitem__(self, key: str):
        return self.spec[key]

    def pixels(self, stimulus: Stimulus) -> np.ndarray:
        if stimulus.mix is None:
            return self._pixels[stimulus.image]
        m = stimulus.mix
        x1 = self._pixels[m["image1"]].astype(np.float64)
        x2 = self._pixels[m["image2"]].astype(np.float64)  # the same size: `_mixed_stimuli` checks every pair
        lam = m["lambda_f"]
        return np.clip(np.floor(lam * x1 + (1.0 - lam) * x2 + 0.5), 0, 255).astype(np.uint8)  # halves up, as H-Mix

    def png(self, index: int) -> bytes:
        """The stimulus as a PNG of display_px × display_px (Lanczos), made once per stimulus."""
        if index not in self._png:
            size = self.spec["display_px"]
            image = Image.fromarray(self.pixels(self.stimuli[index]))
            if image.size != (size, size):
                image = image.resize((size, size), Image.LANCZOS)
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            self._png[index] = buf.getvalue()
        return self._png[index]

    def public(self) -> dict:
        """What the participant page may see: no image names, classes of images or mixing factors."""
        keys = ("title", "task", "framing", "crowd_size", "instructions", "consent", "participant_param", "display_px")
        return {k: self.spec[k] for k in keys} | {"classes": list(self.classes), "sig_param": self.spec["access"]["sig_param"]}


# ------------------------------------------------------------------------------------------------ loading
def schema() -> dict:
    return yaml.safe_load(resources.files("softlabels.elicit").joinpath("study.schema.yaml").read_text())


def _key_of(error) -> str:
    parts = []
    for p in error.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else (f".{p}" if parts else str(p)))
    return "".join(parts) or "(top level)"


def validate_spec(spec: Any, path: Path) -> dict:
    if not isinstance(spec, dict):
        raise StudyError(f"{path}: a study file is a YAML mapping (title, task, images, ...)")
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(spec), key=lambda e: (len(list(e.absolute_path)), str(e.message)))
    if errors:
        lines = [f"key '{_key_of(e)}': {e.message}" for e in errors[:5]]
        raise StudyError(f"{path}: invalid study file:\n  " + "\n  ".join(lines))
    full = {**DEFAULTS, **spec}
    full["access"] = {**ACCESS_DEFAULTS, **full["access"]}
    full["limits"] = {**LIMIT_DEFAULTS, **full["limits"]}
    if full["task"] == "mixing" and "mixing" not in spec:
        raise StudyError(f"{path}: key 'mixing': the mixing task needs 'mixing: {{pairs: ..., lambdas: ...}}'")
    if full["task"] == "soft_label" and "mixing" in spec:
        raise StudyError(f"{path}: key 'mixing': only the mixing task takes pairs and lambdas")
    if full["access"]["sig_param"] == full["participant_param"]:
        raise StudyError(f"{path}: key 'access.sig_param': must differ from participant_param ('{full['participant_param']}')")
    if full["repeats"] * 2 > full["trials_per_participant"]:
        raise StudyError(
            f"{path}: key 'repeats': {full['repeats']} repeats need at least {2 * full['repeats']} "
            f"trials_per_participant, got {full['trials_per_participant']}"
        )
    return full


def load_study(path: str | Path) -> Study:
    """Read, validate and resolve a study file (images loaded, stimuli listed). Raises StudyError."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise StudyError(f"{path}: cannot read the study file ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise StudyError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    spec = validate_spec(raw, path)
    if "cifar10" in spec["images"]:
        classes, pixels, labels = _cifar10_images(spec["images"]["cifar10"], path)
    else:
        classes, pixels, labels = _folder_images(spec["images"]["folder"], path)
    if spec["task"] == "soft_label":
        stimuli = [Stimulus(str(i), i, labels[i]) for i in pixels]
    else:
        stimuli = _mixed_stimuli(spec["mixing"], labels, pixels, path)
    distinct = spec["trials_per_participant"] - spec["repeats"]
    if distinct > len(stimuli):
        raise StudyError(
            f"{path}: key 'trials_per_participant': {spec['trials_per_participant']} trials with {spec['repeats']} "
            f"repeats need {distinct} distinct images, the study has {len(stimuli)}"
        )
    return Study(path=path, spec=spec, classes=classes, stimuli=stimuli, _pixels=pixels)


def _cifar10_images(block: dict, path: Path):
    source = Path(block.get("source", DEFAULT_CIFAR10_SOURCE))
    if not source.exists():
        raise StudyError(
            f"{path}: key 'images.cifar10.source': {source} not found (build it with `snakemake "
            f"results/data/cifar10_test.npz`, or name the cifar-10-python.tar.gz archive)"
        )
    try:
        images, labels = load_cifar10_test(source) if source.suffix == ".npz" else read_test_batch(source)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
        raise StudyError(f"{path}: key 'images.cifar10.source': cannot read {source}: {exc}") from None
    indices = [int(i) for i in block["indices"]]
    bad = [i for i in indices if i >= len(images)]
    if bad:
        raise StudyError(f"{path}: key 'images.cifar10.indices': unknown image(s) {bad[:10]} ({source} has {len(images)})")
    pixels = {i: np.asarray(images[i], dtype=np.uint8) for i in indices}
    return CLASSES, pixels, {i: CLASSES[int(labels[i])] for i in indices}


def _folder_images(block: dict, path: Path):
    root = Path(block["path"])
    if not root.is_dir():
        raise StudyError(f"{path}: key 'images.folder.path': {root} is not a folder")
    classes = tuple(block["classes"])
    pixels, labels = {}, {}
    for name in sorted(p.name for p in root.iterdir() if p.is_dir()):
        if name not in classes:
            raise StudyError(f"{path}: key 'images.folder.classes': sub-folder '{name}' of {root} is not a listed class")
        for file in sorted((root / name).iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            key = f"{name}/{file.name}"
            try:
                with Image.open(file) as im:
                    pixels[key] = np.asarray(im.convert("RGB"), dtype=np.uint8)
            except OSError as exc:
                raise StudyError(f"{path}: image {file} cannot be read ({exc})") from None
            labels[key] = name
    if not pixels:
        raise StudyError(f"{path}: key 'images.folder.path': no .png/.jpg images under {root}/<class>/")
    return classes, pixels, labels


def _mixed_stimuli(block: dict, labels: dict, pixels: dict, path: Path) -> list[Stimulus]:
    """Every pair at every λ. A pair must name two known images of different classes and of the same size (pixels
    are mixed one to one)."""
    stimuli = []
    for p, pair in enumerate(block["pairs"]):
        for side, image in enumerate(pair):
            if image not in labels:
                raise StudyError(f"{path}: key 'mixing.pairs[{p}][{side}]': unknown image {image!r} (not under 'images')")
        a, b = pair
        if labels[a] == labels[b]:
            raise StudyError(f"{path}: key 'mixing.pairs[{p}]': both images are '{labels[a]}'; a pair mixes two classes")
        if pixels[a].shape != pixels[b].shape:
            size = lambda im: "{1}×{0} px".format(*pixels[im].shape)  # noqa: E731
            raise StudyError(f"{path}: key 'mixing.pairs[{p}]': images {a!r} ({size(a)}) and {b!r} ({size(b)}) differ "
                             "in size; a pair mixes two images of the same size")  # fmt: skip
        for lam in block["lambdas"]:
            tag = lambda im: str(im).rsplit("/", 1)[-1].rsplit(".", 1)[0]  # noqa: E731
            name = f"mixed_{lam:g}_{labels[a].capitalize()}_{tag(a)}_{labels[b].capitalize()}_{tag(b)}.png"
            mix = {"lambda_f": float(lam), "class1": labels[a], "image1": a, "class2": labels[b], "image2": b}
            stimuli.append(Stimulus(name, None, None, mix))
    return stimuli
