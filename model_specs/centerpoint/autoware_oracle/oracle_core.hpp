// pytest-awml's own glue around Autoware's autoware_lidar_centerpoint kernels: what CenterPointTRT::preprocess
// and CenterPointTRT::postProcess (lib/centerpoint_trt.cpp) do around them, with the TensorRT engines, ROS
// messages and tf2 left out. Plain CUDA/C++ (no torch): it compiles and links with nvcc alone.
#ifndef PYTEST_AWML__AUTOWARE_ORACLE_CORE_HPP_
#define PYTEST_AWML__AUTOWARE_ORACLE_CORE_HPP_

#include "autoware/lidar_centerpoint/centerpoint_config.hpp"
#include "autoware/lidar_centerpoint/cuda_utils.hpp"
#include "autoware/lidar_centerpoint/postprocess/postprocess_kernel.hpp"
#include "autoware/lidar_centerpoint/preprocess/preprocess_kernel.hpp"
#include "autoware/lidar_centerpoint/utils.hpp"

#include <cstddef>
#include <memory>
#include <vector>

namespace pytest_awml
{

// One sweep as the node's densification holds it: its points on the device in Autoware's InputPointType
// layout, the column-major 4 x 4 float transform into the current sensor frame and its time lag.
struct Sweep
{
  const void * points_d;
  std::size_t points;
  std::vector<float> past2current;  // 16 floats, column-major (Eigen::Matrix4f::data())
  float time_lag;
};

class OracleCore
{
public:
  OracleCore(const autoware::lidar_centerpoint::CenterPointConfig & config, cudaStream_t stream);

  // CenterPointTRT::detect's clears, then CenterPointTRT::preprocess: sweep points, shuffle (``offset`` is the
  // node's std::rand() % cloud_capacity), voxels, base features, encoder features. Returns the points used.
  std::size_t preprocess(const std::vector<Sweep> & sweeps, std::size_t offset);

  // CenterPointTRT::postProcess: the boxes after the score thresholds and circle NMS, highest score first.
  std::vector<autoware::lidar_centerpoint::Box3D> postprocess(
    const float * heatmap, const float * offset, const float * z, const float * dim, const float * rot,
    const float * vel);

  float * encoder_in_features() { return encoder_in_features_d_.get(); }
  int * coordinates() { return coordinates_d_.get(); }
  float * num_points_per_voxel() { return num_points_per_voxel_d_.get(); }
  unsigned int * num_voxels() { return num_voxels_d_.get(); }
  const autoware::lidar_centerpoint::CenterPointConfig & config() const { return config_; }

private:
  autoware::lidar_centerpoint::CenterPointConfig config_;
  cudaStream_t stream_;
  autoware::lidar_centerpoint::PreprocessCuda pre_;
  autoware::lidar_centerpoint::PostProcessCUDA post_;

  std::size_t voxels_size_, coordinates_size_, encoder_in_feature_size_, voxels_buffer_size_, mask_size_;
  cuda::unique_ptr<float[]> voxels_d_, num_points_per_voxel_d_, encoder_in_features_d_, points_d_,
    points_aux_d_, voxels_buffer_d_, affine_past2current_d_;
  cuda::unique_ptr<int[]> coordinates_d_;
  cuda::unique_ptr<unsigned int[]> mask_d_, num_voxels_d_, shuffle_indices_d_;
};

}  // namespace pytest_awml

#endif  // PYTEST_AWML__AUTOWARE_ORACLE_CORE_HPP_
