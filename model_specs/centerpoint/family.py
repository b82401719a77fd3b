"""AWML's CenterPoint family as specs, each built from its training config through ``--awml-config``'s reader.

CenterPoint-ShortRange (0.16 m pillars over ±51.2 m, BackwardPillarFeatureNet, SECOND/SECONDFPN, heads at the
grid's resolution) and CenterPoint-ConvNeXtPC (0.2 m pillars over ±121.6 m, BackwardPillarFeatureNet,
ConvNeXt_PC standard or small, heads at stride 4), plus a ``-tiny`` topology of each for CI. The configs
under ``configs/`` have the structure and model values of AWML's files (tier4/AWML 7a6ec07, named in each
file's header); the spec is whatever the reader makes of them, so a reader change reaches these specs as it
would reach a user's ``--awml-config``. ``tests/test_centerpoint_family.py`` holds each to what AWML's own
modules computed (recorded under ``tests/data/mmdet3d/``).

The entry points name the factories below: a spec's config is read only when that spec is asked for.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

from model_specs.centerpoint.config import FULL, TINY, CenterPointConfig
from model_specs.centerpoint.mmconfig import read_config, to_centerpoint
from model_specs.centerpoint.scene import SceneConfig
from model_specs.centerpoint.spec import make_spec
from pytest_awml.spec import LatencySettings, ModelSpec

CONFIGS = Path(__file__).with_name("configs")


@dataclass(frozen=True)
class Member:
    """One family member: its spec name, its config file, the configuration the config's silent fields come
    from (TensorRT profile min/opt, seeded-weight calibration, opset: see ``to_centerpoint``) and its scan."""

    name: str
    config: str
    base: CenterPointConfig
    rings: int
    objects: int
    tiny: bool


MEMBERS = {m.name: m for m in (
    Member("centerpoint-shortrange", "centerpoint_shortrange.py", FULL, rings=64, objects=40, tiny=False),
    Member("centerpoint-shortrange-tiny", "centerpoint_shortrange_tiny.py", TINY, rings=32, objects=12, tiny=True),
    Member("centerpoint-convnextpc", "centerpoint_convnextpc.py", FULL, rings=64, objects=60, tiny=False),
    Member("centerpoint-convnextpc-small", "centerpoint_convnextpc_small.py", FULL, rings=64, objects=60, tiny=False),
    Member("centerpoint-convnextpc-tiny", "centerpoint_convnextpc_tiny.py", TINY, rings=32, objects=12, tiny=True),
)}


def model_config(name: str) -> CenterPointConfig:
    """The member's model, as ``--awml-config`` reads its config file."""
    member = MEMBERS[name]
    return to_centerpoint(read_config(CONFIGS / member.config), member.base)


def scene_config(name: str, cfg: CenterPointConfig) -> SceneConfig:
    """A lidar whose reach covers the grid's corners, with the member's rings and objects."""
    member = MEMBERS[name]
    r = cfg.point_cloud_range
    reach = round(max(abs(v) for v in r[:2] + r[3:5]) * math.sqrt(2), 1)
    return SceneConfig(max_range=reach, rings=member.rings, azimuth_steps=1024, objects=member.objects)


# Latency rounds as the centerpoint specs have them: a full-size backbone round takes seconds on a CPU.
LATENCY = {True: (LatencySettings(rounds=5, warmup_rounds=1), LatencySettings(rounds=5, warmup_rounds=1)),
           False: (LatencySettings(rounds=10, warmup_rounds=2), LatencySettings(rounds=3, warmup_rounds=1))}


@functools.cache
def spec(name: str) -> ModelSpec:
    cfg = model_config(name)
    encoder, backbone = LATENCY[MEMBERS[name].tiny]
    return make_spec(name, cfg, scene_config(name, cfg), encoder_latency=encoder, backbone_latency=backbone)


# The entry points (pyproject ``pytest_awml.specs``): factories, so that loading one reads one config.
shortrange = functools.partial(spec, "centerpoint-shortrange")
shortrange_tiny = functools.partial(spec, "centerpoint-shortrange-tiny")
convnextpc = functools.partial(spec, "centerpoint-convnextpc")
convnextpc_small = functools.partial(spec, "centerpoint-convnextpc-small")
convnextpc_tiny = functools.partial(spec, "centerpoint-convnextpc-tiny")
