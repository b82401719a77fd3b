// pytest-awml's shim for Autoware's autoware_lidar_centerpoint (force-included into every file it compiles).
//
// The index the oracle's checkout was assembled from holds postprocess_kernel.cu at a commit whose config
// header calls the distance bins' upper limits distance_bin_upper_limits_, and the config and postprocess
// headers at a commit that calls them score_upper_bounds_ (same meaning: ascending upper limits, score
// thresholds indexed [bin * class_size + label]). These two names are the whole bridge.
#ifndef PYTEST_AWML__AUTOWARE_SHIM_HPP_
#define PYTEST_AWML__AUTOWARE_SHIM_HPP_

#define distance_bin_upper_limits_ score_upper_bounds_
#define distance_bin_upper_limits_d_ptr_ score_upper_bounds_d_ptr_

// Thrust headers postprocess_kernel.cu and circle_nms_kernel.cu use without including them (thrust::device,
// copy_if, copy): CUDA 12's thrust reached them through device_vector.h, CUDA 13's CCCL does not.
#ifdef __CUDACC__
#include <thrust/copy.h>
#include <thrust/execution_policy.h>
#endif
#include <cstdint>
#include <stdexcept>

#endif  // PYTEST_AWML__AUTOWARE_SHIM_HPP_
