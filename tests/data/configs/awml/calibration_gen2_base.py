# A dataset base in the shape of AWML's calibration_classification/dataset/t4dataset/gen2_base.py: custom_imports
# that exist only in an AWML checkout, the info files and the transform's visualisation settings.
custom_imports = dict(
    imports=[
        "autoware_ml.calibration_classification.datasets.t4_calibration_classification_dataset",
        "autoware_ml.calibration_classification.datasets.transforms.calibration_classification_transform",
        "autoware_ml.calibration_classification.hooks.result_visualization_hook",
    ],
    allow_failed_imports=False,
)
dataset_type = "T4CalibrationClassificationDataset"
info_train_file_name = "t4dataset_gen2_base_infos_train.pkl"
info_test_file_name = "t4dataset_gen2_base_infos_test.pkl"
transform_config = dict(crop_ratio=0.6, max_distortion=0.001, rgb_weight=0.3)
