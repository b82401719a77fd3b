// pytest-awml's glue around Autoware's kernels (see oracle_core.hpp). Written from lib/centerpoint_trt.cpp
// (CenterPointTRT::initPtr, detect, preprocess, postProcess) and lib/preprocess/voxel_generator.cpp
// (generateSweepPoints): the same buffers, clears, launches and synchronizations, in the same order.
#include "oracle_core.hpp"

#include <algorithm>
#include <numeric>
#include <random>

namespace autoware::lidar_centerpoint
{
// Autoware's lib/utils.cpp is not in the checkout: the rounded-up division its kernels' launches use.
std::size_t divup(const std::size_t a, const std::size_t b)
{
  return (a + b - 1) / b;
}
}  // namespace autoware::lidar_centerpoint

namespace pytest_awml
{
using autoware::lidar_centerpoint::Box3D;
using autoware::lidar_centerpoint::InputPointType;

namespace
{
constexpr std::size_t AFF_MAT_SIZE = 16;  // voxel_generator.hpp's 4 x 4 transform

template <typename T>
void clear_async(T * ptr, std::size_t n, cudaStream_t stream)
{
  CHECK_CUDA_ERROR(cudaMemsetAsync(ptr, 0, n * sizeof(T), stream));
}
}  // namespace

OracleCore::OracleCore(
  const autoware::lidar_centerpoint::CenterPointConfig & config, cudaStream_t stream)
: config_(config), stream_(stream), pre_(config_, stream_), post_(config_, stream_)
{
  voxels_size_ =
    config_.max_voxel_size_ * config_.max_point_in_voxel_size_ * config_.point_feature_size_;
  coordinates_size_ = config_.max_voxel_size_ * config_.point_dim_size_;
  encoder_in_feature_size_ =
    config_.max_voxel_size_ * config_.max_point_in_voxel_size_ * config_.encoder_in_feature_size_;
  voxels_buffer_size_ = config_.grid_size_x_ * config_.grid_size_y_ *
                        config_.max_point_in_voxel_size_ * config_.point_feature_size_;
  mask_size_ = config_.grid_size_x_ * config_.grid_size_y_;

  voxels_d_ = cuda::make_unique<float[]>(voxels_size_);
  coordinates_d_ = cuda::make_unique<int[]>(coordinates_size_);
  num_points_per_voxel_d_ = cuda::make_unique<float[]>(config_.max_voxel_size_);
  encoder_in_features_d_ = cuda::make_unique<float[]>(encoder_in_feature_size_);
  points_d_ = cuda::make_unique<float[]>(config_.cloud_capacity_ * config_.point_feature_size_);
  points_aux_d_ = cuda::make_unique<float[]>(config_.cloud_capacity_ * config_.point_feature_size_);
  voxels_buffer_d_ = cuda::make_unique<float[]>(voxels_buffer_size_);
  mask_d_ = cuda::make_unique<unsigned int[]>(mask_size_);
  num_voxels_d_ = cuda::make_unique<unsigned int[]>(1);
  shuffle_indices_d_ = cuda::make_unique<unsigned int[]>(config_.cloud_capacity_);
  affine_past2current_d_ = cuda::make_unique<float[]>(AFF_MAT_SIZE);

  // initPtr: a fixed permutation of the cloud's capacity, seeded 0
  std::vector<unsigned int> indexes(config_.cloud_capacity_);
  std::iota(indexes.begin(), indexes.end(), 0);
  std::default_random_engine e(0);
  std::shuffle(indexes.begin(), indexes.end(), e);
  CHECK_CUDA_ERROR(cudaMemcpyAsync(
    shuffle_indices_d_.get(), indexes.data(), config_.cloud_capacity_ * sizeof(unsigned int),
    cudaMemcpyHostToDevice, stream_));
  CHECK_CUDA_ERROR(cudaStreamSynchronize(stream_));
}

std::size_t OracleCore::preprocess(const std::vector<Sweep> & sweeps, std::size_t offset)
{
  // detect()
  clear_async(encoder_in_features_d_.get(), encoder_in_feature_size_, stream_);
  // preprocess()
  const auto points_capacity_size = config_.cloud_capacity_ * config_.point_feature_size_;
  clear_async(points_aux_d_.get(), points_capacity_size, stream_);
  clear_async(points_d_.get(), points_capacity_size, stream_);
  clear_async(num_voxels_d_.get(), 1, stream_);
  clear_async(voxels_buffer_d_.get(), voxels_buffer_size_, stream_);
  clear_async(mask_d_.get(), mask_size_, stream_);
  clear_async(voxels_d_.get(), voxels_size_, stream_);
  clear_async(coordinates_d_.get(), coordinates_size_, stream_);
  clear_async(num_points_per_voxel_d_.get(), config_.max_voxel_size_, stream_);
  CHECK_CUDA_ERROR(cudaStreamSynchronize(stream_));

  // VoxelGenerator::generateSweepPoints: newest sweep first, each moved into the current frame
  std::size_t count = 0;
  for (const auto & sweep : sweeps) {
    if (count + sweep.points > config_.cloud_capacity_) {
      break;
    }
    CHECK_CUDA_ERROR(cudaMemcpyAsync(
      affine_past2current_d_.get(), sweep.past2current.data(), AFF_MAT_SIZE * sizeof(float),
      cudaMemcpyHostToDevice, stream_));
    CHECK_CUDA_ERROR(cudaStreamSynchronize(stream_));
    CHECK_CUDA_ERROR(pre_.generateSweepPoints_launch(
      static_cast<const InputPointType *>(sweep.points_d), sweep.points, sweep.time_lag,
      affine_past2current_d_.get(), points_aux_d_.get() + count * config_.point_feature_size_));
    count += sweep.points;
  }

  CHECK_CUDA_ERROR(pre_.shufflePoints_launch(
    points_aux_d_.get(), shuffle_indices_d_.get(), points_d_.get(), count, config_.cloud_capacity_,
    offset % config_.cloud_capacity_));
  CHECK_CUDA_ERROR(pre_.generateVoxels_random_launch(
    points_d_.get(), config_.cloud_capacity_, mask_d_.get(), voxels_buffer_d_.get()));
  CHECK_CUDA_ERROR(pre_.generateBaseFeatures_launch(
    mask_d_.get(), voxels_buffer_d_.get(), num_voxels_d_.get(), voxels_d_.get(),
    num_points_per_voxel_d_.get(), coordinates_d_.get()));
  CHECK_CUDA_ERROR(pre_.generateFeatures_launch(
    voxels_d_.get(), num_points_per_voxel_d_.get(), coordinates_d_.get(), num_voxels_d_.get(),
    encoder_in_features_d_.get()));
  CHECK_CUDA_ERROR(cudaStreamSynchronize(stream_));
  return count;
}

std::vector<Box3D> OracleCore::postprocess(
  const float * heatmap, const float * offset, const float * z, const float * dim, const float * rot,
  const float * vel)
{
  std::vector<Box3D> boxes;
  CHECK_CUDA_ERROR(
    post_.generateDetectedBoxes3D_launch(heatmap, offset, z, dim, rot, vel, boxes, stream_));
  return boxes;
}

}  // namespace pytest_awml
