// JPEG and PNG decoding through libjpeg and libpng. Both report errors by longjmp, so
// the decoders keep all their state in plain structs and never have a C++ object with a
// destructor alive in a frame that longjmp may leave; the caller's C++ state (the output
// tensor) is reached only through PixelSink, whose callback returns before any longjmp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace deskml::serving::steps {

enum class ImageFormat { kUnknown, kJpeg, kPng };

// From the magic bytes: FF D8 FF for JPEG, 89 'PNG' 0D 0A 1A 0A for PNG.
ImageFormat detect_image_format(std::string_view bytes);

inline constexpr size_t kCodecMessageSize = 256;
// More progressive scans than this is a decoding-time attack, not a photo.
inline constexpr int kMaxJpegScans = 1000;

// Where a decoder writes pixels. `prepare` is called once, when the size is known, and
// returns a buffer of height * width * channels bytes (rows packed, no padding), or
// nullptr after writing the reason into `message` (kCodecMessageSize bytes).
struct PixelSink {
  unsigned char* (*prepare)(void* context, uint32_t width, uint32_t height, char* message) noexcept;
  void* context;
};

// channels: 3 (RGB) or 1 (gray). False with the reason in `message` (kCodecMessageSize
// bytes) on corrupt, truncated or unsupported data, or when the sink refuses the size.
bool decode_jpeg(const unsigned char* data, size_t size, int channels, const PixelSink& sink, char* message);
bool decode_png(const unsigned char* data, size_t size, int channels, const PixelSink& sink, char* message);

}  // namespace deskml::serving::steps
