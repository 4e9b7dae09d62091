#pragma once
// Files and directories that appear whole or not at all (craft.md, Reliability): written
// under a temporary name beside the target, flushed to disk, then renamed into place, so a
// crash at any moment leaves either the previous version or the new one.
#include <filesystem>
#include <string>

namespace qf {

// Writes `text` to `path` atomically (temporary name, fsync, rename). IoError naming the
// path when the system refuses.
void write_text_atomically(const std::filesystem::path& path, const std::string& text);

// fsync on a directory, so that renames inside it are durable. Errors are ignored: some
// file systems refuse fsync on directories, and the rename itself has already happened.
void sync_directory(const std::filesystem::path& dir);

// Moves the finished directory `tmp` to `dir`, replacing an existing `dir` (which is
// first renamed aside, then removed), and makes the rename durable.
void replace_directory(const std::filesystem::path& tmp, const std::filesystem::path& dir);

}  // namespace qf
