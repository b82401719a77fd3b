# A dataset base in the shape of AWML's detection3d/dataset/t4dataset/j6gen2_base.py: custom_imports that
# exist only in an AWML checkout, the class list and a name mapping (a few entries of it).
custom_imports = dict(
    imports=[
        "autoware_ml.detection3d.datasets.t4dataset",
        "autoware_ml.detection3d.evaluation.t4metric.t4metric",
    ]
)
dataset_type = "T4Dataset"
info_train_file_name = "t4dataset_j6gen2_base_infos_train.pkl"
info_val_file_name = "t4dataset_j6gen2_base_infos_val.pkl"
class_names = ["car", "truck", "bus", "bicycle", "pedestrian"]
name_mapping = {
    "vehicle.car": "car",
    "vehicle.truck": "truck",
    "vehicle.bus (bendy & rigid)": "bus",
    "vehicle.bicycle": "bicycle",
    "pedestrian.adult": "pedestrian",
}
metainfo = dict(classes=class_names)
num_class = len(class_names)
