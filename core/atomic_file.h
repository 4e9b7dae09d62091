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

// Removes directory `dir` so that no crash leaves it half-deleted under its own name: it
// is first renamed to `.NAME.deleting` beside itself (one atomic step), then removed. A
// crash during the removal leaves only that hidden name, which is_deletion_leftover()
// recognises for start-up cleanup. IoError when the rename is refused.
void remove_directory_atomically(const std::filesystem::path& dir);
// Its first step alone: the rename; returns the hidden name, for the caller to remove.
std::filesystem::path move_aside_for_deletion(const std::filesystem::path& dir);
// Whether `name` is what remove_directory_atomically leaves behind when interrupted.
bool is_deletion_leftover(const std::string& name);

}  // namespace qf
