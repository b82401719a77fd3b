"""The project's tests load the heavy native libraries once, before any test runs.

pytester puts ``sys.modules`` back as it found it after every test that uses it, so a library first
imported inside such a test is dropped and the next test imports it again. torch's C extension cannot
be initialised twice in one process: that second import crashed the garbage collector (seen with the
project's tests run in file order). Importing them here makes them part of what pytester preserves.
scikit-learn's (the traffic-light and FRNet specs' metrics) is the same: imported first inside a plugin run, its
second import raised "cannot load module more than once per process" in the fault rows run on their own.
"""

import onnx  # noqa: F401
import onnxruntime  # noqa: F401
import sklearn.metrics  # noqa: F401
import torch  # noqa: F401
