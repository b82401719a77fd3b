"""Record mmdet3d's own CenterPoint outputs for the CI test that proves the spec is AWML's model.

Needs mmdet3d and mmcv with its compiled ops (see tests/data/mmdet3d/README.md for the one device
call that builds them); writes ``<out>/<name>.npz`` and ``<out>/<name>.json`` per size:

    python tools/record_mmdet3d.py --out tests/data/mmdet3d

Each recording is built from a training config file through ``--awml-config``'s reader, run on a
seeded synthetic scan densified with one past sweep, and checked against this project's model
before it is written (a recording the project cannot reproduce is reported, and written anyway so
that the difference can be studied).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_specs.centerpoint.mmdet3d_peer import PLANS, Recording, compare, record_plan  # noqa: E402

log = logging.getLogger("record_mmdet3d")
CONFIGS = ROOT / "tests" / "data" / "configs" / "awml"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "mmdet3d")
    parser.add_argument("--only", choices=[plan.name for plan in PLANS], action="append")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for plan in PLANS:
        if args.only and plan.name not in args.only:
            continue
        start = time.perf_counter()
        recording, cfg = record_plan(plan, CONFIGS)
        if cfg != plan.spec_config:
            log.error("%s: %s reads as %s, not as the spec's configuration", plan.name, plan.config, cfg)
            failures += 1
        result = compare(recording, cfg)
        extra = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": "python tools/record_mmdet3d.py",
                 "comparison_when_recorded": dataclasses.asdict(result)}
        Recording(recording.arrays, {**recording.meta, **extra}).save(args.out, plan.name)
        log.info("%s: %d points, %d pillars, %d boxes, %.1f s; against this project: %s", plan.name,
                 len(recording.arrays["points"]), len(recording.arrays["coors"]), result.recorded_boxes,
                 time.perf_counter() - start, json.dumps(dataclasses.asdict(result), default=str))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
