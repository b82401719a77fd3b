// The C ABI the oracle's Python side loads with ctypes (model_specs/centerpoint/autoware_oracle/build.py says why
// ctypes): an OracleCore behind an opaque handle, raw device pointers in, errors as text.
#include "oracle_core.hpp"

#include <cstdio>
#include <cstring>
#include <exception>
#include <vector>

namespace
{
struct Handle
{
  pytest_awml::OracleCore core;
  std::vector<autoware::lidar_centerpoint::Box3D> boxes;
};

void say(const std::exception & e, char * err, std::size_t errlen)
{
  if (err != nullptr && errlen > 0) {
    std::snprintf(err, errlen, "%s", e.what());
  }
}
}  // namespace

extern "C" {

// Box3D as the oracle hands it back: label, score, x, y, z, length, width, height, yaw, vel_x, vel_y, entropy
const std::size_t AWML_BOX_FIELDS = 12;

std::size_t awml_box_fields() { return AWML_BOX_FIELDS; }

void * awml_oracle_new(
  std::size_t class_size, std::size_t point_feature_size, std::size_t cloud_capacity,
  std::size_t max_voxel_size, const double * range6, const double * voxel3, std::size_t downsample_factor,
  std::size_t encoder_in_feature_size, const float * bin_upper_limits, std::size_t bins,
  const float * score_thresholds, float circle_nms_dist_threshold, const double * yaw_norm_thresholds,
  int has_variance, void * stream, char * err, std::size_t errlen)
{
  try {
    autoware::lidar_centerpoint::CenterPointConfig config(
      class_size, static_cast<float>(point_feature_size), cloud_capacity, max_voxel_size,
      std::vector<double>(range6, range6 + 6), std::vector<double>(voxel3, voxel3 + 3), downsample_factor,
      encoder_in_feature_size, std::vector<float>(bin_upper_limits, bin_upper_limits + bins),
      std::vector<float>(score_thresholds, score_thresholds + bins * class_size), circle_nms_dist_threshold,
      std::vector<double>(yaw_norm_thresholds, yaw_norm_thresholds + class_size), has_variance != 0);
    return new Handle{pytest_awml::OracleCore(config, static_cast<cudaStream_t>(stream)), {}};
  } catch (const std::exception & e) {
    say(e, err, errlen);
    return nullptr;
  }
}

void awml_oracle_free(void * handle) { delete static_cast<Handle *>(handle); }

// The grid the config computed (grid_size_x_, grid_size_y_, down_grid_size_x_, down_grid_size_y_).
void awml_oracle_grid(void * handle, std::size_t * out4)
{
  const auto & c = static_cast<Handle *>(handle)->core.config();
  out4[0] = c.grid_size_x_;
  out4[1] = c.grid_size_y_;
  out4[2] = c.down_grid_size_x_;
  out4[3] = c.down_grid_size_y_;
}

long long awml_oracle_preprocess(
  void * handle, std::size_t sweeps, const void * const * points_d, const std::size_t * points,
  const float * transforms16, const float * time_lags, std::size_t offset, char * err, std::size_t errlen)
{
  try {
    std::vector<pytest_awml::Sweep> frame;
    for (std::size_t i = 0; i < sweeps; i++) {
      frame.push_back(
        {points_d[i], points[i], std::vector<float>(transforms16 + 16 * i, transforms16 + 16 * (i + 1)),
         time_lags[i]});
    }
    return static_cast<long long>(static_cast<Handle *>(handle)->core.preprocess(frame, offset));
  } catch (const std::exception & e) {
    say(e, err, errlen);
    return -1;
  }
}

// Device pointers of the encoder's input [max_voxel, 32, encoder_in], the voxels' coordinates [max_voxel, 3]
// (z, y, x as uint3 {0, y, x}), their point counts [max_voxel] (float) and the voxel count [1] (uint32).
void awml_oracle_buffers(void * handle, void ** out4)
{
  auto & core = static_cast<Handle *>(handle)->core;
  out4[0] = core.encoder_in_features();
  out4[1] = core.coordinates();
  out4[2] = core.num_points_per_voxel();
  out4[3] = core.num_voxels();
}

long long awml_oracle_postprocess(
  void * handle, const float * heatmap, const float * offset, const float * z, const float * dim,
  const float * rot, const float * vel, char * err, std::size_t errlen)
{
  try {
    auto * h = static_cast<Handle *>(handle);
    h->boxes = h->core.postprocess(heatmap, offset, z, dim, rot, vel);
    return static_cast<long long>(h->boxes.size());
  } catch (const std::exception & e) {
    say(e, err, errlen);
    return -1;
  }
}

// The last postprocess's boxes, AWML_BOX_FIELDS floats each, into ``out`` (room for ``capacity`` boxes).
std::size_t awml_oracle_boxes(void * handle, float * out, std::size_t capacity)
{
  const auto & boxes = static_cast<Handle *>(handle)->boxes;
  const std::size_t n = boxes.size() < capacity ? boxes.size() : capacity;
  for (std::size_t i = 0; i < n; i++) {
    const auto & b = boxes[i];
    const float row[AWML_BOX_FIELDS] = {static_cast<float>(b.label), b.score, b.x, b.y, b.z, b.length,
                                        b.width, b.height, b.yaw, b.vel_x, b.vel_y, b.entropy};
    std::memcpy(out + i * AWML_BOX_FIELDS, row, sizeof(row));
  }
  return n;
}

// ``bytes`` of device memory at ``src`` into host memory at ``dst`` (the buffers are the oracle's own, not torch's).
int awml_copy_to_host(void * dst, const void * src, std::size_t bytes)
{
  return static_cast<int>(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

}  // extern "C"
