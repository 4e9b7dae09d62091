#pragma once
// The step line of long work (training, audits, prepare): done/total, rate and ETA, plus
// the caller's own fields (loss, lr …). On a terminal it redraws in place; otherwise
// (CI logs, files) it prints a plain line at most every `interval_s` seconds.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace qf {

// "3h04m", "4m18s", "12s", "--" for unknown.
std::string format_duration(double seconds);
// "1.23k", "45.6", "2.10M": rates readable at a glance.
std::string format_rate(double per_second);

struct ProgressSnapshot {
  std::string label;
  int64_t done = 0;
  int64_t total = 0;  // 0 when unknown
  std::string unit;
  double elapsed_s = 0;
  double rate = 0;  // units per second, 0 when not yet known
  std::vector<std::pair<std::string, std::string>> fields;
};
// "train 120/1000 (12.0%) | 3.40 step/s | ETA 4m18s | loss 3.21": pure, so tested.
std::string format_progress(const ProgressSnapshot& s);

// The rate of the step line: units per second since an anchor between `span_s` and
// 2·`span_s` seconds old (since the start until then). Two anchors move in turn, so the
// rate follows the recent pace without ever being measured over an instant: units that
// finish in bursts (runs two at a time, say) read as their average pace, not as a spike.
// Times are seconds from the start; pure, so tested.
class RateMeter {
 public:
  explicit RateMeter(double span_s = 30.0) : span_s_(span_s) {}
  // Records `done` units finished at time t; returns the rate, 0 while unknown.
  double update(double t, int64_t done);

 private:
  struct Anchor {
    double t = 0;
    int64_t done = 0;
  };
  double span_s_;
  Anchor older_, recent_;
};

class Progress {
 public:
  using Clock = std::chrono::steady_clock;
  Progress(std::string label, int64_t total, std::string unit, FILE* out = stderr,
           double interval_s = 10.0);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Reports `done` units finished; prints when due (always on a terminal).
  void update(int64_t done, std::vector<std::pair<std::string, std::string>> fields = {});
  // Prints the final line (and ends the redrawn line on a terminal).
  void finish();

 private:
  void print(const ProgressSnapshot& s);
  std::string label_;
  int64_t total_;
  std::string unit_;
  FILE* out_;
  double interval_s_;
  bool tty_;
  bool finished_ = false;
  Clock::time_point start_;
  Clock::time_point last_print_;
  int64_t last_done_ = 0;
  // Rate over a sliding start point, so a slow first step does not skew the ETA forever.
  RateMeter rate_meter_;
  std::vector<std::pair<std::string, std::string>> last_fields_;
};

}  // namespace qf
