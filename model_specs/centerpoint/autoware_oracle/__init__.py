"""Autoware's own CUDA pre- and post-processing (``autoware_lidar_centerpoint``'s kernels, built from
``$AUTOWARE_ROOT``) as the oracle of the bundle pipeline: what the car computes, run on the same frames.

Opt-in: the recorded outputs (``tests/data/autoware/``) are checked in every CI run without CUDA; the live
comparison runs under ``pytest -m autoware`` on a GPU. The framework never imports this package.
"""
