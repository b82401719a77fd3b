"""What Ctrl-C prints, pressed at three points of a run: during an export, during inference (parity), during latency rounds.

    python benchmarks/interrupt.py [--spec centerpoint-tiny] [--keep DIR]

For each point: a complete run first, in its own folder (its report is "the last complete report"), then its
artifacts removed (so the export and inferences run again) and a second run interrupted with SIGINT, as a
terminal's Ctrl-C sends it to the foreground process, once its output shows the point was reached (pytest -v
prints a test's id when it starts; the plugin's progress says when an export starts). Prints, per point, pytest's
closing lines, whether a traceback of the plugin's appeared, and whether the complete report was kept beside the
interrupted run's own. A script, not a test: a run takes minutes on a CPU, and where the SIGINT lands is timing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

POINTS = {  # name → (the output line that says the point was reached, seconds to wait after it)
    "export": ("pytest-awml: building {spec}/pts_voxel_encoder/onnx ...", 1.0),
    "inference (parity)": ("::test_parity[{spec}/pts_backbone_neck_head/onnxruntime-cpu-fp32]", 1.0),
    "latency rounds": ("::test_latency[{spec}/pts_voxel_encoder/pytorch-cpu-fp32]", 1.0),
}
PLUGIN_FRAMES = ("pytest_awml/", "exporters/", "model_specs/")


def pytest_command(spec: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--awml-spec={spec}", "-v", "--awml-backends=pytorch,onnxruntime"]


def interrupted_run(spec: str, folder: Path, marker: str, delay: float) -> tuple[int, str, float]:
    """Run pytest in ``folder``, send SIGINT ``delay`` s after ``marker`` shows; (exit code, output, s from SIGINT to exit)."""
    # SIGINT back to its default in the child: a script started in the background (`cmd &` without job control) has it
    # ignored, a child would inherit that, and Python then installs no KeyboardInterrupt handler at all
    proc = subprocess.Popen(pytest_command(spec), cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []
    sent: list[float] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if not sent and marker in line:
                time.sleep(delay)
                sent.append(time.monotonic())
                os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground process group

    reader = threading.Thread(target=read)
    reader.start()
    code = proc.wait(timeout=1800)
    ended = time.monotonic()
    reader.join()
    return code, "".join(lines), (ended - sent[0]) if sent else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="centerpoint-tiny")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one, removed)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="awml-interrupt-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        for name, (marker, delay) in POINTS.items():
            folder = root / name.split()[0]
            folder.mkdir(exist_ok=True)
            complete = subprocess.run(pytest_command(args.spec), cwd=folder, capture_output=True, text=True)
            artifacts = folder / ".awml" / "artifacts"
            report = artifacts / "awml-report.json"
            before = report.read_bytes() if report.exists() else b""
            for entry in artifacts.iterdir():  # the builds and stored inferences go: the next run does the work again
                if entry.is_dir():
                    shutil.rmtree(entry)
            code, text, stop_s = interrupted_run(args.spec, folder, marker.format(spec=args.spec), delay)
            tail = text.strip().splitlines()[-12:]
            plugin_trace = "Traceback" in text or any(frame in line for line in text.splitlines() if line.startswith("  File ")
                                                      for frame in PLUGIN_FRAMES)
            interrupted = artifacts / "awml-report.interrupted.json"
            print(f"== Ctrl-C during {name} (complete run first: exit {complete.returncode}) ==")
            print(f"exit code {code} (pytest's interrupted is {int(2)}); stopped {stop_s:.1f} s after SIGINT")
            print(f"a traceback of the plugin's: {'YES' if plugin_trace else 'none'}; 'ExportError' in the output: "
                  f"{'YES' if 'ExportError' in text else 'no'}")
            print(f"the complete report kept: {report.exists() and report.read_bytes() == before}; the interrupted run's own: "
                  f"{interrupted.exists() and json.loads(interrupted.read_text())['run']['interrupted']}")
            print("its last lines:\n    " + "\n    ".join(tail) + "\n")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
