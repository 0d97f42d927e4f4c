#include "serving/steps/image_codec.hpp"

// clang-format off
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
// clang-format on

namespace deskml::serving::steps {

ImageFormat detect_image_format(std::string_view bytes) {
  static constexpr unsigned char kJpeg[] = {0xFF, 0xD8, 0xFF};
  static constexpr unsigned char kPng[] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (bytes.size() >= sizeof kJpeg && std::memcmp(bytes.data(), kJpeg, sizeof kJpeg) == 0) return ImageFormat::kJpeg;
  if (bytes.size() >= sizeof kPng && std::memcmp(bytes.data(), kPng, sizeof kPng) == 0) return ImageFormat::kPng;
  return ImageFormat::kUnknown;
}

namespace {

// ---- JPEG ----

struct JpegErrorManager {
  jpeg_error_mgr pub;  // first, so a j_common_ptr's err converts back
  std::jmp_buf jump;
  char* message;
};

// Everything the decoder touches, owned by the caller's frame (value-initialised there).
struct JpegState {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  jpeg_progress_mgr progress;
  const unsigned char* data;
  size_t size;
  int channels;
  const PixelSink* sink;
};

[[noreturn]] void jpeg_fail(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  std::longjmp(err->jump, 1);
}

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  char buffer[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, buffer);
  std::snprintf(err->message, kCodecMessageSize, "JPEG: %s", buffer);
  jpeg_fail(cinfo);
}

// libjpeg reports truncated or corrupt entropy-coded data as warnings and fills in grey;
// those become errors here. Harmless warnings (stray bytes before a marker) are ignored.
void jpeg_emit_message(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return;  // trace output
  const int code = cinfo->err->msg_code;
  if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_MUST_RESYNC) {
    jpeg_error_exit(cinfo);
  }
  cinfo->err->num_warnings++;
}

void jpeg_silent_output(j_common_ptr) {}

void jpeg_check_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxJpegScans) {
    auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
    std::snprintf(err->message, kCodecMessageSize, "JPEG: more than %d progressive scans", kMaxJpegScans);
    jpeg_fail(cinfo);
  }
}

// The only frame longjmp leaves (besides libjpeg's own); it holds no C++ objects.
bool jpeg_decode_protected(JpegState* st) {
  st->cinfo.err = jpeg_std_error(&st->err.pub);
  st->err.pub.error_exit = jpeg_error_exit;
  st->err.pub.emit_message = jpeg_emit_message;
  st->err.pub.output_message = jpeg_silent_output;
  if (setjmp(st->err.jump) != 0) {
    jpeg_destroy_decompress(&st->cinfo);
    return false;
  }
  jpeg_create_decompress(&st->cinfo);
  st->progress.progress_monitor = jpeg_check_progress;
  st->cinfo.progress = &st->progress;
  jpeg_mem_src(&st->cinfo, st->data, static_cast<unsigned long>(st->size));
  jpeg_read_header(&st->cinfo, TRUE);
  st->cinfo.out_color_space = st->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  unsigned char* pixels =
      st->sink->prepare(st->sink->context, st->cinfo.image_width, st->cinfo.image_height, st->err.message);
  if (pixels == nullptr) {
    jpeg_destroy_decompress(&st->cinfo);
    return false;
  }
  jpeg_start_decompress(&st->cinfo);
  if (st->cinfo.output_width != st->cinfo.image_width || st->cinfo.output_height != st->cinfo.image_height ||
      st->cinfo.output_components != st->channels) {
    std::snprintf(st->err.message, kCodecMessageSize, "JPEG: unexpected output geometry");
    jpeg_destroy_decompress(&st->cinfo);
    return false;
  }
  const size_t stride = static_cast<size_t>(st->cinfo.output_width) * static_cast<size_t>(st->channels);
  while (st->cinfo.output_scanline < st->cinfo.output_height) {
    JSAMPROW row = pixels + static_cast<size_t>(st->cinfo.output_scanline) * stride;
    if (jpeg_read_scanlines(&st->cinfo, &row, 1) != 1) {
      std::snprintf(st->err.message, kCodecMessageSize, "JPEG: decoder stalled");
      jpeg_destroy_decompress(&st->cinfo);
      return false;
    }
  }
  jpeg_finish_decompress(&st->cinfo);
  jpeg_destroy_decompress(&st->cinfo);
  return true;
}

// ---- PNG ----

struct PngState {
  png_structp png;
  png_infop info;
  const unsigned char* data;
  size_t size;
  size_t pos;
  int channels;
  const PixelSink* sink;
  char* message;
};

void png_fail(png_structp png, png_const_charp msg) {
  auto* st = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(st->message, kCodecMessageSize, "PNG: %s", msg);
  png_longjmp(png, 1);
}

void png_ignore_warning(png_structp, png_const_charp) {}

void png_read_memory(png_structp png, png_bytep out, png_size_t count) {
  auto* st = static_cast<PngState*>(png_get_io_ptr(png));
  if (count > st->size - st->pos) png_error(png, "truncated data");
  std::memcpy(out, st->data + st->pos, count);
  st->pos += count;
}

// The only frame longjmp leaves (besides libpng's own); it holds no C++ objects.
bool png_decode_protected(PngState* st) {
  st->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, st, png_fail, png_ignore_warning);
  if (st->png == nullptr) {
    std::snprintf(st->message, kCodecMessageSize, "PNG: cannot create a decoder");
    return false;
  }
  st->info = png_create_info_struct(st->png);
  if (st->info == nullptr) {
    png_destroy_read_struct(&st->png, nullptr, nullptr);
    std::snprintf(st->message, kCodecMessageSize, "PNG: cannot create a decoder");
    return false;
  }
  if (setjmp(png_jmpbuf(st->png)) != 0) {
    png_destroy_read_struct(&st->png, &st->info, nullptr);
    return false;
  }
  png_set_read_fn(st->png, st, png_read_memory);
  png_set_user_limits(st->png, 16384, 16384);
  png_set_chunk_malloc_max(st->png, 64u << 20);
  png_read_info(st->png, st->info);
  const png_uint_32 width = png_get_image_width(st->png, st->info);
  const png_uint_32 height = png_get_image_height(st->png, st->info);
  const int color_type = png_get_color_type(st->png, st->info);
  const int bit_depth = png_get_bit_depth(st->png, st->info);
  // Whatever the file holds becomes 8-bit RGB or grey; alpha is dropped (as PIL's
  // convert("RGB") does), 16-bit samples are scaled, palettes expanded.
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(st->png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(st->png);
  if (bit_depth == 16) png_set_scale_16(st->png);
  png_set_strip_alpha(st->png);
  const bool colour = (color_type & PNG_COLOR_MASK_COLOR) != 0;
  if (st->channels == 3 && !colour) png_set_gray_to_rgb(st->png);
  // ITU-R 601 luma, as PIL's convert("L") and libjpeg use.
  if (st->channels == 1 && colour) png_set_rgb_to_gray_fixed(st->png, 1, 29900, 58700);
  const int passes = png_set_interlace_handling(st->png);
  png_read_update_info(st->png, st->info);
  const size_t stride = static_cast<size_t>(width) * static_cast<size_t>(st->channels);
  if (png_get_channels(st->png, st->info) != st->channels || png_get_bit_depth(st->png, st->info) != 8 ||
      png_get_rowbytes(st->png, st->info) != stride) {
    png_error(st->png, "unexpected pixel layout after conversion");
  }
  unsigned char* pixels = st->sink->prepare(st->sink->context, width, height, st->message);
  if (pixels == nullptr) {
    png_destroy_read_struct(&st->png, &st->info, nullptr);
    return false;
  }
  for (int pass = 0; pass < passes; ++pass) {
    for (png_uint_32 y = 0; y < height; ++y) png_read_row(st->png, pixels + static_cast<size_t>(y) * stride, nullptr);
  }
  png_read_end(st->png, nullptr);
  png_destroy_read_struct(&st->png, &st->info, nullptr);
  return true;
}

}  // namespace

bool decode_jpeg(const unsigned char* data, size_t size, int channels, const PixelSink& sink, char* message) {
  JpegState st{};
  st.err.message = message;
  st.data = data;
  st.size = size;
  st.channels = channels;
  st.sink = &sink;
  message[0] = '\0';
  return jpeg_decode_protected(&st);
}

bool decode_png(const unsigned char* data, size_t size, int channels, const PixelSink& sink, char* message) {
  PngState st{};
  st.data = data;
  st.size = size;
  st.channels = channels;
  st.sink = &sink;
  st.message = message;
  message[0] = '\0';
  return png_decode_protected(&st);
}

}  // namespace deskml::serving::steps
