#include "core/gnuplot.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/errors.h"
#include "core/subprocess.h"

namespace fs = std::filesystem;

namespace qf {

ScratchDir::ScratchDir(const std::string& prefix) {
  std::string pattern = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (!mkdtemp(pattern.data())) {
    throw IoError(errno_message("cannot create a directory like", pattern));
  }
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string gnuplot_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string gnuplot_png_preamble(const fs::path& png, int width, int height) {
  const std::string size = std::to_string(width) + "," + std::to_string(height);
  return "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
         "  set terminal pngcairo size " +
         size +
         " noenhanced\n"
         "} else {\n"
         "  set terminal png size " +
         size +
         " noenhanced\n"
         "}\n"
         "set output " +
         gnuplot_quote(png.string()) + "\n";
}

void run_gnuplot(const std::string& script, const fs::path& png) {
  ScratchDir dir("quantfork-gnuplot");
  const fs::path script_path = dir / "plot.gp", log = dir / "gnuplot.log";
  {
    std::ofstream out(script_path);
    out << script;
    if (!out) throw IoError(errno_message("cannot write", script_path.string()));
  }
  pid_t pid = 0;
  try {
    pid = spawn("gnuplot", {script_path.string()}, log);
  } catch (const IoError& e) {
    throw Error("plotting needs gnuplot, which could not be started (" + std::string(e.what()) +
                "); install it: apt-get install gnuplot-nox");
  }
  if (wait_exit_code(pid) != 0) {
    std::ifstream in(log);
    std::ostringstream output;
    output << in.rdbuf();
    throw Error("gnuplot failed to draw '" + png.string() + "':\n" + output.str());
  }
  std::error_code ec;
  if (!fs::is_regular_file(png, ec) || fs::file_size(png, ec) == 0) {
    throw Error("gnuplot ran but wrote no image to '" + png.string() + "'");
  }
}

}  // namespace qf
