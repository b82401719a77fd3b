"""Record mmdet3d's own CenterPoint outputs for the CI test that proves the spec is AWML's model.

Needs mmdet3d and mmcv with its compiled ops (see tests/data/mmdet3d/README.md for the one device
call that builds them); writes ``<out>/<name>.npz`` and ``<out>/<name>.json`` per size:

    python tools/record_mmdet3d.py --out tests/data/mmdet3d
    python tools/record_mmdet3d.py --awml-root /path/to/AWML --only-family   # the CenterPoint family (needs mmpretrain)

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
import os
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
    parser.add_argument("--awml-root", type=Path, default=os.environ.get("AWML_ROOT"),
                        help="an AWML checkout: also records the CenterPoint family with AWML's own modules (default: $AWML_ROOT)")
    parser.add_argument("--only-family", action="store_true", help="record the CenterPoint family only (needs --awml-root)")
    parser.add_argument("--only", action="append", help="record only these (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    todo = [] if args.only_family else [(plan, CONFIGS, {}) for plan in PLANS]
    if args.awml_root is not None:
        from model_specs.centerpoint import family_peer

        awml = family_peer.import_awml(args.awml_root)
        todo += [(plan, family_peer.CONFIGS, {"awml": awml}) for plan in family_peer.plans()]
    elif args.only_family:
        parser.error("--only-family needs --awml-root (or $AWML_ROOT): an AWML checkout with projects/CenterPoint and projects/ConvNeXt_PC")
    failures = 0
    for plan, configs, where in todo:
        if args.only and plan.name not in args.only:
            continue
        start = time.perf_counter()
        recording, cfg = record_plan(plan, configs)
        if cfg != plan.spec_config:
            log.error("%s: %s reads as %s, not as the spec's configuration", plan.name, plan.config, cfg)
            failures += 1
        result = compare(recording, cfg)
        if result.problems():
            log.error("%s: this project does not reproduce the recording: %s", plan.name, "; ".join(result.problems()))
            failures += 1
        extra = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": "python tools/record_mmdet3d.py",
                 "comparison_when_recorded": dataclasses.asdict(result), **where}
        Recording(recording.arrays, {**recording.meta, **extra}).save(args.out, plan.name)
        log.info("%s: %d points, %d pillars, %d boxes, %.1f s; against this project: %s", plan.name,
                 len(recording.arrays["points"]), len(recording.arrays["coors"]), result.recorded_boxes,
                 time.perf_counter() - start, json.dumps(dataclasses.asdict(result), default=str))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
