"""Reading an AWML/mmdet3d training config into :class:`CenterPointConfig`, without mmdet3d.

mmengine's ``Config`` is used when it is installed (it is what trained the model and knows every
config feature). Without it, a restricted evaluator reads the file: module-level assignments of
literals, ``dict()``/``list()``/``tuple()``, arithmetic, names defined earlier and ``_base_``
inheritance. Nothing in the file is executed, so a config is as safe to read as a JSON file;
anything beyond that subset (imports, other calls) is refused with a message that names it.
"""

from __future__ import annotations

import ast
import dataclasses
import operator
from pathlib import Path
from typing import Any

from model_specs.centerpoint.config import CenterPointConfig
from pytest_awml.errors import SpecError

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_CALLS = {"dict": dict, "list": list, "tuple": tuple, "sum": sum, "len": len, "int": int, "float": float,
          "round": round, "min": min, "max": max, "abs": abs}
SUPPORTED = {"model": "CenterPoint", "pts_voxel_encoder": ("PillarFeatureNet", "BackwardPillarFeatureNet"),
             "pts_backbone": "SECOND", "pts_neck": "SECONDFPN", "pts_bbox_head": "CenterHead"}


def read_config(path: Path) -> dict[str, Any]:
    try:
        from mmengine import Config
    except ImportError:
        return _read_restricted(Path(path))
    return Config.fromfile(str(path)).to_dict()


def _fail(path: Path, problem: str) -> SpecError:
    return SpecError("centerpoint (config)", f"--awml-config {path}", problem, "use a plain AWML/mmdet3d config, or install mmengine to read this one")


def _read_restricted(path: Path) -> dict[str, Any]:
    tree = ast.parse(path.read_text(), filename=str(path))
    scope: dict[str, Any] = {}

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict):
            return {value(k): value(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Name):
            if node.id not in scope:
                raise _fail(path, f"line {node.lineno}: {node.id!r} is not defined before use")
            return scope[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = value(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Slice):
            part = lambda n: None if n is None else value(n)  # noqa: E731
            return slice(part(node.lower), part(node.upper), part(node.step))
        if isinstance(node, ast.Subscript):
            return value(node.value)[value(node.slice)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS:
            args = [value(a) for a in node.args]
            kwargs = {k.arg: value(k.value) for k in node.keywords}
            return _CALLS[node.func.id](*args, **kwargs)
        raise _fail(path, f"line {getattr(node, 'lineno', '?')}: {ast.unparse(node)[:60]!r} is outside the readable subset")

    for statement in tree.body:
        if isinstance(statement, ast.Assign) and all(isinstance(t, ast.Name) for t in statement.targets):
            result = value(statement.value)
            for target in statement.targets:
                scope[target.id] = result
        elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            raise _fail(path, f"line {statement.lineno}: imports are not read without mmengine")
        else:
            raise _fail(path, f"line {statement.lineno}: {type(statement).__name__} statements are not read without mmengine")
    bases = scope.pop("_base_", [])
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged = _merge(merged, _read_restricted((path.parent / base).resolve()))
    return _merge(merged, scope)


def _merge(base: dict, child: dict) -> dict:
    """mmengine's inheritance: dicts merge key by key unless the child says ``_delete_=True``."""
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not value.get("_delete_", False):
            out[key] = _merge(out[key], value)
        else:
            out[key] = {k: v for k, v in value.items() if k != "_delete_"} if isinstance(value, dict) else value
    return out


def to_centerpoint(config: dict[str, Any], path: Path, base: CenterPointConfig) -> CenterPointConfig:
    model = config.get("model")
    if not isinstance(model, dict):
        raise _fail(path, "no model = dict(...) section")
    for section, allowed in SUPPORTED.items():
        node = model if section == "model" else model.get(section)
        kind = node.get("type") if isinstance(node, dict) else None
        if kind not in ((allowed,) if isinstance(allowed, str) else allowed):
            raise _fail(path, f"{section}: not supported: {kind}")
    encoder, backbone, neck, head = (model[k] for k in ("pts_voxel_encoder", "pts_backbone", "pts_neck", "pts_bbox_head"))
    if encoder.get("with_distance") or not encoder.get("with_cluster_center", True) or not encoder.get("with_voxel_center", True):
        raise _fail(path, "pts_voxel_encoder: not supported: decoration other than cluster-centre + voxel-centre offsets")
    tasks = head.get("tasks", [])
    if len(tasks) != 1:
        raise _fail(path, f"pts_bbox_head: not supported: {len(tasks)} tasks (this model has one CenterHead task)")
    voxel_layer = model.get("data_preprocessor", {}).get("voxel_layer", {})
    coder = head.get("bbox_coder", {})
    test = model.get("test_cfg", {}).get("pts", {})
    max_voxels = voxel_layer.get("max_voxels", base.max_voxels)
    max_voxels = max(max_voxels) if isinstance(max_voxels, (list, tuple)) else max_voxels
    pcr = tuple(float(v) for v in voxel_layer.get("point_cloud_range", encoder.get("point_cloud_range", base.point_cloud_range)))
    size = tuple(float(v) for v in voxel_layer.get("voxel_size", encoder.get("voxel_size", base.voxel_size)))
    return dataclasses.replace(
        base,
        point_cloud_range=pcr,
        voxel_size=size,
        max_points_per_voxel=int(voxel_layer.get("max_num_points", base.max_points_per_voxel)),
        max_voxels=int(max_voxels),
        min_voxels=min(base.min_voxels, int(max_voxels)),
        opt_voxels=min(base.opt_voxels, int(max_voxels)),
        point_features=int(encoder.get("in_channels", base.point_features)),
        pfn_channels=tuple(encoder.get("feat_channels", base.pfn_channels)),
        backbone_channels=tuple(backbone["out_channels"]),
        backbone_layers=tuple(backbone["layer_nums"]),
        backbone_strides=tuple(backbone["layer_strides"]),
        neck_channels=tuple(neck["out_channels"]),
        neck_upsample_strides=tuple(float(s) for s in neck["upsample_strides"]),
        head_shared_channels=int(head.get("share_conv_channel", base.head_shared_channels)),
        head_conv_channels=int(head.get("share_conv_channel", base.head_conv_channels)),
        head_final_kernel=int(head.get("separate_head", {}).get("final_kernel", base.head_final_kernel)),
        class_names=tuple(tasks[0]["class_names"]),
        heatmap_init_bias=float(head.get("separate_head", {}).get("init_bias", base.heatmap_init_bias)),
        out_size_factor=int(coder.get("out_size_factor", base.out_size_factor)),
        score_threshold=float(coder.get("score_threshold", base.score_threshold)),
        max_detections_pre_nms=int(coder.get("max_num", base.max_detections_pre_nms)),
        post_center_range=tuple(float(v) for v in coder.get("post_center_range", base.post_center_range)),
        nms_min_radius=float((test.get("min_radius") or [base.nms_min_radius])[0]),
        post_max_size=int(test.get("post_max_size", base.post_max_size)),
    )
