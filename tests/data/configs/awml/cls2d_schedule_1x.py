"""A project-written config with the structure and values (facts) of AWML 7a6ec07's
``autoware_ml/configs/classification2d/schedules/schedule_1x.py``: written for pytest-awml, its comments and prose left out."""

optimizer = dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=0.0001)
optimizer_config = dict(grad_clip=None)

lr_config = dict(policy="step", warmup="linear", warmup_iters=500, warmup_ratio=0.001, step=[8, 11])
