# Runtime settings in the shape of AWML's autoware_ml/configs/detection2d/default_runtime.py (written for
# pytest-awml's tests: a _base_ that holds nothing the model needs).
default_scope = "mmdet"
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50),
    checkpoint=dict(type="CheckpointHook", interval=1),
)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="nccl"))
log_level = "INFO"
load_from = None
resume = False
