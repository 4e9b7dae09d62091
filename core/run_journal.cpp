#include "core/run_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/atomic_file.h"
#include "core/errors.h"

namespace fs = std::filesystem;

namespace qf {
namespace {

constexpr char kFileMagic[8] = {'Q', 'F', 'J', 'R', 'N', 'L', '1', '\n'};
constexpr std::uint32_t kRecordMagic = 0x524a4651;  // "QFJR" little-endian
constexpr std::size_t kRecordHeader = 4 + 1 + 4 + 4;
constexpr std::uint8_t kHeaderKind = 0;

template <class T>
void put(std::vector<unsigned char>& out, T value) {
  const auto* p = reinterpret_cast<const unsigned char*>(&value);
  out.insert(out.end(), p, p + sizeof value);
}

template <class T>
T get(const unsigned char* p) {
  T value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

std::uint32_t checksum(std::uint8_t kind, const unsigned char* data, std::size_t bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, &kind, 1);
  // zlib takes uInt lengths; feed large payloads in pieces.
  while (bytes > 0) {
    const uInt n = static_cast<uInt>(std::min<std::size_t>(bytes, 1u << 30));
    crc = crc32(crc, data, n);
    data += n;
    bytes -= n;
  }
  return static_cast<std::uint32_t>(crc);
}

std::vector<unsigned char> record(std::uint8_t kind, const unsigned char* data, std::size_t bytes) {
  if (bytes > UINT32_MAX)
    throw Error("a journal record of " + std::to_string(bytes) +
                " bytes is over the format's 4 GiB limit");
  std::vector<unsigned char> out;
  out.reserve(kRecordHeader + bytes);
  put(out, kRecordMagic);
  put(out, kind);
  put(out, static_cast<std::uint32_t>(bytes));
  put(out, checksum(kind, data, bytes));
  out.insert(out.end(), data, data + bytes);
  return out;
}

}  // namespace

fs::path journal_path_for(const fs::path& run_file) {
  return run_file.string() + ".journal";
}

RunJournal RunJournal::write(const fs::path& path, const JournalContents& contents) {
  std::vector<unsigned char> all(std::begin(kFileMagic), std::end(kFileMagic));
  auto add = [&all](std::uint8_t kind, const unsigned char* data, std::size_t bytes) {
    const auto r = record(kind, data, bytes);
    all.insert(all.end(), r.begin(), r.end());
  };
  add(kHeaderKind, reinterpret_cast<const unsigned char*>(contents.header.data()),
      contents.header.size());
  for (const auto& [kind, rows] : contents.rows) {
    if (!rows.empty()) add(kind, rows.data(), rows.size());
  }
  const fs::path tmp = path.string() + ".tmp";
  const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) throw IoError(errno_message("cannot create", tmp.string()));
  if (!write_all(out, all.data(), all.size()) || ::fsync(out) != 0) {
    const int err = errno;
    ::close(out);
    ::unlink(tmp.c_str());
    errno = err;
    throw IoError(errno_message("cannot write", tmp.string()));
  }
  ::close(out);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw IoError(errno_message("cannot rename into place", path.string()));
  }
  sync_directory(path.has_parent_path() ? path.parent_path() : fs::path("."));
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  if (fd.get() < 0) throw IoError(errno_message("cannot open for appending", path.string()));
  return RunJournal(std::move(fd), path);
}

JournalContents RunJournal::read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(errno_message("cannot read", path.string()));
  const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)),
                                         std::istreambuf_iterator<char>());
  if (bytes.size() < sizeof kFileMagic ||
      std::memcmp(bytes.data(), kFileMagic, sizeof kFileMagic) != 0) {
    throw FormatError("'" + path.string() + "' is not a quantfork run journal (no QFJRNL1 magic)");
  }
  JournalContents c;
  bool have_header = false;
  std::size_t at = sizeof kFileMagic;
  while (at + kRecordHeader <= bytes.size()) {
    const unsigned char* p = bytes.data() + at;
    const auto magic = get<std::uint32_t>(p);
    const auto kind = get<std::uint8_t>(p + 4);
    const auto length = get<std::uint32_t>(p + 5);
    const auto crc = get<std::uint32_t>(p + 9);
    if (magic != kRecordMagic || at + kRecordHeader + length > bytes.size() ||
        checksum(kind, p + kRecordHeader, length) != crc) {
      break;
    }
    const unsigned char* payload = p + kRecordHeader;
    if (kind == kHeaderKind) {
      if (have_header) break;  // a second header is not something a writer makes
      c.header.assign(reinterpret_cast<const char*>(payload), length);
      have_header = true;
    } else {
      if (!have_header) break;
      auto& rows = c.rows[kind];
      rows.insert(rows.end(), payload, payload + length);
    }
    at += kRecordHeader + length;
  }
  if (!have_header) {
    throw FormatError("'" + path.string() + "': the journal's header record is missing or damaged");
  }
  c.intact_bytes = at;
  c.torn_bytes = bytes.size() - at;
  return c;
}

void RunJournal::append(std::uint8_t kind, const unsigned char* data, std::size_t bytes) {
  if (kind == kHeaderKind) throw Error("journal record kind 0 is the header's");
  const auto r = record(kind, data, bytes);
  struct stat st {};
  const bool sized = ::fstat(fd_.get(), &st) == 0;
  if (!write_all(fd_.get(), r.data(), r.size())) {
    const int err = errno;
    // No torn record left behind by a refused write: the next one must follow whole ones.
    if (sized && ::ftruncate(fd_.get(), st.st_size) != 0) {
      // Reading stops at the torn record; what follows it would be lost, which the
      // error below reports anyway.
    }
    errno = err;
    throw IoError(errno_message("cannot append to the run journal", path_.string()));
  }
}

}  // namespace qf
