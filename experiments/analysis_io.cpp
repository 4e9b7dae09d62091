#include "experiments/analysis_io.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>

#include "core/errors.h"

using nlohmann::json;

namespace qf::experiments {
namespace {

constexpr const char* kSchema = "quantfork.analysis/1";

json number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return v;
}

// Reads JSON back field by field, naming the file and the field path in errors.
class Reader {
 public:
  Reader(const json& j, std::string source, std::string path)
      : j_(j), source_(std::move(source)), path_(std::move(path)) {}

  Reader at(const std::string& key) const {
    if (!j_.is_object() || !j_.contains(key)) fail(key, "is missing");
    return Reader(j_.at(key), source_, path_.empty() ? key : path_ + "." + key);
  }
  Reader at(std::size_t i) const {
    return Reader(j_.at(i), source_, path_ + "[" + std::to_string(i) + "]");
  }
  bool has(const std::string& key) const { return j_.is_object() && j_.contains(key); }
  const json& raw() const { return j_; }

  double num() const {
    if (j_.is_number()) return j_.get<double>();
    if (j_ == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (j_ == "Infinity") return std::numeric_limits<double>::infinity();
    if (j_ == "-Infinity") return -std::numeric_limits<double>::infinity();
    fail("", "is not a number");
  }
  std::int64_t integer() const {
    if (!j_.is_number_integer()) fail("", "is not an integer");
    return j_.get<std::int64_t>();
  }
  std::size_t count() const {
    const std::int64_t v = integer();
    if (v < 0) fail("", "is negative");
    return static_cast<std::size_t>(v);
  }
  std::string str() const {
    if (!j_.is_string()) fail("", "is not a string");
    return j_.get<std::string>();
  }
  std::size_t size(std::size_t exactly = 0) const {
    if (!j_.is_array() || (exactly && j_.size() != exactly)) {
      fail("", exactly ? "is not a list of " + std::to_string(exactly) : "is not a list");
    }
    return j_.size();
  }

 private:
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    const std::string field = key.empty() ? path_ : (path_.empty() ? key : path_ + "." + key);
    throw FormatError("'" + source_ + "' is not a quantfork analysis: field '" + field + "' " +
                      what);
  }
  const json& j_;
  std::string source_, path_;
};

// The listed number fields of a JSON object into the members of `out`.
template <class T>
void read_numbers(const Reader& r, T& out,
                  std::initializer_list<std::pair<const char*, double T::*>> fields) {
  for (const auto& [key, member] : fields) out.*member = r.at(key).num();
}

PairedTTest paired_from(const Reader& p) {
  PairedTTest t;
  t.n = p.at("n").count();
  read_numbers(p, t,
               {{"df", &PairedTTest::df},
                {"mean_diff", &PairedTTest::mean_diff},
                {"sd_diff", &PairedTTest::sd_diff},
                {"t", &PairedTTest::t},
                {"p_two_sided", &PairedTTest::p_two_sided},
                {"cohens_dz", &PairedTTest::cohens_dz}});
  const Reader ci = p.at("ci95");
  ci.size(2);
  t.ci95 = {ci.at(std::size_t{0}).num(), ci.at(std::size_t{1}).num()};
  return t;
}

json paired_json(const PairedTTest& p) {
  return {{"n", p.n},
          {"mean_diff", number(p.mean_diff)},
          {"sd_diff", number(p.sd_diff)},
          {"t", number(p.t)},
          {"df", number(p.df)},
          {"p_two_sided", number(p.p_two_sided)},
          {"p_less", number(p.p_less)},
          {"p_greater", number(p.p_greater)},
          {"ci95", {number(p.ci95[0]), number(p.ci95[1])}},
          {"cohens_dz", number(p.cohens_dz)}};
}

// Files written before the run-level test and controls existed still read: their
// comparisons are against the top-level baseline and have no paired_runs.
Comparison comparison_from(const Reader& r, const std::string& baseline) {
  Comparison c;
  c.arm = r.at("arm").str();
  c.baseline = r.has("baseline") ? r.at("baseline").str() : baseline;
  if (r.has("phase_filter")) {
    const Reader f = r.at("phase_filter");
    std::vector<std::string> entries;
    for (std::size_t i = 0; i < f.size(); ++i) entries.push_back(f.at(i).str());
    c.phase_filter = parse_phase_filter(entries, "phase_filter of arm '" + c.arm + "'");
  }
  c.paired = paired_from(r.at("paired"));
  if (r.has("paired_runs") && !r.at("paired_runs").raw().is_null()) {
    c.paired_runs = paired_from(r.at("paired_runs"));
  }
  if (r.has("paired_runs_absent")) {
    c.paired_runs_absent = r.at("paired_runs_absent").str();
  } else if (!r.has("paired_runs")) {
    c.paired_runs_absent = "not in this analysis file (written before the run-level test)";
  }
  if (r.has("seed_mean_diffs")) {
    const Reader m = r.at("seed_mean_diffs");
    for (std::size_t i = 0; i < m.size(); ++i) {
      const Reader row = m.at(i);
      c.seed_means.push_back(
          {row.at("seed").integer(), row.at("pairs").count(), row.at("mean_diff").num()});
    }
  }
  const Reader w = r.at("welch_final");
  if (w.has("final_step") && !w.at("final_step").raw().is_null()) {
    c.final_step = w.at("final_step").integer();
  }
  c.welch_final.n_arm = w.at("n_arm").count();
  c.welch_final.n_baseline = w.at("n_baseline").count();
  read_numbers(w, c.welch_final,
               {{"t", &TwoSampleTTest::t},
                {"df", &TwoSampleTTest::df},
                {"p_two_sided", &TwoSampleTTest::p_two_sided}});
  const Reader wins = r.at("pairwise_wins");
  c.wins.wins = wins.at("wins").count();
  c.wins.total = wins.at("total").count();
  if (wins.has("ties")) c.wins.ties = wins.at("ties").count();
  if (r.has("unpaired")) {
    const Reader u = r.at("unpaired");
    for (std::size_t i = 0; i < u.size(); ++i) {
      const Reader row = u.at(i);
      c.unpaired.push_back({row.at("arm").str(), row.at("seed").integer(), row.at("step").integer(),
                            row.at("reason").str()});
    }
  }
  return c;
}

}  // namespace

json analysis_to_json(const Analysis& a) {
  json runs = json::array(), comparisons = json::array();
  for (const auto& r : a.runs) {
    runs.push_back({{"file", r.file},
                    {"experiment", r.experiment},
                    {"arm", r.arm},
                    {"seed", r.seed},
                    {"probes", r.probes}});
  }
  for (const auto& c : a.comparisons) {
    json filter = json::array(), pairs = json::array(), unpaired = json::array(),
         seed_means = json::array();
    for (const auto& s : c.phase_filter) filter.push_back(s.str());
    for (const auto& [seed, step] : c.pairs) pairs.push_back({seed, step});
    for (const auto& u : c.unpaired) {
      unpaired.push_back(
          {{"arm", u.arm}, {"seed", u.seed}, {"step", u.step}, {"reason", u.reason}});
    }
    for (const auto& m : c.seed_means) {
      seed_means.push_back(
          {{"seed", m.cluster}, {"pairs", m.pairs}, {"mean_diff", number(m.mean_diff)}});
    }
    json paired = paired_json(c.paired);
    paired["pairs"] = pairs;
    const TwoSampleTTest& w = c.welch_final;
    json comparison = {
        {"arm", c.arm},
        {"baseline", c.baseline},
        {"phase_filter", filter},
        {"paired", paired},
        {"paired_runs", c.paired_runs ? paired_json(*c.paired_runs) : json(nullptr)},
        {"seed_mean_diffs", seed_means},
        {"welch_final",
         {{"final_step", c.final_step ? json(*c.final_step) : json(nullptr)},
          {"n_arm", w.n_arm},
          {"n_baseline", w.n_baseline},
          {"mean_arm", number(w.mean_arm)},
          {"mean_baseline", number(w.mean_baseline)},
          {"t", number(w.t)},
          {"df", number(w.df)},
          {"p_two_sided", number(w.p_two_sided)},
          {"p_less", number(w.p_less)}}},
        {"pairwise_wins", {{"wins", c.wins.wins}, {"ties", c.wins.ties}, {"total", c.wins.total}}},
        {"unpaired", unpaired}};
    if (!c.paired_runs) comparison["paired_runs_absent"] = c.paired_runs_absent;
    comparisons.push_back(std::move(comparison));
  }
  const json n_counts = {{"paired", kPairedCounts},
                         {"paired_runs", kPairedRunsCounts},
                         {"welch_final", kWelchCounts},
                         {"pairwise_wins", kWinsCounts}};
  return {{"schema", kSchema},          {"metric", a.metric},     {"weights", a.weights},
          {"baseline", a.baseline},     {"n_counts", n_counts},   {"runs", runs},
          {"comparisons", comparisons}, {"warnings", a.warnings}, {"notes", a.notes}};
}

Analysis analysis_from_json(const json& j, const std::string& source) {
  const Reader r(j, source, "");
  Analysis a;
  a.metric = r.at("metric").str();
  if (r.has("weights")) a.weights = r.at("weights").str();  // absent before EMA rows existed
  a.baseline = r.at("baseline").str();
  const Reader comparisons = r.at("comparisons");
  for (std::size_t i = 0; i < comparisons.size(); ++i) {
    a.comparisons.push_back(comparison_from(comparisons.at(i), a.baseline));
  }
  for (auto [key, list] : {std::pair{"warnings", &a.warnings}, std::pair{"notes", &a.notes}}) {
    if (!r.has(key)) continue;
    const Reader w = r.at(key);
    for (std::size_t i = 0; i < w.size(); ++i) list->push_back(w.at(i).str());
  }
  return a;
}

Analysis read_analysis_json(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw IoError(errno_message("cannot read", file.string()));
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    throw FormatError("'" + file.string() + "' is not valid JSON: " + e.what());
  }
  return analysis_from_json(j, file.string());
}

std::string format_stat(double v, int significant) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", significant, v);
  return buf;
}

namespace {

std::string rows_of(const Comparison& c) {
  std::string rows;
  for (const auto& s : c.phase_filter) rows += (rows.empty() ? "" : ", ") + s.str();
  return rows.empty() ? "all" : rows;
}

// A row of the paired tests' table: `level` is "probes" or "seeds".
std::string paired_row(const Comparison& c, const std::string& level, const PairedTTest& p) {
  return "| " + c.arm + " | " + c.baseline + " | " + rows_of(c) + " | " + level + " | " +
         std::to_string(p.n) + " | " + format_stat(p.mean_diff) + " | [" + format_stat(p.ci95[0]) +
         ", " + format_stat(p.ci95[1]) + "] | " + format_stat(p.t) + " | " + format_stat(p.df) +
         " | " + format_p(p.p_two_sided) + " | " + format_stat(p.cohens_dz) + " |\n";
}

}  // namespace

std::string markdown_table(const Analysis& a) {
  std::ostringstream md;
  md << "Paired t-tests of `" << a.metric << "`"
     << (a.weights == "raw" ? std::string() : " (analyze.weights: " + a.weights + ")")
     << ", d = arm - baseline (negative: the arm is "
     << "lower), at two levels: probes (n = " << kPairedCounts
     << ") and seeds (n = " << kPairedRunsCounts
     << "; df = seeds - 1). Probes within one run are correlated, so "
     << "the probe-level p is optimistic; the seed-level test counts each seed once.\n\n"
     << "| arm | baseline | rows | level | n | mean diff | 95% CI | t | df | p | d_z |\n"
     << "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|\n";
  for (const auto& c : a.comparisons) {
    md << paired_row(c, "probes", c.paired);
    if (c.paired_runs) {
      md << paired_row(c, "seeds", *c.paired_runs);
    } else {
      md << "| " << c.arm << " | " << c.baseline << " | " << rows_of(c) << " | seeds | "
         << c.seed_means.size() << " | not computed: " << c.paired_runs_absent << " | | | | | |\n";
    }
  }
  md << "\nWelch's t-test on the final probe of each seed (n = " << kWelchCounts
     << ") and pairwise wins (arm lower than baseline, out of " << kWinsCounts << ").\n\n"
     << "| arm | baseline | final step | n arm | n baseline | Welch t | Welch df | Welch p | "
        "wins |\n"
     << "|---|---|--:|--:|--:|--:|--:|--:|--:|\n";
  for (const auto& c : a.comparisons) {
    const TwoSampleTTest& w = c.welch_final;
    md << "| " << c.arm << " | " << c.baseline << " | "
       << (c.final_step ? std::to_string(*c.final_step) : "none") << " | " << w.n_arm << " | "
       << w.n_baseline << " | " << format_stat(w.t) << " | " << format_stat(w.df) << " | "
       << format_p(w.p_two_sided) << " | " << c.wins.wins << "/" << c.wins.total << " |\n";
  }
  std::string notes;
  for (const auto& c : a.comparisons) {
    if (c.unpaired.empty()) continue;
    notes += "- " + c.arm + " vs " + c.baseline + ": " + std::to_string(c.unpaired.size()) +
             " probe row(s) could not be paired and are left out (listed under \"unpaired\" "
             "in the JSON).\n";
  }
  for (const auto& n : a.notes) notes += "- " + n + "\n";
  for (const auto& w : a.warnings) notes += "- warning: " + w + "\n";
  if (!notes.empty()) md << "\n" << notes;
  return md.str();
}

void write_text_file(const std::filesystem::path& file, const std::string& text) {
  std::ofstream out(file);
  out << text;
  if (!out) throw IoError(errno_message("cannot write", file.string()));
}

}  // namespace qf::experiments
