"""How a component is quantized to int8: the spec's :class:`Int8Settings` (calibration method, sample count, the
nodes kept in float) and the run's overrides of them (``--awml-int8-calibration``, ``--awml-int8-samples``).

Calibration data are the spec's own samples, made with the seed after the run's (``calibration_seed``): held out from
the samples the tests score, as a release calibrates on frames it is not evaluated on. With ``--awml-data`` the
calibration runs on the files given (there is no other data), and the artifact says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporters.onnx_int8 import Calibration

DEFAULT_SAMPLES = 8  # enough to see each head's range on the tiny specs in seconds; AWML's release used ~1000 frames


@dataclass(frozen=True)
class Int8Settings:
    """``calibration``: how activation ranges are chosen; ``samples``: how many calibration samples; ``keep_float``: ONNX
    node names left unquantized (what ``--awml-int8-sensitivity`` reports as the smallest set to keep)."""

    calibration: Calibration = Calibration.MINMAX
    samples: int = DEFAULT_SAMPLES
    keep_float: tuple[str, ...] = ()

    def problems(self) -> list[str]:
        found = []
        if not isinstance(self.calibration, Calibration):
            found.append(f"calibration must be a Calibration ({', '.join(c.value for c in Calibration)}), got {self.calibration!r}")
        if not isinstance(self.samples, int) or self.samples < 1:
            found.append(f"samples must be an int >= 1, got {self.samples!r}")
        if isinstance(self.keep_float, str) or not all(isinstance(n, str) and n for n in self.keep_float):
            found.append(f"keep_float must be a tuple of ONNX node names, got {self.keep_float!r}")
        return found

    def key(self) -> dict:
        return {"calibration_method": self.calibration.value, "samples": self.samples, "keep_float": sorted(self.keep_float)}


def calibration_seed(seed: int) -> int:
    """The seed calibration samples are made with: the run's next, so that they are not the samples scored."""
    return seed + 1
