"""Reading an AWML/mmdet3d training config into :class:`CenterPointConfig`, without mmdet3d.

mmengine's ``Config`` reads the file when it is installed (it trained the model and knows every
config feature), with ``custom_imports`` left unimported: reading values needs none of them, and
AWML's (``projects.CenterPoint.models``…) exist only in an AWML checkout. Without mmengine, a
restricted evaluator reads the file with mmengine's semantics for what AWML's configs use:
``_base_`` chains (bases read first, their variables reachable as ``_base_.x`` and
``{{_base_.x}}``, the child merged into them key by key unless ``_delete_=True``), assignments and
augmented assignments (``custom_imports["imports"] += …``) to names and subscripts, ``if`` blocks,
literals, ``dict()``/``list()``…, arithmetic, comparisons. Nothing in the file is executed or
imported; anything beyond that subset is refused with a message that names the line.

``to_centerpoint`` then reads every field the model depends on. A key a config leaves out takes the
default of the mmdet3d class that would read it (not this project's), and every component type is
checked by name: a model this project does not implement is refused, never approximated.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import logging
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from model_specs.centerpoint.config import POINT_FEATURES, CenterPointConfig
from pytest_awml.errors import SpecError

log = logging.getLogger(__name__)

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
            ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
            ast.Is: operator.is_, ast.IsNot: operator.is_not}
_CALLS = {"dict": dict, "list": list, "tuple": tuple, "sum": sum, "len": len, "int": int, "float": float,
          "round": round, "min": min, "max": max, "abs": abs, "range": range, "str": str, "bool": bool}
# A config computes small numbers; an exponent beyond this is an attempt to stall the reader (9 ** 9 ** 9).
MAX_EXPONENT = 64
BASE_KEY, DELETE_KEY = "_base_", "_delete_"
_BASE_VARIABLE = re.compile(r"\{\{\s*" + BASE_KEY + r"\.([\w.]+)\s*\}\}")

# Component types this project implements, by config section. AWML registers subclasses under
# mmdet3d's own names (SECOND, SECONDFPN, CenterHead, CenterPointBBoxCoder) that add layer freezing,
# class-wise losses and a y-axis decode option, none of which changes inference; CustomSeparateHead
# only sets the heatmap bias at construction.
SUPPORTED = {
    "model": ("CenterPoint",),
    "data_preprocessor": ("Det3DDataPreprocessor",),
    "pts_voxel_encoder": ("PillarFeatureNet",),
    "pts_middle_encoder": ("PointPillarsScatter",),
    "pts_backbone": ("SECOND",),
    "pts_neck": ("SECONDFPN",),
    "pts_bbox_head": ("CenterHead",),
    "separate_head": ("SeparateHead", "CustomSeparateHead"),
    "bbox_coder": ("CenterPointBBoxCoder",),
}
_NORMS = ("BN", "BN1d", "BN2d", "SyncBN", "NaiveSyncBN2d")  # BatchNorm at inference, whatever trained it
_HEADS = ("reg", "height", "dim", "rot", "vel")

# mmdet3d 1.4's constructor defaults, for keys a config leaves out (facts from mmdet3d's signatures).
MMDET3D_DEFAULTS = {
    "pillar_feature_net": dict(in_channels=4, feat_channels=(64,), with_distance=False, with_cluster_center=True,
                               with_voxel_center=True, mode="max", legacy=True, norm_cfg=dict(type="BN1d", eps=1e-3, momentum=0.01)),
    "second": dict(out_channels=(128, 128, 256), layer_nums=(3, 5, 5), layer_strides=(2, 2, 2),
                   norm_cfg=dict(type="BN", eps=1e-3, momentum=0.01)),
    "second_fpn": dict(out_channels=(256, 256, 256), upsample_strides=(1, 2, 4), use_conv_for_no_stride=False,
                       norm_cfg=dict(type="BN", eps=1e-3, momentum=0.01)),
    "center_head": dict(share_conv_channel=64, num_heatmap_convs=2, norm_cfg=dict(type="BN2d"), norm_bbox=True),
    "separate_head": dict(head_conv=64, final_kernel=1, init_bias=-2.19, norm_cfg=dict(type="BN2d")),
    "bbox_coder": dict(max_num=100, score_threshold=None, post_center_range=None),
    "voxel_layer": dict(max_voxels=20000),
    "batch_norm": dict(eps=1e-5, momentum=0.1),  # torch's, which mmcv's BN layers keep unless told
}


@dataclass(frozen=True)
class TrainingConfig:
    """A config file's variables (bases merged) and what reading it left out."""

    path: Path
    values: Mapping[str, Any]
    notes: tuple[str, ...] = ()


def _fail(path: Path, problem: str, fix: str = "use a plain AWML/mmdet3d CenterPoint config, or install mmengine to read this one") -> SpecError:
    return SpecError("centerpoint (config)", f"--awml-config {path}", problem, fix)


def read_config(path: Path) -> TrainingConfig:
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file", "give the path of the training config (.py)")
    try:
        from mmengine import Config
    except ImportError:
        values = _Reader(path).read()
    else:
        try:
            values = Config.fromfile(str(path), import_custom_modules=False).to_dict()
        except (SyntaxError, OSError, KeyError, ValueError, TypeError, NameError, AttributeError) as exc:
            raise _fail(path, f"mmengine cannot read it: {type(exc).__name__}: {exc}", "fix the config file") from None
    return TrainingConfig(path, values, _absent_custom_imports(values))


def _absent_custom_imports(values: Mapping[str, Any]) -> tuple[str, ...]:
    """A note naming the ``custom_imports`` modules absent here: the reader never imports them,
    and only the model types they would register could matter (``to_centerpoint`` checks those)."""
    imports = (values.get("custom_imports") or {}).get("imports") or []
    absent = [name for name in imports if importlib.util.find_spec(name.split(".")[0]) is None]
    if not absent:
        return ()
    note = f"custom_imports not imported (not installed here): {', '.join(absent)}"
    log.warning("--awml-config: %s", note)
    return (note,)


class _Reader:
    """mmengine's config semantics for the subset AWML's configs use, evaluated without exec."""

    def __init__(self, path: Path, chain: tuple[Path, ...] = ()) -> None:
        self.path = path.resolve()
        if self.path in chain:
            raise _fail(path, f"_base_ includes itself ({' -> '.join(p.name for p in (*chain, self.path))})")
        self.chain = (*chain, self.path)
        self.scope: dict[str, Any] = {}
        self.base: dict[str, Any] = {}

    def read(self) -> dict[str, Any]:
        if not self.path.is_file():
            raise _fail(self.path, "no such file (named in a _base_ list)" if len(self.chain) > 1 else "no such file")
        # mmengine turns {{_base_.x}} into a placeholder before parsing; here it becomes _base_.x
        text = _BASE_VARIABLE.sub(lambda m: f"{BASE_KEY}.{m.group(1)}", self.path.read_text())
        try:
            tree = ast.parse(text, filename=str(self.path))
        except SyntaxError as exc:
            raise _fail(self.path, f"line {exc.lineno}: syntax error: {exc.msg}", "fix the config file") from None
        for statement in tree.body:  # mmengine reads every base before running the child
            if isinstance(statement, ast.Assign) and [getattr(t, "id", None) for t in statement.targets] == [BASE_KEY]:
                self._read_bases(self.value(statement.value))
        self.run(tree.body)
        return _merge(self.base, self.scope)

    def _read_bases(self, bases: Any) -> None:
        for name in [bases] if isinstance(bases, str) else bases:
            values = _Reader(self.path.parent / name, self.chain).read()
            repeated = sorted(set(values) & set(self.base))
            if repeated:
                raise _fail(self.path, f"_base_ files define the same key(s) {repeated} (mmengine refuses that too)")
            self.base.update(values)

    def run(self, statements: list[ast.stmt]) -> None:
        for statement in statements:
            if isinstance(statement, ast.Assign):
                if [getattr(t, "id", None) for t in statement.targets] == [BASE_KEY]:
                    continue  # read first, in read()
                result = self.value(statement.value)
                for target in statement.targets:
                    self.assign(target, result)
            elif isinstance(statement, ast.AugAssign) and type(statement.op) in _BINOPS:
                current = self.value(statement.target)  # read as a value: ctx is Store, which value() ignores
                self.assign(statement.target, self.binop(type(statement.op), current, self.value(statement.value), statement))
            elif isinstance(statement, ast.If):
                self.run(statement.body if self.value(statement.test) else statement.orelse)
            elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                continue  # a docstring
            elif isinstance(statement, (ast.Import, ast.ImportFrom)):
                raise _fail(self.path, f"line {statement.lineno}: imports are not read without mmengine")
            else:
                raise _fail(self.path, f"line {statement.lineno}: {type(statement).__name__} statements are not read without mmengine")

    def assign(self, target: ast.expr, result: Any) -> None:
        if isinstance(target, ast.Name):
            self.scope[target.id] = result
        elif isinstance(target, ast.Subscript):
            container = self.value(target.value)
            if not isinstance(container, (dict, list)):
                raise _fail(self.path, f"line {target.lineno}: cannot assign into a {type(container).__name__}")
            container[self.value(target.slice)] = result
        else:
            raise _fail(self.path, f"line {target.lineno}: assignments to {ast.unparse(target)!r} are not read without mmengine")

    def binop(self, op: type, left: Any, right: Any, node: ast.AST) -> Any:
        if op is ast.Pow and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise _fail(self.path, f"line {node.lineno}: exponent {right} is beyond what a config needs (max {MAX_EXPONENT})")
        try:
            return _BINOPS[op](left, right)
        except (TypeError, ZeroDivisionError, OverflowError) as exc:
            raise _fail(self.path, f"line {node.lineno}: {ast.unparse(node)[:60]!r}: {exc}") from None

    def value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [self.value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise _fail(self.path, f"line {node.lineno}: '**' in a dict literal is outside the readable subset")
            return {self.value(k): self.value(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Name):
            if node.id == BASE_KEY:
                return self.base
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            if node.id not in self.scope:
                raise _fail(self.path, f"line {node.lineno}: {node.id!r} is not defined before use")
            return self.scope[node.id]
        if isinstance(node, ast.Attribute):  # ConfigDict's attribute access: _base_.model.pts_neck
            owner = self.value(node.value)
            if not isinstance(owner, dict) or node.attr not in owner:
                raise _fail(self.path, f"line {node.lineno}: {ast.unparse(node)!r} names nothing defined")
            return owner[node.attr]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return self.binop(type(node.op), self.value(node.left), self.value(node.right), node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
            v = self.value(node.operand)
            return -v if isinstance(node.op, ast.USub) else (not v if isinstance(node.op, ast.Not) else v)
        if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            left = self.value(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.value(right_node)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.BoolOp):
            values = (self.value(v) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.IfExp):
            return self.value(node.body) if self.value(node.test) else self.value(node.orelse)
        if isinstance(node, ast.Slice):
            part = lambda n: None if n is None else self.value(n)  # noqa: E731
            return slice(part(node.lower), part(node.upper), part(node.step))
        if isinstance(node, ast.Subscript):
            container = self.value(node.value)
            try:
                return container[self.value(node.slice)]
            except (KeyError, IndexError, TypeError) as exc:
                raise _fail(self.path, f"line {node.lineno}: {ast.unparse(node)[:60]!r}: {type(exc).__name__}: {exc}") from None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS:
            args = [self.value(a) for a in node.args]
            kwargs = {k.arg: self.value(k.value) for k in node.keywords if k.arg is not None}
            if len(kwargs) != len(node.keywords):
                raise _fail(self.path, f"line {node.lineno}: '**' in a call is outside the readable subset")
            result = _CALLS[node.func.id](*args, **kwargs)
            return list(result) if isinstance(result, range) else result
        raise _fail(self.path, f"line {getattr(node, 'lineno', '?')}: {ast.unparse(node)[:60]!r} is outside the readable subset")


def _merge(base: dict, child: dict) -> dict:
    """mmengine's inheritance: dicts merge key by key unless the child says ``_delete_=True``."""
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not value.get(DELETE_KEY, False):
            out[key] = _merge(out[key], value)
        else:
            out[key] = {k: v for k, v in value.items() if k != DELETE_KEY} if isinstance(value, dict) else value
    return out


def to_centerpoint(config: TrainingConfig, base: CenterPointConfig) -> CenterPointConfig:
    """The model a config describes, as a :class:`CenterPointConfig`.

    ``base`` contributes only what a training config cannot say: the TensorRT profile's min/opt
    pillars (capped at the config's max), the seeded-weight calibration and the export opset.
    """
    return _ConfigFields(config.path, config.values).centerpoint(base)


class _ConfigFields:
    """One config's sections, read with the defaults mmdet3d would apply."""

    def __init__(self, path: Path, values: Mapping[str, Any]) -> None:
        self.path = path
        self.values = values
        model = values.get("model")
        if not isinstance(model, dict):
            raise _fail(path, "no model = dict(...) section")
        self.model = model
        self.typed("model", model)
        for section in ("data_preprocessor", "pts_voxel_encoder", "pts_middle_encoder", "pts_backbone", "pts_neck", "pts_bbox_head"):
            self.typed(section, model.get(section))
        head = model["pts_bbox_head"]
        self.typed("separate_head", head.get("separate_head"))
        self.typed("bbox_coder", head.get("bbox_coder"))

    def typed(self, section: str, node: Any) -> dict:
        kind = node.get("type") if isinstance(node, dict) else None
        kind = kind.split(".")[-1] if isinstance(kind, str) else kind  # "mmdet.SeparateHead" → its class name
        if kind not in SUPPORTED[section]:
            raise _fail(self.path, f"{section}: not supported: {kind}",
                        f"this spec implements {section} as {' or '.join(SUPPORTED[section])}")
        return node

    def unsupported(self, section: str, what: str) -> SpecError:
        return _fail(self.path, f"{section}: not supported: {what}")

    def norm(self, section: str, cfg: Mapping[str, Any] | None) -> tuple[float, float]:
        cfg = cfg or {}
        if cfg.get("type", "BN") not in _NORMS:
            raise self.unsupported(section, f"norm {cfg.get('type')}")
        defaults = MMDET3D_DEFAULTS["batch_norm"]
        return float(cfg.get("eps", defaults["eps"])), float(cfg.get("momentum", defaults["momentum"]))

    def point_features(self, in_channels: int, base: CenterPointConfig) -> tuple[tuple[str, ...], int]:
        """The meaning of the encoder's input columns and the past sweeps the test pipeline loads."""
        pipeline = self.values.get("test_pipeline")
        if not isinstance(pipeline, list):  # a model-only config: keep the spec's reading if it fits
            if in_channels != base.point_features:
                raise _fail(self.path, f"pts_voxel_encoder.in_channels is {in_channels} and the config has no test_pipeline "
                            "to say what the point features are")
            return base.point_feature_names, base.past_sweeps
        sweeps = [t for t in pipeline if isinstance(t, dict) and t.get("type") == "LoadPointsFromMultiSweeps"]
        if in_channels == 4:
            return POINT_FEATURES[:4], 0
        if in_channels == 5 and sweeps and 4 in list(sweeps[0].get("use_dim", [0, 1, 2, 4])):
            return POINT_FEATURES, int(sweeps[0].get("sweeps_num", 10))
        raise self.unsupported("pts_voxel_encoder", f"in_channels={in_channels} without LoadPointsFromMultiSweeps writing the "
                               "time lag into column 4 (x, y, z, intensity[, time_lag] are implemented)")

    def centerpoint(self, base: CenterPointConfig) -> CenterPointConfig:
        defaults = MMDET3D_DEFAULTS
        model = self.model
        encoder = {**defaults["pillar_feature_net"], **model["pts_voxel_encoder"]}
        backbone = {**defaults["second"], **model["pts_backbone"]}
        neck = {**defaults["second_fpn"], **model["pts_neck"]}
        head = {**defaults["center_head"], **model["pts_bbox_head"]}
        separate = {**defaults["separate_head"], **head["separate_head"]}
        coder = {**defaults["bbox_coder"], **head["bbox_coder"]}
        voxel_layer = {**defaults["voxel_layer"], **(model["data_preprocessor"].get("voxel_layer") or {})}
        test = (model.get("test_cfg") or {}).get("pts") or {}
        if encoder["legacy"] or encoder["with_distance"] or not encoder["with_cluster_center"] or not encoder["with_voxel_center"]:
            raise self.unsupported("pts_voxel_encoder", "decoration other than cluster-centre + voxel-centre (x, y, z) offsets "
                                   "with legacy=False")
        if encoder["mode"] != "max":
            raise self.unsupported("pts_voxel_encoder", f"mode={encoder['mode']!r}")
        if model["data_preprocessor"].get("voxel_type", "hard") != "hard":
            raise self.unsupported("data_preprocessor", f"voxel_type={model['data_preprocessor']['voxel_type']!r}")
        tasks = head.get("tasks", [])
        if len(tasks) != 1:
            raise self.unsupported("pts_bbox_head", f"{len(tasks)} tasks (this model has one CenterHead task)")
        common = head.get("common_heads", {})
        if set(common) != set(_HEADS) or len({n for _, n in common.values()} | {head["num_heatmap_convs"]}) != 1:
            raise self.unsupported("pts_bbox_head", f"common_heads {common} (implemented: {', '.join(_HEADS)} with one "
                                   "num_conv shared with num_heatmap_convs)")
        if not head["norm_bbox"]:
            raise self.unsupported("pts_bbox_head", "norm_bbox=False")
        if test.get("nms_type", "circle") != "circle":
            raise self.unsupported("test_cfg.pts", f"nms_type={test.get('nms_type')!r}")
        pcr = tuple(float(v) for v in voxel_layer.get("point_cloud_range", encoder.get("point_cloud_range", base.point_cloud_range)))
        size = tuple(float(v) for v in voxel_layer.get("voxel_size", encoder.get("voxel_size", base.voxel_size)))
        for section, node in (("pts_voxel_encoder", encoder), ("bbox_coder", coder)):
            for key, value, n in (("point_cloud_range", pcr, 6), ("voxel_size", size, 3)):
                other = node.get("pc_range" if section == "bbox_coder" and key == "point_cloud_range" else key)
                if other is not None and tuple(float(v) for v in other)[:n] != value[: len(other)]:
                    raise _fail(self.path, f"{section}.{key} {list(other)} differs from the voxelizer's {list(value)}",
                                "make the voxel layer, the encoder and the bbox coder agree")
        max_voxels = voxel_layer["max_voxels"]
        max_voxels = int(max_voxels[1] if isinstance(max_voxels, (list, tuple)) else max_voxels)  # [1]: mmcv's test-time value
        names, past_sweeps = self.point_features(int(encoder["in_channels"]), base)
        return dataclasses.replace(
            base,
            point_cloud_range=pcr,
            voxel_size=size,
            max_points_per_voxel=int(voxel_layer.get("max_num_points", base.max_points_per_voxel)),
            max_voxels=max_voxels,
            min_voxels=min(base.min_voxels, max_voxels),
            opt_voxels=min(base.opt_voxels, max_voxels),
            point_feature_names=names,
            past_sweeps=past_sweeps,
            pfn_channels=tuple(int(c) for c in encoder["feat_channels"]),
            pfn_norm=self.norm("pts_voxel_encoder", encoder["norm_cfg"]),
            backbone_channels=tuple(int(c) for c in backbone["out_channels"]),
            backbone_layers=tuple(int(n) for n in backbone["layer_nums"]),
            backbone_strides=tuple(int(s) for s in backbone["layer_strides"]),
            backbone_norm=self.norm("pts_backbone", backbone["norm_cfg"]),
            neck_channels=tuple(int(c) for c in neck["out_channels"]),
            neck_upsample_strides=tuple(float(s) for s in neck["upsample_strides"]),
            neck_norm=self.norm("pts_neck", neck["norm_cfg"]),
            use_conv_for_no_stride=bool(neck["use_conv_for_no_stride"]),
            head_shared_channels=int(head["share_conv_channel"]),
            head_conv_channels=int(separate["head_conv"]),
            head_num_conv=int(head["num_heatmap_convs"]),
            head_final_kernel=int(separate["final_kernel"]),
            head_norm=self.norm("pts_bbox_head", head["norm_cfg"]),
            class_names=tuple(tasks[0]["class_names"]),
            heatmap_init_bias=float(separate["init_bias"]),
            out_size_factor=int(coder.get("out_size_factor", base.out_size_factor)),
            score_threshold=float(coder["score_threshold"]) if coder["score_threshold"] is not None else 0.0,
            max_detections_pre_nms=int(coder["max_num"]),
            post_center_range=tuple(float(v) for v in (coder["post_center_range"] or base.post_center_range)),
            nms_min_radius=float((test.get("min_radius") or [base.nms_min_radius])[0]),
            post_max_size=int(test.get("post_max_size", base.post_max_size)),
        )
