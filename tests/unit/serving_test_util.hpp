// Shared by the serving step and pipeline tests: temporary folders and
// in-memory JPEG / PNG encoders (so the decoder tests need no files on disk).
#pragma once

// clang-format off
#include <csetjmp>
#include <cstdio>
#include <jpeglib.h>
#include <png.h>
// clang-format on

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "temp_dir.hpp"

namespace deskml::serving::test_util {

using test_support::TempDir;

// Encodes rows of `components` (1 or 3) 8-bit samples as a baseline JPEG.
inline std::string encode_jpeg(const std::vector<uint8_t>& pixels, int width, int height, int components,
                               int quality = 95) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  cinfo.input_components = components;
  cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  // No chroma subsampling, so colour survives at full resolution.
  for (int c = 0; c < cinfo.num_components; ++c) {
    cinfo.comp_info[c].h_samp_factor = 1;
    cinfo.comp_info[c].v_samp_factor = 1;
  }
  jpeg_start_compress(&cinfo, TRUE);
  const size_t stride = static_cast<size_t>(width) * static_cast<size_t>(components);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(pixels.data()) + cinfo.next_scanline * stride;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string out(reinterpret_cast<const char*>(buffer), size);
  std::free(buffer);
  return out;
}

namespace detail {
inline void png_append(png_structp png, png_bytep data, png_size_t size) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), size);
}
inline void png_no_flush(png_structp) {}

// No C++ objects with destructors in this frame: libpng may longjmp out of it.
inline bool png_write_protected(std::string* out, const unsigned char* pixels, int width, int height, int color_type,
                                int bit_depth, int interlace, const png_color* palette, int palette_size) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png)) != 0) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, out, png_append, png_no_flush);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), bit_depth, color_type,
               interlace, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (palette != nullptr) png_set_PLTE(png, info, palette, palette_size);
  png_write_info(png, info);
  if (bit_depth == 16) png_set_swap(png);  // rows hold native little-endian uint16
  const int passes = png_set_interlace_handling(png);
  const size_t stride = png_get_rowbytes(png, info);
  for (int pass = 0; pass < passes; ++pass) {
    for (int y = 0; y < height; ++y) png_write_row(png, pixels + static_cast<size_t>(y) * stride);
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}
}  // namespace detail

// `pixels` holds packed rows in the layout of color_type / bit_depth (16-bit samples native-endian).
inline std::string encode_png(const std::vector<uint8_t>& pixels, int width, int height, int color_type,
                              int bit_depth = 8, bool interlaced = false, const std::vector<png_color>& palette = {}) {
  std::string out;
  const bool ok = detail::png_write_protected(
      &out, pixels.data(), width, height, color_type, bit_depth, interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
      palette.empty() ? nullptr : palette.data(), static_cast<int>(palette.size()));
  return ok ? out : std::string();
}

}  // namespace deskml::serving::test_util
