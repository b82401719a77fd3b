"""CenterPoint's pre-processing on CUDA as one CUDA graph: densify, voxelize and decorate replayed with one launch.

Those stages are some hundred small operations; on a GPU their time is the host launching them, not the
device running them (H200, full-size scene: 1.75 ms wall for 0.86 ms of kernels, 120 launches). Autoware runs
them as a few fused CUDA kernels; a graph gives the same launch cost without writing kernels. The stages
are the functions of :mod:`model_specs.centerpoint.voxelize`, captured with fixed-size buffers
(``voxel_buffers(capacity=max_voxels)``: no host read-back inside), so the pillars are those of the
eager path bit for bit; the voxel count is read once after the replay, as Autoware reads it to size its
encoder's input. (``torch.compile`` fused the decoration alone into a slower kernel after 66 s of compiling.)

A graph is captured per frame shape (the sweeps' point counts) and the last few are kept; the frame's
tensors are copied into the graph's input buffers before each replay, and what a call returns is copied
out of its output buffers, so callers never hold memory the next replay writes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.voxelize import Frame, Voxels, assemble, decorate, voxel_buffers

KEPT_GRAPHS = 2  # frame shapes held at once: one scene's latency rounds need one; memory is ~250 MB each at full size


@dataclass(frozen=True)
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: Frame  # the buffers a replay reads
    decorated: torch.Tensor  # [max_voxels, P, F + 6], zero past the count
    coors: torch.Tensor  # [max_voxels, 3]
    count: torch.Tensor  # the voxel count, on the device


class GraphedPreprocess:
    """Frame → (decorated pillars [M, P, F + 6], their coors [M, 3]) on the frame's CUDA device, as
    ``decorate(voxelize(assemble(frame)))`` gives them. Thread-safe: a replay and its copies run under a lock."""

    def __init__(self, cfg: CenterPointConfig) -> None:
        self.cfg = cfg
        self._graphs: OrderedDict[tuple[int, ...], _Captured] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, frame: Frame) -> tuple[torch.Tensor, torch.Tensor]:
        shape = tuple(raw.shape[0] for raw in frame.raws)
        with self._lock:
            captured = self._graphs.get(shape)
            if captured is None:
                captured = self._capture(frame)
                self._graphs[shape] = captured
                while len(self._graphs) > KEPT_GRAPHS:
                    self._graphs.popitem(last=False)
            self._graphs.move_to_end(shape)
            for buffer, value in zip((*captured.inputs.raws, captured.inputs.motion, captured.inputs.lags),
                                     (*frame.raws, frame.motion, frame.lags)):
                buffer.copy_(value)
            captured.graph.replay()
            count = int(captured.count)  # the one synchronization
            return captured.decorated[:count].clone(), captured.coors[:count].clone()

    def _stages(self, frame: Frame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        features, counts, coors, count = voxel_buffers(assemble(frame, cfg), cfg, capacity=cfg.max_voxels)
        return decorate(Voxels(features, counts, coors), cfg), coors, count

    def _capture(self, frame: Frame) -> _Captured:
        device = frame.motion.device
        inputs = Frame(tuple(raw.clone() for raw in frame.raws), frame.motion.clone(), frame.lags.clone())
        # Warm up on a side stream first, as torch.cuda.graphs asks: library workspaces and the grid's constants
        # are made there, not inside the capture.
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            self._stages(inputs)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            decorated, coors, count = self._stages(inputs)
        return _Captured(graph, inputs, decorated, coors, count)
