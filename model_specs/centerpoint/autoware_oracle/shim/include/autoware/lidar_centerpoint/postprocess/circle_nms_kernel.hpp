// pytest-awml's shim: Autoware's circle_nms_kernel.hpp is not in the assembled checkout; this is the one
// declaration circle_nms_kernel.cu defines and postprocess_kernel.cu calls (signature as Autoware declares it).
#ifndef AUTOWARE__LIDAR_CENTERPOINT__POSTPROCESS__CIRCLE_NMS_KERNEL_HPP_
#define AUTOWARE__LIDAR_CENTERPOINT__POSTPROCESS__CIRCLE_NMS_KERNEL_HPP_

#include "autoware/lidar_centerpoint/utils.hpp"

#include <thrust/device_vector.h>

#include <cstdint>

namespace autoware::lidar_centerpoint
{
std::size_t circleNMS(
  thrust::device_vector<Box3D> & boxes3d, const float distance_threshold,
  thrust::device_vector<bool> & keep_mask, cudaStream_t stream);
}  // namespace autoware::lidar_centerpoint

#endif  // AUTOWARE__LIDAR_CENTERPOINT__POSTPROCESS__CIRCLE_NMS_KERNEL_HPP_
