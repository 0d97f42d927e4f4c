#include "plan_cache/plan_cache.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "core/hex.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

#ifndef DESKML_VERSION
#define DESKML_VERSION "0.0.0"
#endif

namespace deskml::plan_cache {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'D', 'E', 'S', 'K', 'P', 'L', 'A', 'N'};
// Bumped whenever the layout of the file or of encode_model's bytes changes.
constexpr uint64_t kFormat = 1;
// The blob area starts on a page, so the mapping's views of it are aligned.
constexpr uint64_t kPage = 4096;

std::string errno_text() { return std::strerror(errno); }

// A file descriptor closed when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Status write_all(int fd, const void* data, uint64_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, std::min<uint64_t>(size, uint64_t{1} << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return io_error(errno_text());
    p += n;
    size -= static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status write_zeros(int fd, uint64_t size) {
  static const char zeros[kPage] = {};
  while (size > 0) {
    const uint64_t n = std::min<uint64_t>(size, kPage);
    DESKML_RETURN_IF_ERROR(write_all(fd, zeros, n));
    size -= n;
  }
  return Status::Ok();
}

[[noreturn]] void damaged(const std::string& what) { throw_status(invalid_model("plan cache: " + what)); }

}  // namespace

Result<std::string> plan_key(const fs::path& model_file, const std::string& options) {
  Fd in{::open(model_file.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) return io_error("cannot read '" + model_file.string() + "': " + errno_text());
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) throw std::bad_alloc();
  const std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> owned(state, &XXH3_freeState);
  XXH3_128bits_reset(state);
  std::vector<char> buffer(size_t{4} << 20);
  uint64_t total = 0;
  for (;;) {
    const ssize_t n = ::read(in.fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("cannot read '" + model_file.string() + "': " + errno_text());
    if (n == 0) break;
    XXH3_128bits_update(state, buffer.data(), static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
  }
  XXH128_canonical_t digest;
  XXH128_canonicalFromHash(&digest, XXH3_128bits_digest(state));
  return "deskml " DESKML_VERSION "\n" + kernels::cpu::packing_signature() + "\noptions " + options + "\nmodel " +
         to_hex(digest.digest, sizeof(digest.digest)) + " " + std::to_string(total);
}

fs::path plan_path(const fs::path& model_file, const fs::path& dir) {
  const std::string name = model_file.filename().string();
  if (dir.empty()) return model_file.parent_path() / (name + ".deskml-plan");
  std::error_code ec;
  fs::path absolute = fs::absolute(model_file, ec);
  if (ec) absolute = model_file;
  const std::string text = absolute.lexically_normal().string();
  XXH64_canonical_t digest;
  XXH64_canonicalFromHash(&digest, XXH3_64bits(text.data(), text.size()));
  return dir / (name + "-" + to_hex(digest.digest, sizeof(digest.digest)) + ".deskml-plan");
}

Result<CachedPlan> read_plan(const fs::path& path, const std::string& key) {
  Fd in{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) {
    if (errno == ENOENT) return not_found("no plan cached at '" + path.string() + "'");
    return io_error("cannot read '" + path.string() + "': " + errno_text());
  }
  struct stat st {};
  if (::fstat(in.fd, &st) != 0) return io_error("cannot read '" + path.string() + "': " + errno_text());
  const auto size = static_cast<uint64_t>(st.st_size);
  if (!S_ISREG(st.st_mode) || size < sizeof(kMagic) + 8)
    return invalid_model("plan cache '" + path.string() + "' is damaged: too short");
  // Private and writable: a kernel that wrote into a weight would get its own
  // copy of the page instead of a crash, and the file never changes.
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, in.fd, 0);
  if (addr == MAP_FAILED) return io_error("cannot map '" + path.string() + "': " + errno_text());
  std::shared_ptr<void> mapping(addr, [size](void* p) { ::munmap(p, size); });
  const auto* base = static_cast<const std::byte*>(addr);
  const std::string_view file(reinterpret_cast<const char*>(base), size);
  try {
    if (std::memcmp(base, kMagic, sizeof(kMagic)) != 0) damaged("not a deskml plan file");
    ByteReader header(file.substr(sizeof(kMagic)));
    if (header.u64() != kFormat) return not_found("the plan at '" + path.string() + "' has another format");
    if (header.str() != key) return not_found("the plan at '" + path.string() + "' was made for another key");
    const uint64_t meta_size = header.u64(), meta_hash = header.u64();
    const uint64_t blob_offset = header.u64(), blob_size = header.u64();
    const uint64_t meta_offset = sizeof(kMagic) + header.offset();
    if (meta_size > size - meta_offset || blob_offset < meta_offset + meta_size || blob_offset % kPage != 0 ||
        blob_offset > size || blob_size > size - blob_offset) {
      damaged("sections outside the file");
    }
    const std::string_view meta = file.substr(meta_offset, meta_size);
    if (XXH3_64bits(meta.data(), meta.size()) != meta_hash) damaged("checksum mismatch");
    CachedPlan plan;
    plan.mapping = mapping;
    const BlobArea blobs{base + blob_offset, blob_size, mapping};
    size_t consumed = 0;
    DESKML_ASSIGN_OR_RETURN(plan.model, decode_model(meta, blobs, &consumed));
    ByteReader rest(meta.substr(consumed));
    const uint64_t copies = rest.count(48);
    for (uint64_t i = 0; i < copies; ++i) {
      kernels::cpu::PackedCopy c;
      const std::string name = rest.str();
      c.user = rest.str();
      c.packed = rest.str();
      const uint64_t offset = rest.u64();
      c.size = rest.u64();
      auto it = plan.model.graph.initializers.find(name);
      if (it == plan.model.graph.initializers.end() || !it->second.defined() ||
          it->second.dtype() == DataType::kString) {
        damaged("packed weights of an unknown initializer");
      }
      if (offset % kBlobAlignment != 0 || offset > blob_size || c.size > blob_size - offset) {
        damaged("packed weights outside the blob area");
      }
      c.source = it->second.raw_data();
      c.data = blobs.base + offset;
      c.storage = mapping;
      plan.packed.push_back(std::move(c));
    }
    if (!rest.at_end()) damaged("trailing bytes");
    return plan;
  } catch (const Error& e) {
    return invalid_model("plan cache '" + path.string() + "' is damaged: " + e.status().message());
  }
}

Status write_plan(const fs::path& path, const std::string& key, const graph::Model& model,
                  const std::vector<kernels::cpu::PackedCopy>& packed) {
  BlobLayout blobs;
  std::string meta;
  encode_model(model, blobs, meta);
  std::unordered_map<const void*, const std::string*> initializer_at;
  for (const auto& [name, t] : model.graph.initializers) {
    if (t.defined() && t.dtype() != DataType::kString && t.nbytes() > 0) initializer_at.emplace(t.raw_data(), &name);
  }
  std::vector<const kernels::cpu::PackedCopy*> kept;
  for (const auto& c : packed) {
    if (initializer_at.count(c.source) && c.data != nullptr) kept.push_back(&c);
  }
  put_u64(meta, kept.size());
  for (const auto* c : kept) {
    put_str(meta, *initializer_at.at(c->source));
    put_str(meta, c->user);
    put_str(meta, c->packed);
    put_u64(meta, blobs.add(c->data, c->size));
    put_u64(meta, c->size);
  }
  return write_plan_file(path, key, meta, blobs);
}

Status write_plan_file(const fs::path& path, const std::string& key, std::string_view meta, const BlobLayout& blobs) {
  std::string header(kMagic, sizeof(kMagic));
  put_u64(header, kFormat);
  put_str(header, key);
  const uint64_t meta_offset = header.size() + 4 * 8;
  const uint64_t blob_offset = (meta_offset + meta.size() + kPage - 1) / kPage * kPage;
  put_u64(header, meta.size());
  put_u64(header, XXH3_64bits(meta.data(), meta.size()));
  put_u64(header, blob_offset);
  put_u64(header, blobs.total());

  static std::atomic<uint64_t> serial{0};
  const fs::path temp = path.string() + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(serial++);
  auto fail = [&](const std::string& what) {
    ::unlink(temp.c_str());
    return io_error("cannot write the plan cache '" + path.string() + "': " + what);
  };
  {
    Fd out{::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
    if (out.fd < 0) return io_error("cannot write the plan cache '" + path.string() + "': " + errno_text());
    Status s = write_all(out.fd, header.data(), header.size());
    if (s.ok()) s = write_all(out.fd, meta.data(), meta.size());
    uint64_t at = meta_offset + meta.size();
    if (s.ok()) s = write_zeros(out.fd, blob_offset - at);
    at = 0;
    for (const BlobSpan& span : blobs.spans()) {
      if (!s.ok()) break;
      s = write_zeros(out.fd, span.offset - at);
      if (s.ok()) s = write_all(out.fd, span.data, span.size);
      at = span.offset + span.size;
    }
    if (!s.ok()) return fail(s.message());
    // On disk before the rename: a crash must not leave a complete-looking file of zeros.
    if (::fsync(out.fd) != 0) return fail(errno_text());
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) return fail(errno_text());
  return Status::Ok();
}

}  // namespace deskml::plan_cache
