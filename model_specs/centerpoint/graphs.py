"""CenterPoint's pre-processing on CUDA as one CUDA graph: densify, voxelize and decorate replayed with one launch.

Those stages are some hundred small operations; on a GPU their time is the host launching them, not the
device running them (H200, full-size scene: 1.75 ms wall for 0.86 ms of kernels, 120 launches). Autoware runs
them as a few fused CUDA kernels; a graph gives the same launch cost without writing kernels. The stages
are the functions of :mod:`model_specs.centerpoint.voxelize`, captured with fixed-size buffers
(``voxel_buffers(capacity=...)``: no host read-back inside), so the pillars are those of the eager path bit
for bit; the voxel count comes back behind the replay, read once the caller has its boxes (Autoware reads it
right after its kernels, to size its encoder's input).
(``torch.compile`` fused the decoration alone into a slower kernel after 66 s of compiling.)

A graph is captured per frame shape: each sweep padded to a multiple of ``POINTS_STEP`` points with NaN
rows, which the voxelizer drops like any point out of range (the pillars and their order are those of the
unpadded cloud), so that a stream's frames, whose point counts differ, replay the same few graphs. It has
room for the voxels the first such frame had plus a margin, and the last few graphs are kept. The frame's
tensors are copied into the graph's input buffers before each replay, in two copies whatever the sweep count
(the sweeps and their NaN padding as one concatenation).

Nothing waits for the replay: what a call yields are the graph's own buffers at their full capacity (rows past
the voxel count are padding: zero features, ``PADDING`` coors, which scatter leaves out), so the host queues the
encoder, the scatter and the networks behind the graph while the device runs it. The count comes to the host
behind the graph's work (one small copy) and is read once the caller has waited for its own later work (the
boxes' copy): a frame with more voxels than its graph holds is seen there, its graph dropped, and the caller
runs the frame again, when it is captured with room for this frame. The buffers are valid inside the ``with``
block, which holds the lock a replay needs. Capture and replay run with the frame's device current (torch
captures on the current device's stream).

The capacity's headroom is for a stream's frames to come, and an encoder given every row would spend it on padding
(full-size scene: 51 200 rows for 40 672 voxels). A replay also says how many rows an encoder needs for a frame like
the last one its graph replayed (:attr:`Replayed.rows`: that frame's count and a small margin); a frame with more
voxels than that is seen with the count, and its caller runs it again (the next replay's rows follow the count).
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch

from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.voxelize import Frame, Voxels, assemble, channel_starts, decorate, grid_constants, scatter_index, voxel_buffers

KEPT_GRAPHS = 2  # frame shapes held at once: one scene's latency rounds need one; ~150-350 MB each at full size
HEADROOM = 1.25  # room for more voxels than the frame a graph was captured for (a stream's next frames)
# The encoder's rows past the last replay's voxel count: the consecutive sweeps of the scenes here differ by < 1 %
ROWS_HEADROOM = 1.05
ROWS_STEP = 1024  # capacities are multiples of this
POINTS_STEP = 8192  # sweeps are padded to a multiple of this (a 140 000-point sweep: at most 6 % more to sort)


@dataclass(frozen=True)
class _Captured:
    graph: torch.cuda.CUDAGraph
    points: torch.Tensor  # [sum of the padded sweep sizes, 4]: every sweep's buffer, one after the other
    inputs: Frame  # the buffers a replay reads: views of ``points``, and the moves
    nans: torch.Tensor  # [POINTS_STEP, 4] NaN rows, the padding each sweep's buffer ends with
    capacity: int  # voxel rows the graph's buffers hold
    rows: int  # the rows an encoder needs for a frame like the last one replayed (its count with ROWS_HEADROOM)
    decorated: torch.Tensor  # [capacity, P, F + 6], zero past the count
    padded: torch.Tensor | None  # with ``pad_to``: [pad_to, P, F + 6], ``decorated`` its first rows, zero after them
    coors: torch.Tensor  # [capacity, 3], PADDING past the count
    index: torch.Tensor  # [capacity, C]: where each row's pillar goes in the canvas (scatter_index)
    count: torch.Tensor  # the voxel count, on the device
    counted: torch.Tensor  # its page-locked host copy, written behind each replay
    copied: torch.cuda.Event  # recorded after that copy
    constants: object  # the constant tensors the graph reads (grid, channel starts): held here, so no cache eviction frees them


@dataclass(frozen=True)
class Replayed:
    """One replay's buffers, at the graph's capacity: ``features`` [capacity, P, F + 6] (``decorate(voxelize(...))``'s
    rows, then zero rows), ``coors`` [capacity, 3] (then ``PADDING`` rows) and their ``scatter_index`` for the
    encoder's C channels. ``rows`` of them hold every voxel of a frame like the graph's last one: what an encoder
    that must not wait for the count is given (a count above them, read afterwards, means it missed some)."""

    features: torch.Tensor
    coors: torch.Tensor
    index: torch.Tensor
    capacity: int
    rows: int
    _captured: _Captured

    @property
    def padded(self) -> torch.Tensor | None:
        """With ``GraphedPreprocess(pad_to=...)``: the encoder's fixed-size input, ``features`` then zero rows up to
        ``pad_to`` (what ``pad_pillars(features[:rows], pad_to)`` gives, without its copy); else None."""
        return self._captured.padded

    @functools.cached_property
    def voxels(self) -> int:
        """The frame's voxel count, more than ``capacity`` when voxels had no row. Waits for its copy to the host,
        which follows the graph's work: read it after waiting for later work (it then costs nothing), not before
        queuing that work. Read once: the graph does not replay again while the block holds its lock."""
        self._captured.copied.synchronize()
        return int(self._captured.counted)


def rows_for(count: int, headroom: float, limit: int) -> int:
    """Rows for ``count`` voxels with ``headroom``: a multiple of ``ROWS_STEP`` (graphs and encoders see few shapes),
    at most ``limit``."""
    return min(limit, max(ROWS_STEP, math.ceil(count * headroom / ROWS_STEP) * ROWS_STEP))


def padded_shape(frame: Frame) -> tuple[int, ...]:
    """The shape a frame's graph is captured for: each sweep's point count padded up to a ``POINTS_STEP`` multiple."""
    return tuple(max(POINTS_STEP, math.ceil(raw.shape[0] / POINTS_STEP) * POINTS_STEP) for raw in frame.raws)


class GraphedPreprocess:
    """Frame → decorated pillars [capacity, P, F + 6] and their coors [capacity, 3] on the frame's CUDA device: the
    rows ``decorate(voxelize(assemble(frame)))`` gives, then padding."""

    def __init__(self, cfg: CenterPointConfig, pad_to: int | None = None) -> None:
        """``pad_to``: the graph writes its pillars into the first rows of a zero [pad_to, P, F + 6] buffer kept with it
        (:attr:`Replayed.padded`): an encoder with a fixed input (Autoware's ``max_voxel_size``) then reads it as it is,
        where padding a copy cost a concatenation as large as that input (135 MB at full size) every frame."""
        self.cfg = cfg
        self.pad_to = pad_to
        self._graphs: OrderedDict[tuple[int, ...], _Captured] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, frame: Frame) -> Iterator[Replayed]:
        """Yields the replay's buffers, before the device has run it: use them (run the encoder, scatter) inside the
        block, then check :attr:`Replayed.voxels` against its ``rows`` or its ``capacity``; when the block ends the
        graph's rows follow this frame's count, and a frame with more voxels than the capacity drops its graph."""
        shape = padded_shape(frame)
        with self._lock, torch.cuda.device(frame.moves.device):
            captured = self._graphs.get(shape) or self._capture(shape, frame)
            self._replay(captured, frame)
            self._graphs.move_to_end(shape)
            replayed = Replayed(captured.decorated, captured.coors, captured.index, captured.capacity, captured.rows, captured)
            yield replayed
            count = replayed.voxels
            if count > captured.capacity:  # the next call captures this shape again, sized for this frame
                del self._graphs[shape]
            elif captured.rows != (rows := rows_for(count, ROWS_HEADROOM, captured.capacity)):
                self._graphs[shape] = replace(captured, rows=rows)

    @staticmethod
    def _fill(points: torch.Tensor, inputs: Frame, nans: torch.Tensor, frame: Frame) -> None:
        """The frame into the graph's input buffers: each sweep's points, then NaN rows up to its padded size. One
        concatenation (a single kernel) and one copy: a copy per sweep costs a launch each (~11 us of host on
        the H200's host), as long as the device work it launches."""
        parts = []
        for buffer, raw in zip(inputs.raws, frame.raws, strict=True):
            parts.append(raw)
            if buffer.shape[0] > raw.shape[0]:
                parts.append(nans[: buffer.shape[0] - raw.shape[0]])
        torch.cat(parts, out=points)
        inputs.moves.copy_(frame.moves)

    def _replay(self, captured: _Captured, frame: Frame) -> None:
        """Fill, replay, and queue the count's copy to the host: nothing here waits for the device."""
        self._fill(captured.points, captured.inputs, captured.nans, frame)
        captured.graph.replay()
        captured.counted.copy_(captured.count, non_blocking=True)
        captured.copied.record()

    def _stages(self, frame: Frame, capacity: int, out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        features, counts, coors, count = voxel_buffers(assemble(frame, cfg), cfg, capacity=capacity)
        return decorate(Voxels(features, counts, coors), cfg, out), coors, scatter_index(coors, cfg.pfn_channels[-1], cfg), count

    def _capture(self, shape: tuple[int, ...], frame: Frame) -> _Captured:
        device = frame.moves.device
        width, dtype = frame.raws[0].shape[1], frame.raws[0].dtype
        points = torch.empty((sum(shape), width), dtype=dtype, device=device)
        inputs = Frame(tuple(points.split(shape)), torch.empty_like(frame.moves))
        nans = torch.full((POINTS_STEP, width), math.nan, dtype=dtype, device=device)
        self._fill(points, inputs, nans, frame)
        # Warm up on a side stream first, as torch.cuda.graphs asks: library workspaces and the grid's constants
        # are made there, not inside the capture. With room for every voxel, it also counts this frame's, which
        # sizes the graph: that count with headroom.
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            voxels = int(self._stages(inputs, self.cfg.max_voxels)[3])
        torch.cuda.current_stream(device).wait_stream(side)
        capacity = rows_for(voxels, HEADROOM, self.cfg.max_voxels)
        padded = None
        if self.pad_to is not None:  # allocated outside the graph: its rows past the capacity stay zero
            padded = torch.zeros((max(self.pad_to, capacity), self.cfg.max_points_per_voxel, self.cfg.decorated_features),
                                 dtype=dtype, device=device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            decorated, coors, index, count = self._stages(inputs, capacity, None if padded is None else padded[:capacity])
        counted = torch.empty(count.shape, dtype=count.dtype, pin_memory=True)
        captured = _Captured(graph, points, inputs, nans, capacity, rows_for(voxels, ROWS_HEADROOM, capacity), decorated,
                             padded, coors, index, count, counted, torch.cuda.Event(),
                             (grid_constants(self.cfg, device, frame.moves.dtype),
                              channel_starts(self.cfg.pfn_channels[-1], math.prod(self.cfg.grid_size[:2]), device)))
        self._graphs.pop(shape, None)
        self._graphs[shape] = captured
        while len(self._graphs) > KEPT_GRAPHS:
            self._graphs.popitem(last=False)
        return captured
