"""Autoware's own CUDA pre- and post-processing, run on the bundle's parameters: the oracle of
:func:`model_specs.centerpoint.autoware_decode.decode_autoware` and of the bundle pipeline's voxels and features.

:class:`AutowareOracle` builds the kernels from ``$AUTOWARE_ROOT`` (:mod:`.build`) and configures them from
the manifest the bundle writes (:func:`model_specs.centerpoint.autoware.manifest`) plus the node's
``centerpoint_common.param.yaml`` defaults (``cloud_capacity``, ``circle_nms_dist_threshold``). A frame goes in
as the node receives it: each sweep's points on the device in Autoware's ``InputPointType`` layout (x, y, z as
float32, intensity as uint8), with the float32 transform its densification computes and its time lag.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model_specs.centerpoint.autoware import AutowareSettings, manifest
from model_specs.centerpoint.autoware_oracle import build
from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.scene import Scene
from pytest_awml.errors import BackendError, BackendUnavailable, DataError

# centerpoint_common.param.yaml: the node's point buffer (points past it are not densified)
CLOUD_CAPACITY = 2_000_000
# point_type.hpp's InputPointType: 16 bytes a point
INPUT_POINT = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "u1"), ("return_type", "u1"), ("channel", "<u2")])
# the head's outputs in the order CenterPointTRT binds them (heatmap, offset, z, dim, rot, vel), by this project's names
HEAD_ORDER = ("heatmap", "reg", "height", "dim", "rot", "vel")
# oracle_capi.cu's box row
BOX_FIELDS = ("label", "score", "x", "y", "z", "length", "width", "height", "yaw", "vel_x", "vel_y", "entropy")
ERROR_BYTES = 4096


@dataclass(frozen=True)
class NodeFrame:
    """A frame as the node's densification holds it (newest sweep first)."""

    points: tuple[torch.Tensor, ...]  # per sweep: [N_i * 16] uint8 on the device, InputPointType rows
    transforms: np.ndarray  # [sweeps, 16] float32: past -> current, column-major (Eigen::Matrix4f::data())
    lags: np.ndarray  # [sweeps] float32 seconds


@dataclass(frozen=True)
class OracleVoxels:
    """What the node's pre-processing leaves for its encoder, read back: its voxels in its own order."""

    coors: np.ndarray  # [V, 3] int64: z (always 0), y, x
    num_points: np.ndarray  # [V] int64
    features: np.ndarray  # [V, 32, encoder_in_feature_size] float32


def as_node_points(points: np.ndarray) -> np.ndarray:
    """[N, 4] x, y, z, intensity → InputPointType rows; intensity must already be an integer in 0..255 (the
    node's type holds nothing else: :func:`model_specs.centerpoint.autoware_oracle.frames.as_node_input`)."""
    intensity = points[:, 3]
    if not np.array_equal(intensity, np.clip(np.floor(intensity), 0, 255)):
        raise DataError("Autoware's InputPointType holds intensity as uint8: give the frame integer intensities in 0..255 "
                        "(frames.as_node_input)")
    rows = np.zeros(len(points), INPUT_POINT)
    rows["x"], rows["y"], rows["z"] = points[:, 0], points[:, 1], points[:, 2]
    rows["intensity"] = intensity.astype(np.uint8)
    return rows


def past_to_current(current_pose: np.ndarray, past_pose: np.ndarray) -> np.ndarray:
    """The densification's float32 transform (pointcloud_densification.cpp, voxel_generator.cpp): each sweep's
    world→sensor transform cast to float (tf2's double → ``Eigen::Affine3f``), the past one inverted in float, then
    ``world2current * past2world`` in float. The current sweep's is therefore near the identity, not exactly it."""
    world2current = np.linalg.inv(current_pose).astype(np.float32)
    world2past = np.linalg.inv(past_pose).astype(np.float32)
    past2world = np.eye(4, dtype=np.float32)
    linear = np.linalg.inv(world2past[:3, :3]).astype(np.float32)  # Eigen's Affine inverse: linear^-1, -linear^-1 t
    past2world[:3, :3] = linear
    past2world[:3, 3] = -(linear @ world2past[:3, 3])
    return (world2current @ past2world).astype(np.float32)


def node_frame(scene: Scene, cfg: CenterPointConfig, device: torch.device) -> NodeFrame:
    """The scene's current sweep and its ``cfg.past_sweeps`` past ones, uploaded as the node holds them."""
    used = scene.sweeps[: cfg.past_sweeps + 1]
    current = used[0]
    points = tuple(torch.from_numpy(as_node_points(s.points).view(np.uint8)).to(device) for s in used)
    transforms = np.stack([past_to_current(current.pose, s.pose).reshape(-1, order="F") for s in used]).astype(np.float32)
    lags = np.array([current.time_s - s.time_s for s in used], dtype=np.float32)
    return NodeFrame(points, np.ascontiguousarray(transforms), lags)


def score_thresholds(params: Mapping, names: Sequence[str]) -> tuple[list[float], list[float]]:
    """The node's distance bins and its thresholds indexed [bin * class_size + label], from the manifest."""
    table = params["detection_score_thresholds"]
    bins = [float(b) for b in table["distance_bin_upper_limits"]]
    scores = table["min_confidence_scores"]
    return bins, [float(scores[name][b]) for b in range(len(bins)) for name in names]


class AutowareOracle:
    """Autoware's kernels on one CUDA device, configured for ``cfg`` as the bundle's manifest describes it."""

    def __init__(self, cfg: CenterPointConfig, settings: AutowareSettings, device: torch.device | str = "cuda",
                 root: str | None = None, cloud_capacity: int = CLOUD_CAPACITY) -> None:
        self.device = torch.device(device)
        if self.device.type != "cuda" or not torch.cuda.is_available():
            raise BackendUnavailable(f"Autoware's kernels run on CUDA; {self.device} is not a CUDA device here")
        major, minor = torch.cuda.get_device_capability(self.device)
        self.lib = build.load(build.build(f"sm_{major}{minor}", root))
        self.cfg = cfg
        params = manifest(cfg, settings)["/**"]["ros__parameters"]["model_params"]
        self.names = list(params["class_names"])
        bins, thresholds = score_thresholds(params, self.names)
        f64 = lambda values: (ctypes.c_double * len(values))(*values)  # noqa: E731
        f32 = lambda values: (ctypes.c_float * len(values))(*values)  # noqa: E731
        err = ctypes.create_string_buffer(ERROR_BYTES)
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device).cuda_stream
            self.handle = self.lib.awml_oracle_new(
                len(self.names), params["point_feature_size"], cloud_capacity, params["max_voxel_size"],
                f64(params["point_cloud_range"]), f64(params["voxel_size"]), params["downsample_factor"],
                params["encoder_in_feature_size"], f32(bins), len(bins), f32(thresholds), settings.circle_nms_dist_threshold,
                f64(params["yaw_norm_thresholds"]), int(params["has_variance"]), stream, err, ERROR_BYTES)
        if not self.handle:
            raise BackendError(f"Autoware's CenterPointConfig or buffers refused the bundle's parameters: {err.value.decode()}")
        grid = (ctypes.c_size_t * 4)()
        self.lib.awml_oracle_grid(self.handle, grid)
        self.grid = tuple(grid)  # grid x, y; head grid x, y
        self.encoder_in = int(params["encoder_in_feature_size"])
        self.max_voxels = int(params["max_voxel_size"])

    def close(self) -> None:
        if self.handle:
            self.lib.awml_oracle_free(self.handle)
            self.handle = None

    def __enter__(self) -> AutowareOracle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def preprocess(self, frame: NodeFrame, offset: int = 0) -> int:
        """CenterPointTRT::preprocess on the frame: its encoder input stays on the device. ``offset`` stands for the
        node's ``std::rand() % cloud_capacity`` (where the fixed shuffle starts; fixed here so a run repeats)."""
        count = len(frame.points)
        pointers = (ctypes.c_void_p * count)(*[p.data_ptr() for p in frame.points])
        sizes = (ctypes.c_size_t * count)(*[p.numel() // INPUT_POINT.itemsize for p in frame.points])
        err = ctypes.create_string_buffer(ERROR_BYTES)
        used = self.lib.awml_oracle_preprocess(
            self.handle, count, pointers, sizes, frame.transforms.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            frame.lags.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), offset, err, ERROR_BYTES)
        if used < 0:
            raise BackendError(f"Autoware's pre-processing failed: {err.value.decode()}")
        return int(used)

    def voxels(self) -> OracleVoxels:
        """The last pre-processing's voxels, in the node's order (atomics decide it), read back to the host."""
        buffers = (ctypes.c_void_p * 4)()
        self.lib.awml_oracle_buffers(self.handle, buffers)
        copy = lambda pointer, count, dtype: self._host(pointer, count, dtype)  # noqa: E731
        features = copy(buffers[0], self.max_voxels * 32 * self.encoder_in, np.float32)
        coors = copy(buffers[1], self.max_voxels * 3, np.int32)
        counts = copy(buffers[2], self.max_voxels, np.float32)
        voxels = min(int(copy(buffers[3], 1, np.uint32)[0]), self.max_voxels)
        return OracleVoxels(coors.reshape(-1, 3)[:voxels].astype(np.int64), counts[:voxels].astype(np.int64),
                            features.reshape(-1, 32, self.encoder_in)[:voxels])

    def _host(self, pointer: int, count: int, dtype) -> np.ndarray:
        """``count`` values of one of the oracle's device buffers, copied to the host after the device's work."""
        out = np.empty(count, dtype)
        torch.cuda.synchronize(self.device)
        result = self.lib.awml_copy_to_host(out.ctypes.data, pointer, out.nbytes)
        if result != 0:
            raise BackendError(f"copying Autoware's buffer to the host failed (cudaError {result})")
        return out

    def decode(self, heads: Mapping[str, torch.Tensor]) -> np.ndarray:
        """CenterPointTRT::postProcess on the head's outputs (batch 1, float32, on this device): [K, 12] rows of
        :data:`BOX_FIELDS`, highest score first, as the kernel leaves them (yaw as atan2(rot0, rot1), before
        ros_utils turns it into the published yaw)."""
        tensors = [heads[name].to(self.device, torch.float32).contiguous() for name in HEAD_ORDER]
        err = ctypes.create_string_buffer(ERROR_BYTES)
        count = self.lib.awml_oracle_postprocess(self.handle, *[t.data_ptr() for t in tensors], err, ERROR_BYTES)
        if count < 0:
            raise BackendError(f"Autoware's post-processing failed: {err.value.decode()}")
        out = np.zeros((count, len(BOX_FIELDS)), np.float32)
        self.lib.awml_oracle_boxes(self.handle, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), count)
        return out

