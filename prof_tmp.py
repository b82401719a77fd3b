"""Temporary: where does the CUDA pipeline's pre/post time go (full CenterPoint, fp16)."""
import time, torch
from model_specs.centerpoint.spec import SPEC
from model_specs.centerpoint.voxelize import decorate, densify, scatter, voxelize
from pytest_awml.device import Device, Precision, Target
from pytest_awml.runners.base import RunnerSource
from pytest_awml.runners.pytorch import PyTorchBackend
spec = SPEC; model = spec.build_model(None, 0); cfg = model.cfg
scene = spec.make_samples(1, 7)[0]
target = Target("pytorch", Device("cuda", 0), Precision.FP16)
runners = {c.name: PyTorchBackend().create_runner(RunnerSource(c.name, c.input_names, c.output_names, c.extract(model), artifact=None), target).open() for c in spec.components}
pipe = spec.pipeline.build(model, runners)
for _ in range(5): pipe(scene)
torch.cuda.synchronize()
dev = torch.device("cuda")
def t(name, f, n=20):
    f(); torch.cuda.synchronize(); s=time.perf_counter()
    for _ in range(n): r=f()
    torch.cuda.synchronize(); print(f"{name}: {(time.perf_counter()-s)/n*1e3:.3f} ms", flush=True); return r
pts = t("densify", lambda: densify(scene.sweeps, cfg, dev))
vox = t("voxelize", lambda: voxelize(pts, cfg))
feat = t("decorate", lambda: decorate(vox, cfg))
print("voxels", vox.features.shape, pts.shape)
with torch.inference_mode():
    heads = runners["pts_backbone_neck_head"].run_tensors({"spatial_features": scatter(runners["pts_voxel_encoder"].run_tensors({"input_features": feat.half() if False else feat})["pillar_features"], vox.coors, cfg)})
t("decode", lambda: pipe.decoder(heads))
r = pipe(scene); print({k: round(v, 3) for k, v in r.stages_ms.items()})
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
    for _ in range(5): pipe(scene)
    torch.cuda.synchronize()
print(p.key_averages().table(sort_by="cpu_time_total", row_limit=45))
print(p.key_averages().table(sort_by="cuda_time_total", row_limit=25))
