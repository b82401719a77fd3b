"""YOLOX with an ELAN-style backbone, as AWML's YOLOX_opt_elan deploys it (2D detection)."""
