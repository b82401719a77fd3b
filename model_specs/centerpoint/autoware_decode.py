"""The boxes ``autoware_lidar_centerpoint`` gives for the bundle's y-axis head: its ``postprocess_kernel.cu`` and
circle NMS, read from Autoware's code (docs/autoware-oracle.md) and held to its recorded outputs.

Written for the GPU: the per-cell decision needs a cell's class, score, centre and yaw norm, but a cell can only
pass when its best score reaches the lowest of the score thresholds, so the map is thresholded first and only those
candidates (a few hundred of 260 000 cells at full size) are decoded. Their count is data-dependent; to avoid
reading it back before the work that depends on it, the candidates go into a fixed number of rows
(:data:`CANDIDATES`: the top cells, no synchronization), NMS's neighbour matrix is built on the device
over those rows, and the greedy suppression runs as a fixed number of rounds of a matrix-vector product
(:func:`_suppress`). Everything comes to the host in one copy, with the true candidate count and whether the
suppression had settled: when either says the fixed shape was too small, the frame is decoded again with exact
sizes (the boxes never depend on the shape chosen). On CUDA the fixed-shape work replays as a CUDA graph
(:class:`AutowareDecoder`): ~60 small operations cost one launch, as in :mod:`model_specs.centerpoint.graphs`.

Hand-written rather than a library's: no well-kept library decodes CenterPoint's heads as Autoware does (mmdet3d's
coder thresholds and orders differently), and the greedy circle NMS has no torch or torchvision operator
(``torchvision.ops.nms`` is IoU-based and synchronizes).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from model_specs.centerpoint.autoware import AutowareSettings, class_names, has_twist
from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.decode import Detections, as_tensors, to_host, where_decoded

log = logging.getLogger(__name__)

HEADS = ("heatmap", "reg", "height", "dim", "rot", "vel")  # the y-axis head's outputs, stacked in this order
CANDIDATES = 512  # rows a GPU decodes without reading the count first (full-size frames here: <= 252 candidates); a
# frame with more is decoded again with exact shapes, and the decoder keeps room for its count from then on
NMS_ROUNDS = 4  # suppression rounds before the settled check: enough for chains of 3 (the frames here: <= 2)
KEPT_GRAPHS = 2  # (shape, capacity) pairs held at once
SIMD_ROWS = 64  # the exact path's rows are a multiple of this (a multiple of every CPU's float vector)
ROWS = 12  # per candidate: x, y, z, l, w, h, yaw, vx, vy, score, label, kept


@dataclass(frozen=True)
class _Constants:
    """The decoder's thresholds as tensors on one device, made once (an upload per frame costs a copy and a sync)."""

    bins: torch.Tensor  # [B] distance bin upper limits
    thresholds: torch.Tensor  # [B + 1, C]: the last row, beyond the last bin, is +inf (the kernel drops the cell)
    yaw_norms: torch.Tensor  # [C]
    floor: float  # the lowest score any cell can be kept with (> 0: the kernel keeps scores > 0 only)
    nms_threshold: float  # squared distance, float32 as powf computes it
    top: int  # cells reported for the parity comparison's threshold flips


def _constants(cfg: CenterPointConfig, settings: AutowareSettings, cells: int, device: torch.device) -> _Constants:
    names = class_names(cfg)
    bins = [float(b) for b in settings.distance_bin_upper_limits]
    rows = [[settings.confidence(n) for n in names]] * len(bins)
    lowest = min(min(row) for row in rows) if rows else math.inf
    tiny = float(np.nextafter(np.float32(0), np.float32(1)))  # score >= tiny is score > 0
    radius = np.float32(settings.circle_nms_dist_threshold)
    return _Constants(torch.tensor(bins, dtype=torch.float32, device=device),
                      torch.tensor([*rows, [math.inf] * len(names)], dtype=torch.float32, device=device),
                      torch.tensor([settings.yaw_norm(n) for n in names], dtype=torch.float32, device=device),
                      max(lowest, tiny), float(radius * radius), min(settings.max_candidates, cells))


def _stack(heads: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The head's maps as one [channels, H, W] float32 tensor (one kernel; every map's values then gathered at once)."""
    return torch.cat([heads[name][0].float() for name in HEADS])


def _layout(stacked_channels: Mapping[str, int]) -> dict[str, slice]:
    start, out = 0, {}
    for name in HEADS:
        out[name] = slice(start, start + stacked_channels[name])
        start += stacked_channels[name]
    return out


def _scores(maps: torch.Tensor, at: Mapping[str, slice], k: _Constants):
    """Per cell: the best class's sigmoid and its class (the first on ties, as the kernel's strict '>'), and which
    cells reach the lowest threshold; their count stays on the device."""
    prob = torch.sigmoid(maps[at["heatmap"]])
    score, label = prob.max(dim=0)
    wanted = score.view(-1) >= k.floor
    return prob, score.view(-1), label.view(-1), wanted, wanted.sum()


def _suppress(lower: torch.Tensor, valid: torch.Tensor, rounds: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy circle NMS over score-sorted rows: ``lower[i, j]`` is 1 where row j (j < i, a higher score) is near row
    i. A row is kept when it is valid and no kept row above it is near: that fixed point is unique (row i depends only
    on rows above it) and it is the greedy pass's result. Each round recomputes every row from the last round's kept
    rows (``valid - 2 x kept neighbours above``, clamped at 0: 1 or 0, exact in float32), so after r rounds every row
    whose chain of near higher rows is shorter than r is final; a round that changes nothing proves the fixed point.
    ``rounds`` None: rounds until that happens (the host reads each check). Else that many, and whether the last
    changed nothing, left on the device. (The greedy pass itself is sequential: a round per box, a launch each.)"""
    step = lambda kept: torch.addmv(valid, lower, kept, alpha=-2).clamp_(min=0)  # noqa: E731
    kept = valid
    if rounds is not None:
        for _ in range(rounds):
            kept, last = step(kept), kept
        return kept, (kept == last).all()
    while True:
        kept, last = step(kept), kept
        if torch.equal(kept, last):
            return kept, torch.ones((), dtype=torch.bool, device=kept.device)


def _decode(maps: torch.Tensor, at: Mapping[str, slice], k: _Constants, cfg: CenterPointConfig, twist: bool,
            capacity: int | None, rounds: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The candidates' boxes as one float64 vector (exact for every float32 and index): ``ROWS`` x capacity, in NMS
    order (score descending, cell order on ties), the ``top`` cells' (label, y, x, score), then the candidate count and
    whether NMS settled. ``capacity`` None: exactly the candidates (their count is read). Also the probabilities."""
    prob, score, label, wanted, count = _scores(maps, at, k)
    width = maps.shape[2]
    if capacity is None:  # rounded up to whole SIMD vectors: on the CPU every value then takes the vectorized exp and
        # atan2, as the full maps' do (a loop's scalar tail can differ in the last bit)
        capacity, rounds = max(SIMD_ROWS, -(-int(count) // SIMD_ROWS) * SIMD_ROWS), None
    capacity = min(capacity, score.numel())
    # The candidates in cell order, with no host read: the top ``capacity`` cells once the others score -1 (every
    # candidate when they fit, which the count says), sorted. (``nonzero_static`` does the same in one operation, but
    # its CUDA kernel is recent; topk and sort are what ``decode`` already runs on the device without waiting.)
    cells = torch.sort(torch.topk(torch.where(wanted, score, -1.0), capacity, sorted=False).indices).values
    present = wanted[cells]
    values = maps.view(maps.shape[0], -1)[:, cells]  # [channels, capacity]
    reg, rot, dim, vel = (values[at[name]] for name in ("reg", "rot", "dim", "vel"))
    cscore, clabel = score[cells], label[cells]
    stride, (vx, vy, _), r = cfg.out_size_factor, cfg.voxel_size, cfg.point_cloud_range
    # the kernel's float32 steps, as the eager map decoder had them: (cell + offset) x (voxel x stride) + range start
    x = vx * stride * ((cells % width).float() + reg[0]) + r[0]
    y = vy * stride * ((cells // width).float() + reg[1]) + r[1]
    radial = torch.sqrt(x * x + y * y)
    bin_index = torch.searchsorted(k.bins, radial, right=True)  # first bin whose limit is above the distance
    norm = torch.sqrt(rot[0] ** 2 + rot[1] ** 2)
    keep = (cscore >= k.thresholds[bin_index, clabel]) & (norm >= k.yaw_norms[clabel]) & (cscore > 0) & present
    order = torch.sort(torch.where(keep, cscore, -1.0), descending=True, stable=True).indices
    sx, sy = x[order], y[order]
    dx, dy = sx[:, None] - sx[None, :], sy[:, None] - sy[None, :]
    near = (dx * dx + dy * dy < k.nms_threshold).float().tril_(-1)  # circle_nms_kernel: powf(dx, 2) + powf(dy, 2) < d^2
    kept, settled = _suppress(near, keep[order].float(), rounds)
    yaw = -torch.atan2(rot[0], rot[1]) - math.pi / 2  # ros_utils: the y-axis convention undone
    yaw = torch.atan2(torch.sin(yaw), torch.cos(yaw))
    sizes = torch.exp(dim)  # (w, l, h): reordered below (a list index would upload it: no CUDA graph can hold that)
    velocity = vel if twist else torch.zeros_like(vel)
    rows = torch.stack([x, y, values[at["height"]][0], sizes[1], sizes[0], sizes[2], yaw, *velocity, cscore, clabel.float()])[:, order]
    top_scores, top = torch.topk(score, k.top)
    return torch.cat([rows.double().view(-1), kept.double(), label[top].double(), (top // width).double(),
                      (top % width).double(), top_scores.double(), count.double().view(1), settled.double().view(1)]), prob


def _maps(maps: torch.Tensor, at: Mapping[str, slice]) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoded maps verification reads besides the probabilities: exp(dim) as (l, w, h) [3, H, W] and the yaw
    published [H, W]."""
    rot = maps[at["rot"]]
    yaw = -torch.atan2(rot[0], rot[1]) - math.pi / 2
    sizes = torch.exp(maps[at["dim"]])
    return torch.stack([sizes[1], sizes[0], sizes[2]]), torch.atan2(torch.sin(yaw), torch.cos(yaw))  # (l, w, h)


def _unpack(host: np.ndarray, capacity: int, top: int, maps) -> tuple[Detections | None, int]:
    """Detections from :func:`_decode`'s vector, or None (and the candidate count) when the shape was too small."""
    count, settled = int(host[-2]), bool(host[-1])
    if count > capacity or not settled:
        return None, count
    rows = host[: (ROWS - 1) * capacity].reshape(ROWS - 1, capacity)
    kept = np.flatnonzero(host[(ROWS - 1) * capacity: ROWS * capacity])
    cells = host[ROWS * capacity: ROWS * capacity + 4 * top].reshape(4, top)
    return Detections(boxes=np.ascontiguousarray(rows[:9, kept].T, dtype=np.float32), scores=rows[9, kept].astype(np.float32),
                      labels=rows[10, kept].astype(np.int64), candidate_cells=np.ascontiguousarray(cells[:3].T, dtype=np.int64),
                      candidate_scores=cells[3].astype(np.float32), probabilities=where_decoded(maps[0]),
                      sizes=where_decoded(maps[1]), yaws=where_decoded(maps[2])), count


def decode_exact(heads: Mapping[str, torch.Tensor], cfg: CenterPointConfig, settings: AutowareSettings) -> Detections:
    """Exact shapes: the candidate count read first (free on the CPU), NMS rounds until settled."""
    t = as_tensors(heads)
    maps = _stack(t)
    at = _layout({name: t[name].shape[1] for name in HEADS})
    k = _constants(cfg, settings, maps[0].numel(), maps.device)
    packed, prob = _decode(maps, at, k, cfg, has_twist(cfg), None, None)
    capacity = (packed.numel() - 2 - 4 * k.top) // ROWS
    host, decoded = to_host(packed, lambda: _maps(maps, at))
    detections, _ = _unpack(host, capacity, k.top, (prob, *decoded))
    assert detections is not None  # exact shapes always fit and always settle
    return detections


def decode_autoware(heads: Mapping[str, np.ndarray], cfg: CenterPointConfig, settings: AutowareSettings) -> Detections:
    """The boxes ``CenterPointTRT`` gives for the y-axis graph's heads, in the frame and yaw it publishes.

    postprocess_kernel.cu per cell: the class with the highest sigmoid (first wins a tie), the radial
    distance's bin (beyond the last: dropped), dropped when the score is below that class's bin threshold
    or the (sin, cos) norm below its yaw-norm threshold; z as the centre; (w, l, h) = exp of the dim
    channels; yaw = atan2(rot0, rot1). Then class-agnostic circle NMS on squared centre distance, and
    ros_utils' yaw = -yaw - pi/2 (the y-axis convention undone), velocity only with ``has_twist``. The
    node's IoU-BEV NMS and class remapping run after this and are not modelled. Eager (no CUDA graph): on a GPU one
    synchronization, and a second decode with exact shapes when the fixed ones were too small.
    """
    t = as_tensors(heads)
    if t["heatmap"].device.type != "cuda":
        return decode_exact(t, cfg, settings)
    maps = _stack(t)
    at = _layout({name: t[name].shape[1] for name in HEADS})
    k = _constants(cfg, settings, maps[0].numel(), maps.device)
    capacity = min(CANDIDATES, maps[0].numel())
    packed, prob = _decode(maps, at, k, cfg, has_twist(cfg), capacity, NMS_ROUNDS)
    host, decoded = to_host(packed, lambda: _maps(maps, at))
    detections, _ = _unpack(host, capacity, k.top, (prob, *decoded))
    return detections if detections is not None else decode_exact(t, cfg, settings)


@dataclass(frozen=True)
class _Captured:
    graph: torch.cuda.CUDAGraph  # the boxes: :func:`_decode`
    maps_graph: torch.cuda.CUDAGraph  # the decoded maps (:func:`_maps`), replayed behind the boxes' copy
    maps: torch.Tensor  # the input buffer: the heads stacked
    packed: torch.Tensor  # the graph's output vector
    decoded: tuple[torch.Tensor, ...]  # the maps: probabilities, sizes, yaws (copied out: the next replay overwrites them)
    staged: torch.Tensor  # its page-locked host copy
    copied: torch.cuda.Event
    capacity: int
    constants: _Constants  # held: the graph reads them


class AutowareDecoder:
    """:func:`decode_autoware` as a pipeline's decoder: on CUDA the fixed-shape decode replays as a CUDA graph, one per
    head shape and candidate capacity (captured on a frame's first call: its cold start), and the capacity grows to a
    frame's candidate count when one had more (that frame decoded again with exact shapes). On the CPU: the exact
    path, as :func:`decode_autoware`. The heads are copied into the graph's buffer in one concatenation."""

    def __init__(self, cfg: CenterPointConfig, settings: AutowareSettings) -> None:
        self.cfg, self.settings = cfg, settings
        self.capacity = CANDIDATES
        self._graphs: dict[tuple, _Captured] = {}
        self._failed: set[tuple] = set()
        self._lock = threading.Lock()

    def __call__(self, heads: Mapping[str, np.ndarray]) -> Detections:
        t = as_tensors(heads)
        device = t["heatmap"].device
        if device.type != "cuda":
            return decode_exact(t, self.cfg, self.settings)
        shape = (device, tuple((name, *t[name].shape) for name in HEADS))
        with self._lock, torch.cuda.device(device):
            cells = t["heatmap"].shape[2] * t["heatmap"].shape[3]
            key = (shape, min(self.capacity, cells))
            if key in self._failed:
                return decode_autoware(t, self.cfg, self.settings)
            captured = self._graphs.get(key)
            if captured is None:
                try:
                    captured = self._capture(key, t)
                except RuntimeError as exc:  # an operation torch cannot capture here: decode eagerly, same boxes
                    log.warning("the Autoware decoder runs eagerly on %s: its CUDA graph failed (%s)", device, exc)
                    self._failed.add(key)
                    return decode_autoware(t, self.cfg, self.settings)
            torch.cat([t[name][0] for name in HEADS], out=captured.maps)
            captured.graph.replay()
            captured.staged.copy_(captured.packed, non_blocking=True)
            captured.copied.record()
            captured.maps_graph.replay()
            decoded = tuple(value.clone() for value in captured.decoded)
            captured.copied.synchronize()
            detections, count = _unpack(captured.staged.numpy(), captured.capacity, captured.constants.top, decoded)
        if detections is None:  # the capacity was too small (next frames get room for this count) or NMS unsettled
            self.capacity = max(self.capacity, 1 << max(count - 1, 0).bit_length())
            return decode_exact(t, self.cfg, self.settings)
        return detections

    def _capture(self, key: tuple, t: Mapping[str, torch.Tensor]) -> _Captured:
        device, capacity = t["heatmap"].device, key[1]
        maps = _stack(t)
        at = _layout({name: t[name].shape[1] for name in HEADS})
        k = _constants(self.cfg, self.settings, maps[0].numel(), device)
        twist = has_twist(self.cfg)
        side = torch.cuda.Stream(device)  # warm up on a side stream, as torch.cuda.graphs asks
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            _decode(maps, at, k, self.cfg, twist, capacity, NMS_ROUNDS)
            _maps(maps, at)
        torch.cuda.current_stream(device).wait_stream(side)
        graph, maps_graph = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            packed, prob = _decode(maps, at, k, self.cfg, twist, capacity, NMS_ROUNDS)
        with torch.cuda.graph(maps_graph):
            sizes, yaws = _maps(maps, at)
        captured = _Captured(graph, maps_graph, maps, packed, (prob, sizes, yaws),
                             torch.empty(packed.shape, dtype=packed.dtype, pin_memory=True), torch.cuda.Event(), capacity, k)
        while len(self._graphs) >= KEPT_GRAPHS:
            self._graphs.pop(next(iter(self._graphs)))
        self._graphs[key] = captured
        return captured
