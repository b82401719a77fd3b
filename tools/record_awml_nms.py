"""Record AWML's own ``--nms`` graph surgery for the CI test that proves ``yolox-tiny-nms`` is AWML's graph.

AWML's ``projects/YOLOX_opt_elan/scripts/deploy_yolox_s_opt.py --nms`` exports tier4/YOLOX with boxes
decoded in the graph and hands the file to ``add_efficientnms_trt`` (``tools/detection2d/deploy_yolox.py``),
which appends the EfficientNMS_TRT node with onnx-graphsurgeon. This tool runs that function, imported from
an AWML checkout (never copied here), on the decoded single-output graph of the tiny YOLOX with its bundled
trained weights, with the thresholds of the deploy script's own argument parser, and records what AWML's
graph holds: the plugin node (op, domain, attributes), the graph's outputs (names, types, shapes), and the
plugin's two inputs (boxes, scores) as ONNX Runtime computes AWML's graph up to the node on one frame.
Needs onnx-graphsurgeon (``pip install -e ".[upstream]"``)::

    python tools/record_awml_nms.py --awml-root /path/to/AWML --out tests/data/upstream

It compares the recording with this project's ``yolox_nms`` export and exits 1 when they differ (the
recording is written anyway, to study the difference).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exporters.onnx_export import export_onnx  # noqa: E402
from exporters.signature import TensorSpec  # noqa: E402
from model_specs.recording import Recording, array_sha256, state_sha256  # noqa: E402
from model_specs.yolox.efficient_nms import DecodedLayout  # noqa: E402
from model_specs.yolox.nms_recorded import NAME, SAMPLE_SEED, awml_node, compare, decoded_outputs, graph_outputs  # noqa: E402
from model_specs.yolox.spec import TINY_NMS_SPEC  # noqa: E402

log = logging.getLogger("record_awml_nms")
DEPLOY_SCRIPT = "projects/YOLOX_opt_elan/scripts/deploy_yolox_s_opt.py"


def awml_deploy(awml_root: Path):
    """AWML's deploy script as a module (it imports ``tools.detection2d.deploy_yolox`` relative to the root)."""
    sys.path.insert(0, str(awml_root))
    spec = importlib.util.spec_from_file_location("awml_deploy_yolox_s_opt", awml_root / DEPLOY_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(awml_root: Path, folder: Path, awml_commit: str | None = None) -> tuple[Recording, list[str]]:
    import onnx
    import onnx.utils
    import onnxruntime

    deploy = awml_deploy(awml_root)
    with mock.patch.object(sys, "argv", ["deploy_yolox_s_opt.py", "epoch.pth", "exp.py", "--nms"]):
        defaults = deploy.parse_args()  # the thresholds a user gets from AWML's README command with --nms
    spec = TINY_NMS_SPEC
    cfg = spec.params["model"]
    model = spec.build_model(None, 0)
    sample = spec.make_samples(1, SAMPLE_SEED)[0]
    images = spec.components[0].make_inputs(model, sample)["images"]
    decoded_path, awml_path = folder / "decoded.onnx", folder / "awml_nms.onnx"
    layout = TensorSpec("output", (1, cfg.anchors, cfg.outputs))
    export_onnx(DecodedLayout(model, cfg), (images,), decoded_path, component="decode_in_inference",
                inputs=spec.components[0].inputs, outputs=(layout,), options=spec.components[0].onnx)
    deploy.add_efficientnms_trt(str(decoded_path), str(awml_path), defaults.max_output_boxes, defaults.iou_threshold,
                                defaults.score_threshold)
    graph = onnx.load(str(awml_path))
    node = awml_node(graph)
    prefix = folder / "awml_prefix.onnx"
    onnx.utils.extract_model(str(awml_path), str(prefix), ["images"], list(node["inputs"]), check_model=False)
    session = onnxruntime.InferenceSession(str(prefix), providers=["CPUExecutionProvider"])
    boxes, scores = session.run(list(node["inputs"]), {"images": images.numpy()})
    if awml_commit is None:
        found = subprocess.run(["git", "-C", str(awml_root), "rev-parse", "HEAD"], capture_output=True, text=True)
        awml_commit = found.stdout.strip() if found.returncode == 0 else "unknown"
    meta = {
        "what": "AWML's add_efficientnms_trt on the decoded yolox-tiny graph: the plugin node, the graph outputs, "
                "and the plugin's inputs as ONNX Runtime computes AWML's graph up to the node",
        "awml_commit": awml_commit,
        "deploy_defaults": {k: getattr(defaults, k) for k in ("max_output_boxes", "iou_threshold", "score_threshold", "batch_size")},
        "node": node,
        "outputs": graph_outputs(graph),
        "opset": next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")),
        "sample_seed": SAMPLE_SEED,
        "images_sha256": array_sha256(images.numpy()),
        "weights_sha256": state_sha256(model.state_dict()),
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                     "onnx_graphsurgeon": __import__("onnx_graphsurgeon").__version__},
    }
    recording = Recording({"boxes": boxes, "scores": scores}, meta)
    ours = decoded_outputs(spec, model, images, folder)
    return recording, compare(recording, ours, spec, folder / "ours_nms.onnx", model, images)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--awml-root", type=Path, required=True, help="an AWML checkout")
    parser.add_argument("--awml-commit", help="the checkout's commit, when --awml-root is an export without .git")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "upstream")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as scratch:
        recording, problems = record(args.awml_root.resolve(), Path(scratch), args.awml_commit)
    recording.save(args.out, NAME)
    log.info("wrote %s/%s.{npz,json}: %s", args.out, NAME, json.dumps(recording.meta["node"]["attributes"]))
    for problem in problems:
        log.error("differs from this project: %s", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
