"""A project-written config with the structure and values (facts) of AWML 7a6ec07's
``autoware_ml/configs/segmentation3d/dataset/t4dataset/j6gen2_base.py``: written for pytest-awml, its comments and prose left out."""

custom_imports = dict(imports=["autoware_ml.segmentation3d.datasets.t4dataset", "autoware_ml.segmentation3d.datasets.transforms"])

dataset_type = "T4SegDataset"
info_train_file_name = "t4dataset_j6gen2_base_infos_train.pkl"
info_val_file_name = "t4dataset_j6gen2_base_infos_val.pkl"
info_test_file_name = "t4dataset_j6gen2_base_infos_test.pkl"

dataset_version_config_root = "autoware_ml/configs/t4dataset/"
dataset_version_list = ["db_j6gen2_semaseg_v1"]

camera_types = {}
class_names = []

input_modality = dict(use_lidar=True, use_camera=False)

base_class_names = [
    "unpainted",
    "drivable_surface",
    "other_flat_surface",
    "sidewalk",
    "manmade",
    "vegetation",
    "car",
    "bus",
    "emergency_vehicle",
    "train",
    "truck",
    "tractor_unit",
    "semi_trailer",
    "construction_vehicle",
    "forklift",
    "kart",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "personal_mobility",
    "animal",
    "pushable_pullable",
    "traffic_cone",
    "stroller",
    "debris",
    "other_stuff",
    "noise",
    "ghost_point",
    "out_of_sync",
]
base_palette = [
    [0, 0, 0],
    [255, 0, 255],
    [139, 137, 137],
    [75, 0, 75],
    [230, 230, 250],
    [0, 175, 0],
    [0, 150, 245],
    [255, 255, 0],
    [199, 21, 133],
    [0, 139, 139],
    [160, 32, 240],
    [184, 134, 11],
    [135, 60, 0],
    [0, 255, 255],
    [128, 128, 0],
    [124, 252, 0],
    [255, 127, 0],
    [255, 192, 203],
    [255, 0, 0],
    [210, 105, 30],
    [189, 183, 107],
    [153, 50, 204],
    [255, 240, 150],
    [70, 130, 180],
    [210, 180, 140],
    [188, 143, 143],
    [64, 224, 208],
    [245, 245, 220],
    [50, 50, 50],
]

metainfo = dict(base_class_names=base_class_names, base_palette=base_palette)

merge_objects = None
merge_type = None

filter_attributes = None
