"""AWML's MobileNetV2 traffic-light classifiers (projects/MobileNetv2): car and pedestrian."""
