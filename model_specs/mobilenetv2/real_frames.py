"""Real camera frames for ``--awml-data`` on the traffic-light classifiers: AWML's own annotation file.

The path is the JSON AWML's ``tools/classification2d/create_data_t4dataset.py`` writes (``tlr_infos_test.json``:
``metainfo.classes`` and a ``data_list`` of ``{"img_path", "instances": [{"bbox": [x1, y1, x2, y2], "bbox_label"}]}``),
or a folder holding one such file. Each entry is one frame, its instances the lights that ``CropROI`` cuts out, as
AWML's ``TLRClassificationDataset`` splits them; ``img_path`` is relative to the JSON's folder unless absolute, or to
``--awml-data-option image_root=DIR``. Images are read as AWML's ``LoadImageFromFile`` keeps them (3-channel BGR,
uint8) with Pillow: PNG decodes to the same pixels as OpenCV; a JPEG may differ by a grey level where the two libraries'
decoders do, which moves both sides of every comparison alike. The classes of the file must be the spec's (in order):
a file of the other classifier's classes is refused naming both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from model_specs.image_files import read_bgr
from model_specs.mobilenetv2.config import ClassifierConfig
from model_specs.mobilenetv2.data import TrafficLightFrame
from model_specs.scan_files import one_file
from pytest_awml.errors import DataError

log = logging.getLogger(__name__)

OPTIONS = {"image_root": "folder the annotation file's img_path values are relative to (default: the file's own folder)"}
"""The ``--awml-data-option`` keys :func:`load` reads, and what each means."""


def _annotations(path: Path) -> Path:
    return one_file(path, ".json", "the annotation file (AWML's tlr_infos_<split>.json)")


def _read_json(path: Path) -> dict:
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a JSON annotation file ({exc})") from None
    if not isinstance(info, dict) or not isinstance(info.get("data_list"), list):
        raise DataError(f"{path}: no data_list: expected AWML's classification info ({{'metainfo': {{'classes': [...]}}, 'data_list': [...]}})")
    return info


def _instances(where: str, entry: dict, shape: tuple[int, ...], classes: int) -> tuple[np.ndarray, np.ndarray]:
    boxes, labels = [], []
    for i, instance in enumerate(entry.get("instances", [])):
        try:
            box = np.asarray(instance["bbox"], np.float32).reshape(4)
            label = int(instance["bbox_label"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: instance {i} needs bbox [x1, y1, x2, y2] and an integer bbox_label ({exc!r})") from None
        x1, y1 = max(0, int(box[0])), max(0, int(box[1]))  # CropROI's integer corners, clipped to the image
        x2, y2 = min(shape[1], int(box[2])), min(shape[0], int(box[3]))
        if x2 <= x1 or y2 <= y1:
            raise DataError(f"{where}: instance {i}'s bbox {box.tolist()} holds no pixel of the {shape[1]} x {shape[0]} image")
        if not 0 <= label < classes:
            raise DataError(f"{where}: instance {i}'s bbox_label {label} is not one of the spec's {classes} classes")
        boxes.append(box)
        labels.append(label)
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)


def load(path: Path, options: Mapping[str, str], cfg: ClassifierConfig) -> list[TrafficLightFrame]:
    """One frame per ``data_list`` entry with at least one instance, in the file's order."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise DataError(f"data option(s) {', '.join(unknown)} unknown: the traffic-light reader knows "
                        + "; ".join(f"{key} ({meaning})" for key, meaning in OPTIONS.items()))
    file = _annotations(Path(path))
    info = _read_json(file)
    classes = tuple((info.get("metainfo") or {}).get("classes") or cfg.classes)
    if classes != cfg.classes:
        raise DataError(f"{file}: its classes {list(classes)} are not the spec's {list(cfg.classes)}: use the spec of this classifier "
                        "(mobilenetv2-car or mobilenetv2-pedestrian), or --awml-config with the training config of these classes")
    root = Path(options["image_root"]) if "image_root" in options else file.parent
    frames, empty = [], 0
    for index, entry in enumerate(info["data_list"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("img_path"), str):
            raise DataError(f"{file}: data_list[{index}] has no img_path")
        image_path = root / entry["img_path"]
        if not image_path.is_file():
            raise DataError(f"{file}: data_list[{index}]'s image {image_path} does not exist (pass --awml-data-option image_root=DIR)")
        image = read_bgr(image_path)
        boxes, labels = _instances(f"{file}: data_list[{index}] ({entry['img_path']})", entry, image.shape, len(cfg.classes))
        if not len(boxes):
            empty += 1
            continue
        frames.append(TrafficLightFrame(image, boxes, labels, index))
    if not frames:
        raise DataError(f"{file}: no entry of its data_list has an instance (a light's bbox) to classify")
    log.info("%s: %d frame(s), %d light(s)%s", file, len(frames), sum(len(f.labels) for f in frames),
             f"; {empty} frame(s) without lights skipped" if empty else "")
    return frames


def loader(cfg: ClassifierConfig):
    """:func:`load` for a spec whose model is ``cfg`` (a spec's ``load_data``)."""
    def load_data(path: Path, options: Mapping[str, str]) -> list[TrafficLightFrame]:
        return load(path, options, cfg)

    return load_data
