"""The live comparison with Autoware's own kernels (``pytest -m autoware``: a CUDA GPU, nvcc and ``$AUTOWARE_ROOT``).

Both sides computed now, on the GPU: the bundle pipeline's voxels and encoder input on CUDA, the y-axis head's
outputs on CUDA, ``decode_autoware`` on those device tensors (and the pipeline's ``AutowareDecoder``, its CUDA
graph, equal to it); Autoware's kernels built from the checkout. The
frames are the recording's (its real scans' points are stored there). The same limits as the recorded test hold,
and the node's outputs now must be those recorded (the recording is still Autoware's).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_specs.centerpoint.autoware import AutowareSettings, node_config
from model_specs.centerpoint.autoware_decode import AutowareDecoder, decode_autoware
from model_specs.centerpoint.autoware_oracle import recording
from model_specs.centerpoint.autoware_oracle.bundle_side import bundle_voxels, y_axis_heads
from model_specs.centerpoint.autoware_oracle.compare import canonical, compare_boxes, compare_voxels
from model_specs.centerpoint.spec import TINY_SPEC
from pytest_awml.options import DEFAULT_SEED
from test_autoware_recorded import CFG, DATA, box_problems, voxel_problems

pytestmark = pytest.mark.autoware


@pytest.fixture(scope="module")
def oracle():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the live Autoware comparison runs on a GPU")
    from model_specs.centerpoint.autoware_oracle.oracle import AutowareOracle

    with AutowareOracle(CFG, AutowareSettings(), "cuda") as built:
        yield built


@pytest.fixture(scope="module")
def frames():
    return recording.load(DATA, TINY_SPEC.name, CFG, TINY_SPEC.make_samples)[1]


def test_bundle_pipeline_on_cuda_is_autoware_s(oracle, frames):
    from model_specs.centerpoint.autoware_oracle.oracle import node_frame

    node, settings, device = node_config(CFG), AutowareSettings(), torch.device("cuda")
    model = TINY_SPEC.build_model(None, DEFAULT_SEED).to(device)
    pipeline_decoder = AutowareDecoder(node, settings)
    found = {}
    for frame, recorded in frames:
        ours, cells, features, coors = bundle_voxels(frame.scene, CFG, device)
        oracle.preprocess(node_frame(frame.scene, node, device))
        theirs = oracle.voxels()
        heads = y_axis_heads(model, features, coors, node)
        decoded = decode_autoware(heads, node, settings)
        graphed = pipeline_decoder(heads)  # the pipeline's: a CUDA-graph replay of the same work
        if not all(np.array_equal(getattr(graphed, f), getattr(decoded, f)) for f in ("boxes", "scores", "labels", "candidate_cells")):
            problems_graphed = ["the CUDA-graph decoder's boxes are not decode_autoware's"]
        else:
            problems_graphed = []
        problems = voxel_problems(compare_voxels(ours, theirs, cells, CFG.grid_size[0]))
        problems += box_problems(compare_boxes(decoded.labels, decoded.scores, decoded.boxes, oracle.decode(heads))) + problems_graphed
        # the node today against the node recorded (same frame, same shuffle offset: the same voxels and boxes)
        now, then = canonical(theirs, CFG.grid_size[0]), canonical(recorded.voxels, CFG.grid_size[0])
        if not (np.array_equal(now.coors, then.coors) and np.array_equal(now.num_points, then.num_points)):
            problems.append("Autoware's voxels are not the recorded ones")
        replay = oracle.decode({k: torch.from_numpy(v).to(device) for k, v in recorded.heads.items()})
        if replay.shape != recorded.boxes.shape or not np.allclose(replay[:, :11], recorded.boxes[:, :11], atol=1e-5):
            problems.append("Autoware's boxes on the recorded heads are not the recorded ones")
        if problems:
            found[frame.name] = problems
    assert not found, f"the bundle pipeline on CUDA differs from Autoware's kernels: {found}"
