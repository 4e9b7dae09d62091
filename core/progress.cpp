#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <sstream>

namespace qf {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--";
  auto s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>((s % 3600) / 60));
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  }
  return buf;
}

std::string format_rate(double r) {
  char buf[32];
  if (r >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2fG", r / 1e9);
  } else if (r >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fM", r / 1e6);
  } else if (r >= 1e3) {
    std::snprintf(buf, sizeof buf, "%.2fk", r / 1e3);
  } else if (r >= 10) {
    std::snprintf(buf, sizeof buf, "%.1f", r);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f", r);
  }
  return buf;
}

std::string format_progress(const ProgressSnapshot& s) {
  std::ostringstream out;
  out << s.label << " " << s.done;
  if (s.total > 0) {
    char pct[16];
    std::snprintf(pct, sizeof pct, "%.1f", 100.0 * static_cast<double>(s.done) /
                                               static_cast<double>(s.total));
    out << "/" << s.total << " (" << pct << "%)";
  }
  out << " | ";
  if (s.rate > 0) {
    out << format_rate(s.rate) << " " << s.unit << "/s";
  } else {
    out << "-- " << s.unit << "/s";
  }
  if (s.total > 0) {
    double eta = s.rate > 0 ? static_cast<double>(s.total - s.done) / s.rate : -1;
    out << " | ETA " << format_duration(s.done >= s.total ? 0 : eta);
  }
  out << " | elapsed " << format_duration(s.elapsed_s);
  for (const auto& [k, v] : s.fields) out << " | " << k << " " << v;
  return out.str();
}

Progress::Progress(std::string label, int64_t total, std::string unit, FILE* out,
                   double interval_s)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      out_(out),
      interval_s_(interval_s),
      tty_(isatty(fileno(out)) != 0),
      start_(Clock::now()),
      last_print_(start_) {}

double RateMeter::update(double t, int64_t done) {
  if (t - recent_.t >= span_s_) {
    older_ = recent_;
    recent_ = {t, done};
  }
  const double dt = t - older_.t;
  return dt > 0 && done > older_.done ? static_cast<double>(done - older_.done) / dt : 0.0;
}

Progress::~Progress() {
  if (!finished_ && tty_ && last_done_ > 0) std::fputc('\n', out_);
}

void Progress::update(int64_t done, std::vector<std::pair<std::string, std::string>> fields) {
  auto now = Clock::now();
  const double rate =
      rate_meter_.update(std::chrono::duration<double>(now - start_).count(), done);
  last_done_ = done;
  last_fields_ = std::move(fields);
  double since_print = std::chrono::duration<double>(now - last_print_).count();
  if (tty_ ? since_print >= 0.1 : since_print >= interval_s_) {
    last_print_ = now;
    print({label_, done, total_, unit_, std::chrono::duration<double>(now - start_).count(),
           rate, last_fields_});
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  auto now = Clock::now();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double rate = elapsed > 0 ? static_cast<double>(last_done_) / elapsed : 0;
  print({label_, last_done_, total_, unit_, elapsed, rate, last_fields_});
  if (tty_) std::fputc('\n', out_);
  std::fflush(out_);
}

void Progress::print(const ProgressSnapshot& s) {
  std::string line = format_progress(s);
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s", line.c_str());
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

}  // namespace qf
