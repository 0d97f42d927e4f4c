// image_decode: encoded JPEG/PNG bytes (string tensor) -> uint8 HWC pixels.
#include <cstdio>
#include <cstring>

#include "serving/steps/builtin.hpp"
#include "serving/steps/image_codec.hpp"

namespace deskml::serving::steps {
namespace {

// Decoded-size limits per image (the batch as a whole stays under kMaxOutputBytes).
constexpr int64_t kMaxImageBytes = int64_t{256} << 20;

// Receives the decoders' size reports for a batch: allocates the output when the first
// image's size is known and hands out each image's slice of it.
struct BatchSink {
  Tensor out;
  int64_t count = 1;
  bool batched = false;
  int channels = 3;
  int64_t index = 0;
  uint32_t width = 0;
  uint32_t height = 0;

  static unsigned char* prepare(void* context, uint32_t width, uint32_t height, char* message) noexcept {
    auto* self = static_cast<BatchSink*>(context);
    const int64_t image_bytes = int64_t{width} * height * self->channels;
    if (width == 0 || height == 0 || width > kMaxImageSide || height > kMaxImageSide || image_bytes > kMaxImageBytes) {
      std::snprintf(message, kCodecMessageSize, "image of %ux%u is outside the limits (sides up to %lld, %lld MiB)",
                    width, height, static_cast<long long>(kMaxImageSide), static_cast<long long>(kMaxImageBytes >> 20));
      return nullptr;
    }
    if (self->index == 0) {
      if (image_bytes * self->count > kMaxOutputBytes) {
        std::snprintf(message, kCodecMessageSize, "a batch of %lld images of %ux%u exceeds %lld MiB",
                      static_cast<long long>(self->count), width, height,
                      static_cast<long long>(kMaxOutputBytes >> 20));
        return nullptr;
      }
      try {
        Shape shape = {int64_t{height}, int64_t{width}, int64_t{self->channels}};
        if (self->batched) shape.insert(shape.begin(), self->count);
        self->out = Tensor(DataType::kUInt8, std::move(shape));
      } catch (...) {
        std::snprintf(message, kCodecMessageSize, "out of memory for a %ux%u image", width, height);
        return nullptr;
      }
      self->width = width;
      self->height = height;
    } else if (width != self->width || height != self->height) {
      std::snprintf(message, kCodecMessageSize,
                    "image is %ux%u but the first image of the batch is %ux%u; a batch needs images of one size", width,
                    height, self->width, self->height);
      return nullptr;
    }
    return self->out.data<uint8_t>() + self->index * image_bytes;
  }
};

class ImageDecode final : public UnaryStep {
 public:
  explicit ImageDecode(int channels) : UnaryStep("image_decode", "image"), channels_(channels) {}

 protected:
  Result<Tensor> apply(const Tensor& x) const override {
    if (x.dtype() != DataType::kString) {
      return bad_input("input must be a string tensor of encoded image bytes, got " + x.description());
    }
    if (x.rank() > 1 || x.numel() == 0) {
      return bad_input("input must hold one image (shape []) or a batch (shape [N], N >= 1), got " + x.description());
    }
    BatchSink sink;
    sink.count = x.numel();
    sink.batched = x.rank() == 1;
    sink.channels = channels_;
    const PixelSink pixel_sink{&BatchSink::prepare, &sink};
    char message[kCodecMessageSize];
    const std::string* images = x.data<std::string>();
    for (int64_t i = 0; i < sink.count; ++i) {
      sink.index = i;
      const std::string& bytes = images[i];
      const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
      bool ok = false;
      switch (detect_image_format(bytes)) {
        case ImageFormat::kJpeg:
          ok = decode_jpeg(data, bytes.size(), channels_, pixel_sink, message);
          break;
        case ImageFormat::kPng:
          ok = decode_png(data, bytes.size(), channels_, pixel_sink, message);
          break;
        case ImageFormat::kUnknown:
          std::snprintf(message, sizeof message, "not a JPEG or PNG file (%zu bytes, unrecognised header)",
                        bytes.size());
          break;
      }
      if (!ok) {
        const std::string which = sink.batched ? "image " + std::to_string(i) + ": " : "";
        return bad_input(which + message);
      }
    }
    return std::move(sink.out);
  }

 private:
  int channels_;
};

}  // namespace

Result<StepPtr> make_image_decode(const Params& p) {
  DESKML_RETURN_IF_ERROR(p.check_known({"channels"}));
  DESKML_ASSIGN_OR_RETURN(int64_t channels, p.get_int("channels", 3));
  if (channels != 3 && channels != 1) return p.error("channels", "must be 3 (RGB) or 1 (grey)");
  return StepPtr(std::make_unique<ImageDecode>(static_cast<int>(channels)));
}

}  // namespace deskml::serving::steps
