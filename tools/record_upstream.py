"""Record mmdet's YOLOX (with AWML's ELAN backbone and neck), mmpretrain's calibration classifier (with
AWML's transform) and mmpretrain's MobileNetV2 traffic-light classifiers (with AWML's CropROI and mmcv's
transforms) and AWML's FRNet on mmdet3d (with its RangeInterpolation and FrustumRangePreprocessor) for the CI test that
proves the ``yolox``, ``calibration``, ``mobilenetv2-*``, ``frnet`` and ``streampetr`` specs are AWML's models.

Needs mmdet, mmpretrain, mmengine, mmcv (no compiled op is used) and OpenCV, and an AWML checkout (its
``projects/YOLOX_opt_elan`` and ``autoware_ml`` packages; only imported, never copied here); writes
``<out>/<name>.npz`` and ``<out>/<name>.json`` per model and size (see tests/data/upstream/README.md):

    python tools/record_upstream.py --awml-root /path/to/AWML --out tests/data/upstream

Each recording is built from a training config file through ``--awml-config``'s reader and checked
against this project's model before it is written (a recording the project cannot reproduce is
reported, and written anyway so that the difference can be studied).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_specs.calibration import upstream as calibration  # noqa: E402
from model_specs.frnet import upstream as frnet  # noqa: E402
from model_specs.mobilenetv2 import upstream as mobilenetv2  # noqa: E402
from model_specs.recording import Recording  # noqa: E402
from model_specs.streampetr import upstream as streampetr  # noqa: E402
from model_specs.yolox import upstream as yolox  # noqa: E402

log = logging.getLogger("record_upstream")
CONFIGS = ROOT / "tests" / "data" / "configs" / "awml"
PEERS = {plan.name: (module, plan) for module in (yolox, calibration, mobilenetv2, frnet, streampetr) for plan in module.PLANS}
# what of an AWML checkout each peer module imports
PROJECTS = {yolox: ("projects/YOLOX_opt_elan", "autoware_ml"), calibration: ("autoware_ml",), mobilenetv2: (mobilenetv2.PROJECT,),
            frnet: (frnet.PROJECT,), streampetr: (streampetr.PROJECT,)}


def environment(awml_root: Path, awml_commit: str | None) -> dict:
    """Where a recording was made: the AWML sources and what of the OpenMMLab stack was real."""
    import subprocess

    import torchvision
    from mmcv.ops import nms

    if awml_commit is None:
        found = subprocess.run(["git", "-C", str(awml_root), "rev-parse", "HEAD"], capture_output=True, text=True)
        awml_commit = found.stdout.strip() if found.returncode == 0 else "unknown"
    try:
        nms(torch.zeros((1, 4)), torch.zeros(1), 0.5)
        ops = "compiled"
    except NotImplementedError:
        ops = "not compiled (no compiled op is used by these models; mmcv's nms was not run)"
    return {"awml_commit": awml_commit, "mmcv_ops": ops, "torchvision": torchvision.__version__,
            "note": "torchvision is imported by mmpretrain at import time only; ResNet and ImageClassifier never call it"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "upstream")
    parser.add_argument("--awml-root", type=Path, default=os.environ.get("AWML_ROOT"),
                        help="an AWML checkout (default: $AWML_ROOT)")
    parser.add_argument("--awml-commit", help="the AWML commit the checkout holds (default: git rev-parse HEAD in it)")
    parser.add_argument("--only", choices=sorted(PEERS), action="append")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    chosen = [name for name in PEERS if not args.only or name in args.only]
    needed = sorted({folder for name in chosen for folder in PROJECTS[PEERS[name][0]]})
    if args.awml_root is None or not all((args.awml_root / folder).is_dir() for folder in needed):
        parser.error(f"--awml-root (or $AWML_ROOT) must name an AWML checkout with {', '.join(needed)}")
    sys.path.insert(0, str(args.awml_root.resolve()))
    args.out.mkdir(parents=True, exist_ok=True)
    where = environment(args.awml_root, args.awml_commit)
    failures = 0
    for name in chosen:
        module, plan = PEERS[name]
        start = time.perf_counter()
        recording, cfg = module.record_plan(plan, CONFIGS)
        if cfg != plan.spec_config:
            log.error("%s: %s reads as %s, not as the spec's configuration", name, plan.config, cfg)
            failures += 1
        result = module.compare(recording, cfg)
        command = shlex.join(["python", "tools/record_upstream.py", *(sys.argv[1:] if argv is None else argv)])
        extra = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command, "environment": where,
                 "comparison_when_recorded": dataclasses.asdict(result), "problems_when_recorded": result.problems()}
        Recording(recording.arrays, {**recording.meta, **extra}).save(args.out, name)
        failures += bool(result.problems())
        log.info("%s: %.1f s; against this project: %s", name, time.perf_counter() - start, json.dumps(dataclasses.asdict(result), default=str))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
