# A dataset base in the shape of AWML's detection2d/dataset/t4dataset/t4dataset_dynamic_recognition.py: the
# eight dynamic-object classes in AWML's order and a few entries of its name mapping.
dataset_version_list = ["db_gsm8_v2", "db_jpntaxi_v1"]
classes = ("unknown", "car", "truck", "bus", "trailer", "motorcycle", "pedestrian", "bicycle")
class_mappings = {
    "vehicle.car": "car",
    "vehicle.truck": "truck",
    "vehicle.bus": "bus",
    "vehicle.trailer": "trailer",
    "human.pedestrian.adult": "pedestrian",
}
