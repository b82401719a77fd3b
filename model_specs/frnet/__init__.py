"""AWML's FRNet lidar semantic segmentation (projects/FRNet)."""
