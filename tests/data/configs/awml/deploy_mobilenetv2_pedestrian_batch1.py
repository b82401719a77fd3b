"""A project-written mmdeploy config with the structure and values of AWML 7a6ec07's
``projects/MobileNetv2/configs/deploy/MobileNetv2-PedestrianTrafficLight/ped_mobilenet-v2-224x224_batch_1.py`` (facts):
the pedestrian classifier exported at one static batch of 1."""

codebase_config = dict(type="mmpretrain", task="Classification", model_type="end2end")
onnx_config = dict(
    type="onnx", opset_version=11, export_params=True, keep_initializers_as_inputs=False,
    input_names=["input"], output_names=["output"], input_shape=[224, 224],
    save_file="ped_traffic_light_classifier_mobilenetv2_batch_1.onnx",
)
backend_config = dict(
    type="tensorrt",
    common_config=dict(max_workspace_size=1 << 30),
    model_inputs=[dict(input_shapes=dict(input=dict(min_shape=[1, 3, 224, 224], opt_shape=[1, 3, 224, 224], max_shape=[1, 3, 224, 224])))],
)
