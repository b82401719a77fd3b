"""What machine produced a number: CPU, GPU, driver, CUDA and library versions."""

from __future__ import annotations

import functools
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from pytest_awml.device import Device
from pytest_awml.provenance import versions

_SMI_TIMEOUT_S = 10


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def gpu_info() -> dict:
    """GPU names from torch (when it is already imported: no import cost for CPU-only runs) and
    the driver from nvidia-smi (torch does not report it)."""
    info: dict = {}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    if shutil.which("nvidia-smi"):
        info["driver"] = driver_version()
    return info


def driver_version() -> str | None:
    """The NVIDIA driver's version from nvidia-smi (torch does not report it), or None."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=_SMI_TIMEOUT_S).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0] if out else None


@functools.cache
def machine_identity(device: Device) -> dict:
    """What of this machine decides what a computation on ``device`` returns, for the keys of stored outputs: the
    CPU model and architecture (their kernels round differently), and on CUDA the GPU, its compute capability, the
    driver and the CUDA and cuDNN versions."""
    identity: dict = {"cpu": cpu_model(), "arch": platform.machine()}
    if device.is_cuda:
        import torch

        index = device.index or 0
        identity.update(gpu=torch.cuda.get_device_name(index), capability=list(torch.cuda.get_device_capability(index)),
                        cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), driver=driver_version())
    return identity


def machine_info() -> dict:
    import os

    return {
        "awml_cpu_model": cpu_model(),
        "awml_cpu_count": os.cpu_count(),
        **{f"awml_{k}": v for k, v in gpu_info().items()},
        "awml_versions": versions(),
    }
