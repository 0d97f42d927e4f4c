// CSV output with a sidecar checkpoint, FILE.checkpoint:
//   {"job": {...}, "layout": "key:integer logits_0:float ...", "offset": 123456,
//    "last_key": "1024", "key_kind": "integer", "rows_done": 1024}
// `offset` is the length of the CSV that the checkpoint vouches for: the header
// and every row up to last_key. Anything after it was appended by a run that died
// before its checkpoint and is cut off on resume.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "scoring/sinks.hpp"

namespace deskml::scoring {

namespace {

namespace fs = std::filesystem;

Status errno_status(const std::string& what) { return io_error(what + ": " + std::strerror(errno)); }

Status write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("cannot write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Writes `text` to `path` so that a crash leaves either the old file or the new
// one: a temporary file, fsync, rename over, fsync the folder.
Status replace_file(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status("cannot create " + tmp.string());
  Status st = write_all(fd, text, tmp.string());
  if (st.ok() && ::fsync(fd) != 0) st = errno_status("cannot fsync " + tmp.string());
  ::close(fd);
  if (!st.ok()) return st;
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_status("cannot rename " + tmp.string());
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

class CsvSink final : public ResultSink {
 public:
  CsvSink(fs::path path, const JobSpec& job)
      : path_(std::move(path)),
        sidecar_(path_.string() + ".checkpoint"),
        job_(job.to_json()),
        description_(path_.string()) {}
  ~CsvSink() override {
    if (fd_ >= 0) ::close(fd_);
  }

  const std::string& description() const override { return description_; }
  const Checkpoint& checkpoint() const override { return checkpoint_; }
  bool resuming() const override { return resuming_; }

  Status open(const JobSpec& job, bool fresh) {
    std::error_code ec;
    const bool have_csv = fs::exists(path_, ec);
    const bool have_sidecar = fs::exists(sidecar_, ec);
    if (!have_sidecar) {
      if (have_csv) {
        return Status(StatusCode::kInvalidArgument,
                      "'" + path_.string() + "' exists and has no checkpoint (" + sidecar_.string() +
                          "), so deskml score did not write it; remove it or choose another --into");
      }
      return Status::Ok();
    }
    if (fresh) {
      // First the checkpoint is replaced (atomically) by one of this job that
      // vouches for 0 bytes, then the CSV goes: a crash between the two leaves a
      // pair the next run accepts, as the CSV beyond a checkpoint's offset is cut.
      DESKML_RETURN_IF_ERROR(save());
      fs::remove(path_, ec);
      return Status::Ok();
    }
    std::ifstream in(sidecar_);
    std::stringstream text;
    text << in.rdbuf();
    const auto j = nlohmann::json::parse(text.str(), nullptr, false);
    if (!j.is_object() || !j.contains("job") || !j.contains("offset") || !j.contains("rows_done")) {
      return io_error(sidecar_.string() +
                      " is not a deskml score checkpoint (unreadable JSON); use --fresh to start over");
    }
    const std::string diff = job.difference(j["job"].dump());
    if (!diff.empty()) return job_mismatch(path_.string(), diff);
    offset_ = j["offset"].get<int64_t>();
    layout_ = j.value("layout", "");
    checkpoint_.rows_done = j["rows_done"].get<int64_t>();
    if (j.contains("last_key") && !j["last_key"].is_null()) {
      DESKML_ASSIGN_OR_RETURN(auto kind, features::key_kind_from_name(j.value("key_kind", "")));
      DESKML_ASSIGN_OR_RETURN(checkpoint_.last_key, features::key_from_string(j["last_key"].get<std::string>(), kind));
    }
    if (!have_csv && offset_ > 0) {
      return io_error("the checkpoint " + sidecar_.string() + " vouches for " + std::to_string(offset_) + " bytes of " +
                      path_.string() + ", which is missing; use --fresh to start over");
    }
    resuming_ = true;
    return Status::Ok();
  }

  Status prepare(const OutputLayout& layout) override {
    if (resuming_ && !layout_.empty() && layout_ != layout.signature()) {
      return job_mismatch(path_.string(), "its columns were " + layout_ + ", now " + layout.signature());
    }
    layout_ = layout.signature();
    if (!resuming_) {
      // The checkpoint comes first: from here on the CSV is known to be ours.
      offset_ = 0;
      DESKML_RETURN_IF_ERROR(save());
    }
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return errno_status("cannot open " + path_.string());
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return errno_status("cannot stat " + path_.string());
    if (st.st_size < offset_) {
      return io_error(path_.string() + " is shorter (" + std::to_string(st.st_size) + " bytes) than its checkpoint (" +
                      std::to_string(offset_) + "); use --fresh to start over");
    }
    if (::ftruncate(fd_, offset_) != 0) return errno_status("cannot truncate " + path_.string());
    if (::lseek(fd_, offset_, SEEK_SET) < 0) return errno_status("cannot seek in " + path_.string());
    if (offset_ == 0) {
      std::string header = "key";
      for (const auto& c : layout.columns) header += "," + c.name;
      header += "\n";
      DESKML_RETURN_IF_ERROR(append(header));
      DESKML_RETURN_IF_ERROR(save());
    }
    return Status::Ok();
  }

  Status write(const ScoredRows& rows) override {
    if (fd_ < 0) return internal_error("CsvSink::write before prepare");
    std::string text;
    text.reserve(rows.keys.size() * 16 * (rows.outputs.size() + 1));
    std::vector<int64_t> per_row;
    for (const auto& [name, t] : rows.outputs) per_row.push_back(rows.keys.empty() ? 0 : t.numel() / t.dim(0));
    for (size_t r = 0; r < rows.keys.size(); ++r) {
      append_csv_field(text, features::key_to_string(rows.keys[r]));
      for (size_t o = 0; o < rows.outputs.size(); ++o) {
        const Tensor& t = rows.outputs[o].second;
        for (int64_t e = 0; e < per_row[o]; ++e) {
          text += ',';
          append_value(text, t, static_cast<int64_t>(r) * per_row[o] + e, TextStyle::kCsv);
        }
      }
      text += '\n';
    }
    DESKML_RETURN_IF_ERROR(append(text));
    if (!rows.keys.empty()) checkpoint_.last_key = rows.keys.back();
    checkpoint_.rows_done += static_cast<int64_t>(rows.keys.size());
    return save();
  }

 private:
  Status append(std::string_view text) {
    DESKML_RETURN_IF_ERROR(write_all(fd_, text, path_.string()));
    if (::fdatasync(fd_) != 0) return errno_status("cannot fsync " + path_.string());
    offset_ += static_cast<int64_t>(text.size());
    return Status::Ok();
  }

  Status save() {
    nlohmann::json j = {{"job", nlohmann::json::parse(job_)},
                        {"layout", layout_},
                        {"offset", offset_},
                        {"rows_done", checkpoint_.rows_done}};
    if (checkpoint_.last_key) {
      j["last_key"] = features::key_to_string(*checkpoint_.last_key);
      j["key_kind"] = features::key_kind_name(features::key_kind(*checkpoint_.last_key));
    } else {
      j["last_key"] = nullptr;
    }
    return replace_file(sidecar_, j.dump(2) + "\n");
  }

  fs::path path_, sidecar_;
  std::string job_;
  std::string description_;
  std::string layout_;
  Checkpoint checkpoint_;
  int64_t offset_ = 0;
  bool resuming_ = false;
  int fd_ = -1;
};

}  // namespace

Status job_mismatch(const std::string& output, const std::string& difference) {
  return invalid_argument("'" + output + "' holds the results of a different job (" + difference +
                          "); pass --fresh to discard them and start over, or choose another --into");
}

Result<std::unique_ptr<ResultSink>> open_csv_sink(const std::string& path, const JobSpec& job, bool fresh) {
  auto sink = std::make_unique<CsvSink>(path, job);
  DESKML_RETURN_IF_ERROR(sink->open(job, fresh));
  return std::unique_ptr<ResultSink>(std::move(sink));
}

}  // namespace deskml::scoring
