import pytest

from pytest_awml.device import Device, Precision, Target
from pytest_awml.errors import AwmlError


@pytest.mark.parametrize(
    "text, device, id_, torch_",
    [("cpu", Device("cpu"), "cpu", "cpu"), ("cuda", Device("cuda", 0), "cuda0", "cuda:0"),
     ("CUDA:3", Device("cuda", 3), "cuda3", "cuda:3"), (" cuda:1 ", Device("cuda", 1), "cuda1", "cuda:1")],
)
def test_parse(text, device, id_, torch_):
    parsed = Device.parse(text)
    assert parsed == device and parsed.id == id_ and parsed.torch == torch_


@pytest.mark.parametrize("text", ["gpu", "cpu:0", "cuda:", "cuda:x", "", "tpu:1"])
def test_parse_rejects_with_a_hint(text):
    with pytest.raises(AwmlError, match="use cpu, cuda or cuda:N|plain 'cpu'"):
        Device.parse(text)


def test_precision_and_target_ids():
    assert Precision.parse("FP16") is Precision.FP16
    assert Precision.parse("int8") is Precision.INT8
    with pytest.raises(AwmlError, match="fp32, fp16, tf32, int8"):
        Precision.parse("int4")
    assert Target("onnxruntime", Device.parse("cuda:1"), Precision.TF32).id == "onnxruntime-cuda1-tf32"
