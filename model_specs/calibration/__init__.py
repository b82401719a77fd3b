"""The calibration-status classifier: ResNet-18 on camera BGR + projected lidar depth and intensity."""
