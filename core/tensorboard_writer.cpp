#include "core/tensorboard_writer.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/atomic_file.h"
#include "core/crc32c.h"
#include "core/errors.h"
#include "core/tensorboard_event.pb.h"

namespace fs = std::filesystem;

namespace qf {
namespace {

constexpr const char* kFilePrefix = "events.out.tfevents.";
constexpr const char* kFileVersion = "brain.Event:2";
constexpr std::size_t kLengthBytes = 8, kCrcBytes = 4;

double wall_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || !name[0]) return "localhost";
  return name;
}

template <class T>
void put_le(std::string& out, T value) {
  for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>(value >> (8 * i)));
}

template <class T>
T get_le(const char* p) {
  T value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    value |= static_cast<T>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return value;
}

// One TFRecord: length, its masked CRC, the data, its masked CRC.
void append_framed(std::string& out, const std::string& data) {
  std::string length;
  put_le<std::uint64_t>(length, data.size());
  out += length;
  put_le<std::uint32_t>(out, masked_crc32c(length.data(), length.size()));
  out += data;
  put_le<std::uint32_t>(out, masked_crc32c(data.data(), data.size()));
}

// The <seconds> of an event file's name (0 when it has none).
std::int64_t seconds_in_name(const std::string& name) {
  if (name.rfind(kFilePrefix, 0) != 0) return 0;
  try {
    return std::stoll(name.substr(std::strlen(kFilePrefix)));
  } catch (const std::exception&) {
    return 0;
  }
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && is_event_file_name(entry.path().filename().string())) {
      out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string serialized(const tensorboard::Event& event) {
  std::string data;
  if (!event.SerializeToString(&data)) throw Error("cannot serialize a TensorBoard event");
  return data;
}

tensorboard::Event event_at(std::int64_t step) {
  tensorboard::Event e;
  e.set_wall_time(wall_time_now());
  e.set_step(step);
  return e;
}

}  // namespace

bool is_event_file_name(const std::string& name) {
  return name.find("tfevents") != std::string::npos;
}

std::unique_ptr<TensorBoardWriter> TensorBoardWriter::create(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError("cannot create '" + dir.string() + "': " + ec.message());
  std::int64_t seconds = static_cast<std::int64_t>(wall_time_now());
  for (const auto& f : event_files(dir)) {
    seconds = std::max(seconds, seconds_in_name(f.filename().string()) + 1);
  }
  const std::string host = host_name();
  for (;; ++seconds) {
    const fs::path path = dir / (kFilePrefix + std::to_string(seconds) + "." + host);
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644));
    if (fd.get() < 0 && errno == EEXIST) continue;  // a writer in the same second
    if (fd.get() < 0) throw IoError(errno_message("cannot create", path.string()));
    std::unique_ptr<TensorBoardWriter> w(new TensorBoardWriter(std::move(fd), path));
    tensorboard::Event version = event_at(0);
    version.set_file_version(kFileVersion);
    w->append_record(serialized(version));
    w->flush();
    return w;
  }
}

TensorBoardWriter::~TensorBoardWriter() {
  try {
    flush();
  } catch (const std::exception& e) {
    spdlog::warn("{}", e.what());
  }
}

void TensorBoardWriter::append_record(const std::string& data) {
  append_framed(pending_, data);
}

void TensorBoardWriter::scalar(std::string_view tag, std::int64_t step, double value) {
  tensorboard::Event e = event_at(step);
  auto* v = e.mutable_summary()->add_value();
  v->set_tag(std::string(tag));
  v->set_simple_value(static_cast<float>(value));
  append_record(serialized(e));
}

void TensorBoardWriter::text(std::string_view tag, std::int64_t step, std::string_view text) {
  tensorboard::Event e = event_at(step);
  auto* v = e.mutable_summary()->add_value();
  v->set_tag(std::string(tag));
  v->mutable_metadata()->mutable_plugin_data()->set_plugin_name("text");
  auto* t = v->mutable_tensor();
  t->set_dtype(tensorboard::DT_STRING);
  t->mutable_tensor_shape();  // present and empty: a scalar string
  t->add_string_val(std::string(text));
  append_record(serialized(e));
}

void TensorBoardWriter::session_start(std::int64_t step) {
  tensorboard::Event e = event_at(step);
  e.mutable_session_log()->set_status(tensorboard::SessionLog::START);
  append_record(serialized(e));
}

void TensorBoardWriter::flush() {
  if (pending_.empty()) return;
  if (!write_all(fd_.get(), pending_.data(), pending_.size())) {
    const std::string message = errno_message("cannot write", path_.string());
    pending_.clear();
    throw IoError(message);
  }
  pending_.clear();
}

std::vector<std::string> read_event_records(const fs::path& path, std::size_t* bad_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(errno_message("cannot read", path.string()));
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  std::size_t at = 0;
  while (all.size() - at >= kLengthBytes + kCrcBytes) {
    const char* p = all.data() + at;
    const auto length = get_le<std::uint64_t>(p);
    if (get_le<std::uint32_t>(p + kLengthBytes) != masked_crc32c(p, kLengthBytes)) break;
    const std::size_t header = kLengthBytes + kCrcBytes;
    if (length > all.size() - at - header || all.size() - at - header - length < kCrcBytes) break;
    const char* data = p + header;
    if (get_le<std::uint32_t>(data + length) != masked_crc32c(data, length)) break;
    records.emplace_back(data, length);
    at += header + length + kCrcBytes;
  }
  if (bad_bytes) *bad_bytes = all.size() - at;
  return records;
}

std::size_t drop_events_after(const fs::path& dir, std::int64_t step) {
  std::size_t dropped = 0;
  for (const auto& file : event_files(dir)) {
    std::size_t bad = 0;
    const auto records = read_event_records(file, &bad);
    std::string kept;
    std::size_t dropped_here = 0;
    for (const auto& data : records) {
      tensorboard::Event e;
      // A record that does not parse is not ours to judge: keep it.
      if (e.ParseFromString(data) && !e.has_file_version() && e.step() > step) {
        ++dropped_here;
        continue;
      }
      append_framed(kept, data);
    }
    if (dropped_here || bad) write_text_atomically(file, kept);
    dropped += dropped_here;
  }
  return dropped;
}

}  // namespace qf
