"""Pre-processing outside the exported graphs, as AWML keeps it: densify, voxelize, decorate, scatter.

Plain PyTorch, vectorized, deterministic: the same points always give the same pillars in the same
order, so two backends are fed bit-identical inputs.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.scene import Sweep


class UploadedSweeps:
    """The device copies of the sweeps of the last frame a pipeline densified.

    Autoware's densification keeps each sweep on the GPU from the frame it arrived in and transforms the
    past ones there every frame: a frame uploads its current sweep only. A pipeline holding one of these
    does the same: in a stream, a frame's past sweeps are earlier frames' current ones; a past sweep it never
    held (the first frame) is uploaded once. Sweeps are frozen and matched by identity, so a different cloud
    never hits an old entry. The tensors held are never written.

    It also keeps the page-locked host buffer frames go up through (:meth:`staging`), as Autoware's node keeps
    its buffers: torch's pinned-memory cache took ~100 us to hand out a block on the GPU machine's host.
    """

    def __init__(self) -> None:
        self._entries: tuple[tuple[Sweep, torch.Tensor], ...] = ()
        self._staging: torch.Tensor | None = None
        self._sent: torch.cuda.Event | None = None  # recorded after the last copy out of the staging buffer
        self._lock = threading.Lock()

    @contextmanager
    def staging(self, size: int, device: torch.device) -> Iterator[torch.Tensor]:
        """A page-locked float32 buffer of ``size`` elements to fill and copy to the CUDA ``device`` inside the
        block (one frame at a time: the block holds a lock); the last copy out of it is waited for first (long done
        in a stream of frames), and the copy queued in the block is marked when it ends."""
        with self._lock:
            if self._sent is not None:
                self._sent.synchronize()
            if self._staging is None or self._staging.numel() < size:
                self._staging = torch.empty(size, dtype=torch.float32, pin_memory=True)
            yield self._staging[:size]
            self._sent = torch.cuda.Event()
            self._sent.record(torch.cuda.current_stream(device))

    def get(self, sweep: Sweep) -> torch.Tensor | None:
        return next((points for held, points in self._entries if held is sweep), None)

    def hold(self, frame: Sequence[tuple[Sweep, torch.Tensor]]) -> None:
        """Keep this frame's sweeps (and drop the older ones: a stream's next frame looks back at these)."""
        self._entries = tuple(frame)


MOVE_WIDTH = 13  # a sweep's row of Frame.moves: its 3 x 4 transform, then its time lag


@dataclass(frozen=True)
class Frame:
    """One frame's sweeps on the device, as they came (newest first), and how each moves into the current
    sensor frame, one row per sweep in ``moves`` (one tensor: one copy up, one copy into a CUDA graph's
    buffer): ``motion[i]`` is its float32 transform (rows 0-2 of the 4 x 4; identity for the current sweep,
    which is taken as is) and ``lags[i]`` its time lag (current time - sweep time)."""

    raws: tuple[torch.Tensor, ...]  # [N_i, 4] x, y, z, intensity
    moves: torch.Tensor  # [sweeps, MOVE_WIDTH]

    @property
    def points(self) -> int:
        return sum(r.shape[0] for r in self.raws)

    @property
    def motion(self) -> torch.Tensor:  # [sweeps, 3, 4]
        return self.moves[:, :12].view(-1, 3, 4)

    @property
    def lags(self) -> torch.Tensor:  # [sweeps]
        return self.moves[:, 12]


def frame(sweeps: Sequence[Sweep], cfg: CenterPointConfig, device: torch.device | str = "cpu",
          uploaded: UploadedSweeps | None = None) -> Frame:
    """The current sweep and up to ``cfg.past_sweeps`` earlier ones on ``device``: the current one uploaded (as a
    new frame's is), a past one copied from ``uploaded`` when held there, else uploaded. What goes up (the sweeps
    not held, then the transforms and lags) goes in one copy from one host buffer: on a GPU each copy costs a
    page-locked block and a launch. The transform is float32, as Autoware's ``Eigen::Affine3f``."""
    current = sweeps[0]
    used = sweeps[: cfg.past_sweeps + 1]
    held = [uploaded.get(sweep) if uploaded is not None and sweep is not current else None for sweep in used]
    fresh = [sweep.points for sweep, raw in zip(used, held, strict=True) if raw is None]
    moves = frame_moves(used)
    *uploads, moves_up = _upload([*((len(points), 4) for points in fresh), moves.shape], [*fresh, moves], device, uploaded)
    raws = [raw if raw is not None else uploads.pop(0) for raw in held]
    if uploaded is not None:
        uploaded.hold(list(zip(used, raws, strict=True)))
    return Frame(tuple(raws), moves_up)


def frame_moves(used: Sequence[Sweep]) -> np.ndarray:
    """:attr:`Frame.moves` on the host for a frame's sweeps (the current one first): [sweeps, MOVE_WIDTH] float32."""
    current = used[0]
    moves = np.zeros((len(used), MOVE_WIDTH), np.float32)
    for i, sweep in enumerate(used):
        moves[i, :12] = relative_pose(current.pose, sweep.pose)[:3].reshape(-1)
        moves[i, 12] = current.time_s - sweep.time_s
    return moves


def relative_pose(current: np.ndarray, past: np.ndarray) -> np.ndarray:
    """``inverse(current) @ past`` for rigid poses (rotation and translation: a sensor's pose), inverting the rotation
    by its transpose: no LAPACK call (``np.linalg.inv`` of a 4 x 4 took 64 us on the GPU machine's host, against 4 us
    on CI's), and for poses that only translate, the same bits as the general inverse."""
    if past is current:
        return np.eye(4)
    rotation = current[:3, :3].T
    moved = np.eye(4)
    moved[:3, :3] = rotation @ past[:3, :3]
    moved[:3, 3] = rotation @ (past[:3, 3] - current[:3, 3])
    return moved


def _upload(shapes: Sequence[tuple[int, int]], arrays: Sequence[np.ndarray], device: torch.device | str,
            uploaded: UploadedSweeps | None = None) -> list[torch.Tensor]:
    """Each array's first ``shape[1]`` columns as float32 [shape] tensors on ``device``, views of one buffer. To a
    GPU through page-locked memory (``uploaded``'s, else a block of torch's pinned-memory cache, which keeps it
    until the copy is done), in one copy that does not wait: a copy from pageable memory blocks the host and runs
    at a fraction of the bus (2.2 MB: 0.19 ms against 0.03 + 0.05 ms on an H200). On the CPU the buffer is the
    result."""
    device = torch.device(device)
    sizes = [rows * columns for rows, columns in shapes]
    cuda = device.type == "cuda"
    with uploaded.staging(sum(sizes), device) if cuda and uploaded is not None else nullcontext(
            torch.empty(sum(sizes), dtype=torch.float32, pin_memory=cuda)) as host:
        for piece, shape, array in zip(host.split(sizes), shapes, arrays, strict=True):
            _copy_columns(piece.view(shape), array)
        moved = host.to(device, non_blocking=True)  # the buffer itself on the CPU
    return [piece.view(shape) for piece, shape in zip(moved.split(sizes), shapes, strict=True)]


def _copy_columns(piece: torch.Tensor, array: np.ndarray) -> None:
    """``array``'s first columns into ``piece``. torch's copy runs on several threads (2.2 MB: 0.33 ms against
    NumPy's 0.42 ms on the GPU machine's host); it takes writeable C-contiguous arrays in native byte order, NumPy
    copies the others (torch warns about read-only arrays and refuses foreign byte orders)."""
    if array.flags.writeable and array.flags.c_contiguous and array.dtype.isnative:
        piece.copy_(torch.from_numpy(array)[:, : piece.shape[1]])
    else:
        np.copyto(piece.numpy(), array[:, : piece.shape[1]], casting="same_kind")


REMOVE_CLOSE_M = 1.0  # mmdet3d's LoadPointsFromMultiSweeps._remove_close radius: |x| and |y| below it


def assemble(frame: Frame, cfg: CenterPointConfig) -> torch.Tensor:
    """The frame's sweeps as one cloud in the current sensor frame, newest first, with the columns
    ``cfg.point_feature_names`` names (x, y, z, then intensity and the time lag in the config's order): Autoware's
    densification and mmdet3d's LoadPointsFromMultiSweeps with its ``use_dim``. With ``cfg.remove_close`` a past
    sweep's points within :data:`REMOVE_CLOSE_M` of its own sensor (|x| and |y|, before the move) get NaN
    coordinates, which the voxelizer drops as mmdet3d's filter does. Device work only, on the device the frame is
    on (no host value: a CUDA graph can capture it)."""
    names = cfg.point_feature_names
    out = torch.empty((frame.points, len(names)), dtype=torch.float32, device=frame.moves.device)
    row = 0
    for i, raw in enumerate(frame.raws):
        rows = out[row : row + raw.shape[0]]
        row += raw.shape[0]
        if i:  # the current sweep is taken as is; a past one moved: rotation x point + translation, column by column
            # (a GEMM of inner size 3 wastes its tiles: 55 us on an H200 for a 140 000-point sweep, ~10 us so)
            motion, xyz = frame.motion[i], raw[:, :3]
            moved = torch.addcmul(motion[:, 3], xyz[:, 0:1], motion[:, 0])
            moved = torch.addcmul(moved, xyz[:, 1:2], motion[:, 1])
            torch.addcmul(moved, xyz[:, 2:3], motion[:, 2], out=rows[:, :3])
            if cfg.remove_close:
                close = (raw[:, 0].abs() < REMOVE_CLOSE_M) & (raw[:, 1].abs() < REMOVE_CLOSE_M)
                rows[:, :3].masked_fill_(close[:, None], float("nan"))
        else:
            rows[:, :3].copy_(raw[:, :3])
        for column, name in enumerate(names[3:], start=3):
            if name == "intensity":
                rows[:, column].copy_(raw[:, 3])
            else:  # time_lag (the config admits no other)
                rows[:, column].copy_(frame.lags[i])
    return out


def densify(sweeps: Sequence[Sweep], cfg: CenterPointConfig, device: torch.device | str = "cpu",
            uploaded: UploadedSweeps | None = None) -> torch.Tensor:
    """:func:`frame` then :func:`assemble`: the densified cloud on ``device``, no per-point host work."""
    return assemble(frame(sweeps, cfg, device, uploaded), cfg)


PADDING = -1  # the coors of a buffer row that holds no voxel: no cell, so scatter leaves it out


@dataclass(frozen=True)
class Voxels:
    """mmcv's hard-voxelization result: ``coors`` are (z, y, x) per voxel."""

    features: torch.Tensor  # [M, max_points, point_features], zero padded
    num_points: torch.Tensor  # [M]
    coors: torch.Tensor  # [M, 3] int64: z, y, x


def voxelize(points: torch.Tensor, cfg: CenterPointConfig) -> Voxels:
    """Hard voxelization with mmcv's semantics.

    Points outside the range are dropped; voxels are numbered in the order their first point
    appears; each keeps its first ``max_points_per_voxel`` points in point order; voxels beyond
    ``max_voxels`` are dropped. No shuffling anywhere, so the result is deterministic.

    Written for the GPU as much as the CPU: one stable sort and scatters over fixed-size buffers, no
    boolean compaction; the one host synchronization is the voxel count the outputs' shapes need
    (Autoware reads it back too, to size its encoder's input).
    """
    features, counts, coors, count = voxel_buffers(points, cfg)
    return Voxels(features, counts, coors) if isinstance(count, int) else Voxels(features[:count], counts[:count], coors[:count])


def voxel_buffers(points: torch.Tensor, cfg: CenterPointConfig, capacity: int | None = None):
    """:func:`voxelize`'s work: (features, counts, coors, voxel count). With ``capacity=None`` the count is read
    back (the one synchronization) and the buffers hold exactly that many voxels; with a ``capacity`` nothing
    waits on the device: the buffers hold ``capacity`` rows, the first voxels up to the count, then padding rows
    (features and counts zero, coors ``PADDING``), and the count is a device tensor. The rows they share are the
    same either way (a CUDA graph captures the latter). A count above the capacity means voxels did not fit: the
    caller must ask again with more rows."""
    device = points.device
    n = points.shape[0]
    nx, ny, nz = cfg.grid_size
    outside = nx * ny * nz  # the key of every dropped point: sorts after every cell
    grid_f = grid_constants(cfg, points.device, points.dtype)
    cell = torch.floor((points[:, :3] - grid_f.low) / grid_f.size)
    inside = ((cell >= 0) & (cell < grid_f.cells)).all(dim=1)  # NaN and inf compare false: dropped as well
    cell = cell.int()  # outside points' cells are garbage; the key below and the spare row never read them
    # int32 keys (every grid has fewer than 2**31 cells, checked by the config): half the radix passes of int64
    key = torch.where(inside, (cell * grid_f.strides).sum(1, dtype=torch.int32), outside)  # (z * ny + y) * nx + x
    # Points grouped by cell, in point order within each cell (stable).
    sorted_key, by_cell = torch.sort(key, stable=True)
    kept = sorted_key != outside
    opens = torch.ones(n, dtype=torch.bool, device=device)
    opens[1:] = sorted_key[1:] != sorted_key[:-1]
    start = torch.searchsorted(sorted_key, sorted_key)  # where each point's group starts (CUDA's cummax is slow)
    slot = torch.arange(n, device=device) - start  # its place within the group
    # mmcv numbers voxels in the order their first point appears: mark, in point order, the points that open a
    # kept cell (a group's first in the stable order), count them, and give every point its group's number.
    firsts = opens & kept
    opener = torch.zeros(n, dtype=torch.bool, device=device)
    opener[by_cell] = firsts
    voxel = (torch.cumsum(opener, 0) - 1)[by_cell[start]]
    if capacity is None:
        count = min(int(firsts.sum()), cfg.max_voxels)  # the one synchronization
        rows = limit = count
    else:
        count = firsts.sum().clamp(max=cfg.max_voxels)
        rows, limit = capacity, count.clamp(max=capacity)
    taken = (voxel < limit) & (slot < cfg.max_points_per_voxel) & kept
    row = torch.where(taken, voxel, rows)  # everything not taken lands in a spare row, cut off below
    features = points.new_zeros((rows + 1, cfg.max_points_per_voxel, points.shape[1]))
    features[row, torch.where(taken, slot, 0)] = points[by_cell]
    # a voxel holds min(its points, max_points): its group's size, written by each of its points (they agree), no
    # atomics (counting taken points with scatter_add serialized the dropped ones on the spare row: 51 us on an H200)
    size = torch.searchsorted(sorted_key, sorted_key, right=True) - start
    counts = torch.zeros(rows + 1, dtype=torch.long, device=device)
    counts[row] = size.clamp(max=cfg.max_points_per_voxel)
    # every row below the count is a voxel (its first point is taken), so rows left PADDING are those past it
    coors = torch.full((rows + 1, 3), PADDING, dtype=torch.long, device=device)
    coors[row] = cell[by_cell].flip(1).long()  # every point of a voxel has its cell: duplicate writes agree
    return features[:rows], counts[:rows], coors[:rows], count


def decorate(voxels: Voxels, cfg: CenterPointConfig, out: torch.Tensor | None = None) -> torch.Tensor:
    """[M, P, 5] raw points → [M, P, 11]: raw, offset to the pillar's point mean, offset to its centre.

    mmdet3d's PillarFeatureNet with ``with_cluster_center`` and ``with_voxel_center`` (non-legacy:
    z offset included; AWML's BackwardPillarFeatureNet, ``cfg.voxel_center_z=False``: x and y offsets only, [M, P, 10]);
    padding slots are zeroed, as its mask does. ``out``: the [M, P, F + 6] tensor to write (the first rows of an
    encoder's fixed-size input, which then needs no padding copy).
    """
    features, counts, coors = voxels.features, voxels.num_points, voxels.coors
    dtype, width = features.dtype, features.shape[2]
    grid = grid_constants(cfg, features.device, dtype)
    xyz = features[:, :, :3]
    mean = xyz.sum(dim=1, keepdim=True) / counts.clamp(min=1).to(dtype).view(-1, 1, 1)
    # cell centres from (z, y, x) coors: coordinate x size + (size / 2 + range start), each term in float32
    centre = (coors.to(dtype) * grid.size_zyx + grid.centre_zyx).flip(1).unsqueeze(1)
    # The padding slots are zeroed (the raw features' padding is zero already); every part is written into
    # its columns of one buffer. Few, large operations: on a GPU this stage is bound by how many it launches and
    # by the bytes they move. Each offset is one pass, xyz - reference x mask (a slot's mask is 1 or 0: the same
    # bits as masking xyz - reference, whose temporary and second pass cost ~50 us a frame on an H200).
    mask = (grid.slots[: features.shape[1]].view(1, -1) < counts.view(-1, 1)).unsqueeze(-1).to(dtype)
    centred = 3 if cfg.voxel_center_z else 2  # BackwardPillarFeatureNet: x and y only
    out = features.new_empty((*features.shape[:2], width + 3 + centred)) if out is None else out
    out[:, :, :width] = features
    torch.addcmul(xyz, mean, mask, value=-1, out=out[:, :, width:width + 3])
    torch.addcmul(xyz[:, :, :centred], centre[:, :, :centred], mask, value=-1, out=out[:, :, width + 3:])
    return out


@dataclass(frozen=True)
class GridConstants:
    """The voxel grid's constants as tensors on one device, made once: an upload per frame costs a
    host-to-device copy, and per-component Python scalars a kernel each."""

    low: torch.Tensor  # range start x, y, z
    # Divided by a tensor, not a Python float: CUDA turns division by a host scalar into multiplication
    # by its reciprocal, which rounds differently and moves boundary points to the next cell.
    size: torch.Tensor  # voxel size x, y, z
    cells: torch.Tensor  # grid size x, y, z
    strides: torch.Tensor  # cell (x, y, z) -> key: 1, nx, nx * ny
    size_zyx: torch.Tensor
    centre_zyx: torch.Tensor  # centre of cell 0: size / 2 + range start, as float32 computes it from doubles
    slots: torch.Tensor  # 0 .. max_points_per_voxel - 1


@functools.lru_cache(maxsize=16)
def grid_constants(cfg: CenterPointConfig, device: torch.device, dtype: torch.dtype) -> GridConstants:
    nx, ny, _ = cfg.grid_size
    low, size = cfg.point_cloud_range[:3], cfg.voxel_size
    centre = [s / 2 + lo for s, lo in zip(size, low, strict=True)]
    make = functools.partial(torch.tensor, device=device)
    return GridConstants(make(low, dtype=dtype), make(size, dtype=dtype), make(cfg.grid_size, dtype=dtype),
                 make([1, nx, nx * ny], dtype=torch.int32), make(size[::-1], dtype=dtype), make(centre[::-1], dtype=dtype),
                 torch.arange(cfg.max_points_per_voxel, device=device))


def scatter(pillar_features: torch.Tensor, coors: torch.Tensor, cfg: CenterPointConfig) -> torch.Tensor:
    """PointPillarsScatter: [M, 1, C] pillar features → canvas [1, C, ny, nx] (rows with ``PADDING`` coors left out)."""
    return scatter_at(pillar_features, scatter_index(coors, pillar_features.shape[-1], cfg), cfg)


def scatter_index(coors: torch.Tensor, channels: int, cfg: CenterPointConfig) -> torch.Tensor:
    """Where each pillar's values go in a flat [channels, ny, nx] canvas: [M, channels] int64. A row whose coors are
    ``PADDING`` (a CUDA graph's buffer past the voxel count, which only the device knows) goes to one spare element
    past the canvas that nothing reads: which rows those are is decided on the device, so nothing waits for the
    count. A CUDA graph computes this with the voxels, so that scattering is two launches."""
    nx, ny, _ = cfg.grid_size
    spare = channels * nx * ny
    cell = coors[:, 1:2] * nx + coors[:, 2:3]  # [M, 1]: y * nx + x, negative for padding
    return torch.where(cell >= 0, cell + channel_starts(channels, nx * ny, coors.device), spare)


def scatter_at(pillar_features: torch.Tensor, index: torch.Tensor, cfg: CenterPointConfig) -> torch.Tensor:
    """[M, 1, C] pillar features put at their :func:`scatter_index` in a zero canvas [1, C, ny, nx]: each value to its
    own element (``put_``), the padding rows' to the spare one."""
    nx, ny, _ = cfg.grid_size
    features = pillar_features.reshape(pillar_features.shape[0], -1)
    spare = features.shape[1] * nx * ny
    flat = features.new_zeros(spare + 1)
    flat.put_(index, features)
    return flat[:spare].view(1, features.shape[1], ny, nx)


@functools.lru_cache(maxsize=16)
def channel_starts(channels: int, area: int, device: torch.device) -> torch.Tensor:
    """Where each channel's plane starts in a flat canvas: [channels] int64, made once per device."""
    return torch.arange(channels, device=device) * area
