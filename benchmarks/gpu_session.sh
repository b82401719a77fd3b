#!/bin/bash
# The GPU numbers of the notes (the GPU machine starts bare and is given back when idle):
#   gpu_session.sh tests     the CUDA pipeline tests, and the main job on CUDA at fp32 and fp16 (pipeline
#                            p50 against the networks' p50: `ratio_to_components` in the report);
#   gpu_session.sh fidelity  the latency fidelity benchmark on PyTorch CUDA and ONNX Runtime CUDA.
# Expects onnxruntime-gpu under /tmp/site (../shared/tools/ort-gpu-carry.sh); writes logs and the
# report under $OUT.
set -uo pipefail
export PYTHONPATH=/tmp/site:${PYTHONPATH:-} PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1 || exit 3
nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c 'import torch, onnxruntime as o; print(torch.__version__, o.__version__, o.get_available_providers())' | tee -a "$OUT/gpu.txt"
case "${1:-tests}" in
tests)
  timeout 300 python3 -m pytest -q -p no:cacheprovider -rfEs --awml-spec centerpoint --awml-device cuda \
    --awml-precision fp32,fp16 --awml-backends pytorch,onnxruntime-cuda --awml-artifacts /tmp/art \
    --awml-report "$OUT/cuda-report.json" --durations=15 > "$OUT/main.log" 2>&1
  tail -25 "$OUT/main.log"
  timeout 150 python3 -m pytest -q -p no:cacheprovider -rfEs tests/test_device_pipeline.py > "$OUT/device_pipeline.log" 2>&1
  tail -5 "$OUT/device_pipeline.log" ;;
fidelity)
  for t in "centerpoint pts_backbone_neck_head pytorch-cuda0-fp32" "centerpoint pts_backbone_neck_head onnxruntime-cuda-cuda0-fp32" \
           "centerpoint-tiny pts_voxel_encoder pytorch-cuda0-fp32"; do
    set -- $t
    timeout 170 python3 benchmarks/fidelity.py --spec "$1" --component "$2" --target "$3" --rounds 100 --pairs 2 \
      > "$OUT/fidelity-$3-$2.log" 2>&1
    tail -4 "$OUT/fidelity-$3-$2.log"
  done ;;
esac
