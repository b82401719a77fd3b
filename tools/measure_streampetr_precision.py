"""Measure what reduced precision does to StreamPETR: every output of every section on the reference's memory, and
the memory over a sequence on its own (the figures behind ``model_specs/streampetr/spec.py``'s fp16/tf32 bounds).

    python tools/measure_streampetr_precision.py --spec streampetr-tiny --mode fp16 --seeds 0,1,2,3,4 --frames 4
    python tools/measure_streampetr_precision.py --spec streampetr --mode tf32 --device cuda --out figures.json

For each output: the largest error over the seeds and frames, the atol it needs at the spec's rtol (the figure the
spec's comment quotes), the reference's largest magnitude, and whether the spec's bound at that precision holds.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from model_specs.streampetr.precision import MODES, rollouts
from model_specs.streampetr.spec import SPEC, TINY_SPEC
from pytest_awml.reorder import realign
from pytest_awml.sequence import FRAME, SEQUENCE

SPECS = {s.name: s for s in (SPEC, TINY_SPEC)}
RTOL = 1e-2  # the rtol of the spec's fp16/tf32 bounds: the atol each output needs is quoted at it

log = logging.getLogger("measure_streampetr_precision")


def measure(spec_name: str, mode: str, device: str, seeds: list[int], frames: int) -> dict:
    spec = SPECS[spec_name]
    sequence = spec.sequence
    assert sequence is not None
    torch.manual_seed(0)  # the seeded model's attention projections still draw from torch's global generator
    model = spec.build_model(None, 0)
    found: dict[str, dict] = {}
    for seed in seeds:
        start = time.perf_counter()
        made = sequence.make_frames(model, frames, seed)
        reference, forced, free = rollouts(spec, model, made, mode, device)
        log.info("%s %s seed %d: %d frames in %.1f s", spec_name, mode, seed, frames, time.perf_counter() - start)
        for gate, side in ((FRAME, forced), (SEQUENCE, free)):
            for ref, test in zip(reference, side, strict=True):
                for component in sequence.order:
                    carried = {f.output for f in sequence.carries if f.source == component}
                    for output in spec.component(component).output_names:
                        if gate == SEQUENCE and output not in carried:
                            continue
                        bound = (spec.component(component).tolerance(mode, output) if gate == FRAME
                                 else sequence.drift_tolerance(mode, output))
                        moved = test[component][output]
                        if bound is not None and bound.max_reordered_rows is not None:  # rows matched across top-k swaps first
                            realigned = realign(ref[component][output], moved, bound)
                            moved = realigned.test
                            row_moves = found.setdefault(f"{gate}/{component}/{output} rows moved", {"max_share": 0.0})
                            row_moves["max_share"] = max(row_moves["max_share"], realigned.moved / realigned.rows)
                        r, t = ref[component][output].astype(np.float64), moved.astype(np.float64)
                        diff = np.abs(t - r)
                        row = found.setdefault(f"{gate}/{component}/{output}", {"max_abs": 0.0, "atol_needed": 0.0, "ref_max_abs": 0.0,
                                                                                 "bound": None, "holds": True})
                        row["max_abs"] = max(row["max_abs"], float(diff.max()))
                        row["atol_needed"] = max(row["atol_needed"], float((diff - RTOL * np.abs(r)).max()))
                        row["ref_max_abs"] = max(row["ref_max_abs"], float(np.abs(r).max()))
                        if bound is not None:
                            row["bound"] = {"atol": bound.atol, "rtol": bound.rtol}
                            row["holds"] = row["holds"] and bool((diff <= bound.atol + bound.rtol * np.abs(r)).all())
    return {"spec": spec_name, "mode": mode, "device": device, "seeds": seeds, "frames": frames, "rtol": RTOL,
            "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if device == "cuda" else None, "outputs": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", choices=sorted(SPECS), default=TINY_SPEC.name)
    parser.add_argument("--mode", choices=MODES, default="fp16")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seeds", default="0", help="comma-separated sequence seeds")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    figures = measure(args.spec, args.mode, args.device, [int(s) for s in args.seeds.split(",")], args.frames)
    for name, row in figures["outputs"].items():
        if "max_share" in row:
            log.info("%-58s %.3f of the rows", name, row["max_share"])
            continue
        log.info("%-58s max_abs %9.3g  atol@rtol%g %9.3g  ref|max| %9.3g  bound %s %s", name, row["max_abs"], RTOL,
                 row["atol_needed"], row["ref_max_abs"], row["bound"], "holds" if row["holds"] else "EXCEEDED")
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
