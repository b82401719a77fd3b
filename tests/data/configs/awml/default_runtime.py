# Runtime settings in the shape of AWML's autoware_ml/configs/detection3d/default_runtime.py (written for
# pytest-awml's tests: the reader must take a _base_ that holds nothing the model needs).
default_scope = "mmdet3d"
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50),
    checkpoint=dict(type="CheckpointHook", interval=-1),
)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="nccl", timeout=7200))
log_level = "INFO"
load_from = None
resume = False
