#include "core/run_file.h"

#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <type_traits>
#include <utility>

#include "core/errors.h"
#include "quantfork/version.h"

namespace qf {

namespace {

// Journal record kinds of the three tables (core/run_journal.h).
enum : std::uint8_t { kTrainKind = 1, kProbeKind = 2, kProbeTensorsKind = 3, kEventsKind = 4 };
constexpr const char* kEventsTable = "events";
// The first schema version with /events.
constexpr int kEventsSince = 3;

// One column of a table and how it maps to a member of the row struct. Tables are
// declared once, as lists of these, so the schema, the writer and the reader agree.
template <class Row>
struct Field {
  hdf5::Column column;
  std::function<void(hdf5::RowBuilder&, const Row&)> write;
  std::function<void(const hdf5::RowSet&, std::size_t, Row&)> read;
  int since = 1;  // the schema version that added the column
  // For columns added after version 1: whether a row holds a value (not NaN), which a
  // file of an older version cannot take.
  std::function<bool(const Row&)> holds_value;
};

template <class Row, class T, class Owner>
Field<Row> make_field(hdf5::Column column, T Owner::*member) {
  static_assert(std::is_base_of_v<Owner, Row>, "the member belongs to another row");
  const std::string name = column.name;
  return {std::move(column),
          [name, member](hdf5::RowBuilder& b, const Row& r) { b.set(name, r.*member); },
          [name, member](const hdf5::RowSet& s, std::size_t i, Row& r) {
            r.*member = s.get<T>(i, name);
          },
          1,
          {}};
}

// A numeric column whose type is the member's C++ type.
template <class Row, class T, class Owner>
Field<Row> field(const char* name, T Owner::*member) {
  static_assert(std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int64_t> ||
                    std::is_same_v<T, float> || std::is_same_v<T, double>,
                "columns are int32_t, int64_t, float or double; strings are text() fields");
  if constexpr (std::is_same_v<T, std::int32_t>) {
    return make_field<Row>(hdf5::i4(name), member);
  } else if constexpr (std::is_same_v<T, std::int64_t>) {
    return make_field<Row>(hdf5::i8(name), member);
  } else if constexpr (std::is_same_v<T, float>) {
    return make_field<Row>(hdf5::f4(name), member);
  } else {
    return make_field<Row>(hdf5::f8(name), member);
  }
}

// A double column added in schema version `since`; NaN in rows of older files.
template <class Row, class Owner>
Field<Row> added_in(int since, const char* name, double Owner::*member) {
  Field<Row> f = field<Row>(name, member);
  f.since = since;
  f.holds_value = [member](const Row& r) { return !std::isnan(r.*member); };
  return f;
}

template <class Row, class Owner>
Field<Row> text(const char* name, std::string Owner::*member, std::size_t bytes) {
  return make_field<Row>(hdf5::str(name, bytes), member);
}

// A string column added in schema version `since`; rows of older files read as the row
// struct's default, and a row with another value cannot go into an older file.
template <class Row, class Owner>
Field<Row> text_added_in(int since, const char* name, std::string Owner::*member, std::size_t bytes,
                         std::string old_value) {
  Field<Row> f = text<Row>(name, member, bytes);
  f.since = since;
  f.holds_value = [member, old_value](const Row& r) { return r.*member != old_value; };
  return f;
}

// /probe's fields, which /audit begins with.
template <class Row>
std::vector<Field<Row>> probe_fields() {
  return {field<Row>("step", &Row::step),
          text<Row>("phase", &Row::phase, kPhaseBytes),
          field<Row>("phase_index", &Row::phase_index),
          field<Row>("loss_fp32", &Row::loss_fp32),
          field<Row>("ppl_fp32", &Row::ppl_fp32),
          field<Row>("ppl_int4", &Row::ppl_int4),
          field<Row>("ppl_int8", &Row::ppl_int8),
          field<Row>("gap_int4_pct", &Row::gap_int4_pct),
          field<Row>("gap_int8_pct", &Row::gap_int8_pct),
          field<Row>("kurtosis_mean", &Row::kurtosis_mean),
          field<Row>("grid_residual_mean", &Row::grid_residual_mean),
          field<Row>("tokens_evaluated", &Row::tokens_evaluated),
          added_in<Row>(2, "ppl_int4_gptq", &Row::ppl_int4_gptq),
          added_in<Row>(2, "gap_int4_gptq_pct", &Row::gap_int4_gptq_pct)};
}

template <class Row>
const std::vector<Field<Row>>& fields_of();

template <>
const std::vector<Field<TrainRow>>& fields_of<TrainRow>() {
  using R = TrainRow;
  static const std::vector<Field<R>> fields = {field<R>("step", &R::step),
                                               field<R>("tokens", &R::tokens),
                                               field<R>("loss", &R::loss),
                                               field<R>("lr", &R::lr),
                                               field<R>("grad_norm", &R::grad_norm),
                                               field<R>("step_time_s", &R::step_time_s),
                                               field<R>("tokens_per_s", &R::tokens_per_s)};
  return fields;
}

template <>
const std::vector<Field<ProbeRow>>& fields_of<ProbeRow>() {
  static const std::vector<Field<ProbeRow>> fields = [] {
    auto f = probe_fields<ProbeRow>();
    f.push_back(
        text_added_in<ProbeRow>(3, "weights", &ProbeRow::weights, kPhaseBytes, kRawWeights));
    return f;
  }();
  return fields;
}

template <>
const std::vector<Field<EventRow>>& fields_of<EventRow>() {
  using R = EventRow;
  static const std::vector<Field<R>> fields = {field<R>("step", &R::step),
                                               text<R>("kind", &R::kind, kPhaseBytes),
                                               text<R>("metric", &R::metric, kPhaseBytes),
                                               field<R>("value", &R::value),
                                               field<R>("gap_rise", &R::gap_rise),
                                               field<R>("fp32_change_pct", &R::fp32_change_pct),
                                               text<R>("detail", &R::detail, kDetailBytes)};
  return fields;
}

template <>
const std::vector<Field<ProbeTensorRow>>& fields_of<ProbeTensorRow>() {
  using R = ProbeTensorRow;
  static const std::vector<Field<R>> fields = {field<R>("step", &R::step),
                                               text<R>("tensor", &R::tensor, kTensorBytes),
                                               field<R>("kurtosis", &R::kurtosis),
                                               field<R>("rel_error_int4", &R::rel_error_int4),
                                               field<R>("rel_error_int8", &R::rel_error_int8),
                                               field<R>("grid_residual", &R::grid_residual)};
  return fields;
}

template <>
const std::vector<Field<AuditRow>>& fields_of<AuditRow>() {
  // Version 1's column order (the probe's, then lr), then the columns added since.
  static const std::vector<Field<AuditRow>> fields = [] {
    std::vector<Field<AuditRow>> f;
    for (auto& p : probe_fields<AuditRow>()) {
      if (p.since == 1) f.push_back(p);
    }
    f.push_back(field<AuditRow>("lr", &AuditRow::lr));
    for (auto& p : probe_fields<AuditRow>()) {
      if (p.since > 1) f.push_back(p);
    }
    return f;
  }();
  return fields;
}

template <>
const std::vector<Field<PhaseRow>>& fields_of<PhaseRow>() {
  using R = PhaseRow;
  static const std::vector<Field<R>> fields = {
      text<R>("phase", &R::phase, kPhaseBytes), field<R>("start_step", &R::start_step),
      field<R>("end_step", &R::end_step), field<R>("slope", &R::slope)};
  return fields;
}

template <>
const std::vector<Field<LawaRow>>& fields_of<LawaRow>() {
  using R = LawaRow;
  static const std::vector<Field<R>> fields = {
      field<R>("step", &R::step),
      field<R>("first_step", &R::first_step),
      field<R>("checkpoints", &R::checkpoints),
      field<R>("loss_fp32", &R::loss_fp32),
      field<R>("ppl_fp32", &R::ppl_fp32),
      field<R>("ppl_int4", &R::ppl_int4),
      field<R>("ppl_int8", &R::ppl_int8),
      field<R>("gap_int4_pct", &R::gap_int4_pct),
      field<R>("gap_int8_pct", &R::gap_int8_pct),
      field<R>("kurtosis_mean", &R::kurtosis_mean),
      field<R>("grid_residual_mean", &R::grid_residual_mean)};
  return fields;
}

template <>
const std::vector<Field<AttributionRow>>& fields_of<AttributionRow>() {
  using R = AttributionRow;
  static const std::vector<Field<R>> fields = {
      field<R>("step", &R::step), text<R>("unit", &R::unit, kTensorBytes),
      field<R>("layer", &R::layer), field<R>("gap_int4_pct", &R::gap_int4_pct),
      field<R>("gap_int4_gptq_pct", &R::gap_int4_gptq_pct)};
  return fields;
}

// The table's columns in schema version `version` (1 to kSchemaVersion).
template <class Row>
const hdf5::Schema& schema_of(int version = kSchemaVersion) {
  static const std::vector<hdf5::Schema> schemas = [] {
    std::vector<hdf5::Schema> by_version(kSchemaVersion + 1);
    for (int v = 1; v <= kSchemaVersion; ++v) {
      for (const auto& f : fields_of<Row>()) {
        if (f.since <= v) by_version[static_cast<std::size_t>(v)].push_back(f.column);
      }
    }
    return by_version;
  }();
  return schemas.at(static_cast<std::size_t>(version));
}

// A row in the table's own layout: columns an older file lacks are left out, and a row
// that holds a value for one of them is refused rather than silently cut short.
template <class Row>
hdf5::RowBuilder to_builder(const hdf5::Table& table, const Row& row) {
  hdf5::RowBuilder b = table.row();
  for (const auto& f : fields_of<Row>()) {
    if (table.layout().has(f.column.name)) {
      f.write(b, row);
    } else if (f.holds_value && f.holds_value(row)) {
      throw FormatError(table.layout().label() +
                        " was written by an older quantfork and has no "
                        "column '" +
                        f.column.name + "' (added in schema version " + std::to_string(f.since) +
                        "); start a new file to log it");
    }
  }
  return b;
}

// Columns the rows' layout lacks (an older file's) keep the row struct's defaults.
template <class Row>
std::vector<Row> read_rows(const hdf5::RowSet& set) {
  std::vector<Row> rows(set.size());
  for (const auto& f : fields_of<Row>()) {
    if (!set.layout().has(f.column.name)) continue;
    for (std::size_t i = 0; i < rows.size(); ++i) f.read(set, i, rows[i]);
  }
  return rows;
}

// --- what run and audit files share: the schema tag, root attributes, /config ---

// "quantfork.run" + "/2"
std::string tag_of(const char* family, int version) {
  return std::string(family) + "/" + std::to_string(version);
}
constexpr const char* kRunFamily = "quantfork.run";
constexpr const char* kAuditFamily = "quantfork.audit";

// The version of a tag of `family` this build reads, or 0.
int version_of(const std::string& tag, const char* family) {
  for (int v = 1; v <= kSchemaVersion; ++v) {
    if (tag == tag_of(family, v)) return v;
  }
  return 0;
}

const std::pair<const char*, std::string RunAttributes::*> kStringAttributes[] = {
    {"experiment", &RunAttributes::experiment},
    {"arm", &RunAttributes::arm},
    {"schedule", &RunAttributes::schedule},
    {"base_checkpoint", &RunAttributes::base_checkpoint},
    {"created", &RunAttributes::created},
    {"version", &RunAttributes::version}};
const std::pair<const char*, std::int64_t RunAttributes::*> kIntAttributes[] = {
    {"seed", &RunAttributes::seed}, {"start_step", &RunAttributes::start_step}};

std::string utc_now_iso8601() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

void write_header(hdf5::File& file, const std::string& schema, RunAttributes a,
                  const std::string& config_yaml) {
  if (a.created.empty()) a.created = utc_now_iso8601();
  if (a.version.empty()) a.version = std::string(kVersion) + " (" + kGitRevision + ")";
  file.set_string_attribute("schema", schema);
  for (const auto& [name, member] : kStringAttributes) file.set_string_attribute(name, a.*member);
  for (const auto& [name, member] : kIntAttributes) file.set_int_attribute(name, a.*member);
  file.write_string("config", config_yaml);
}

RunAttributes read_attributes(const hdf5::File& file) {
  auto required = [&](const char* name, auto value) {
    if (!value) throw FormatError("'" + file.path() + "' has no root attribute '" + name + "'");
    return *value;
  };
  RunAttributes a;
  for (const auto& [name, member] : kStringAttributes) {
    a.*member = required(name, file.string_attribute(name));
  }
  for (const auto& [name, member] : kIntAttributes) {
    a.*member = required(name, file.int_attribute(name));
  }
  return a;
}

// Creates `path` with `make(file)`; a failure removes the file again, so that a retry
// does not meet a half-made one. (A file that was there before is never touched:
// File::create refuses it before anything is made.)
template <class Make>
auto create_new(const std::string& path, const std::string& schema, const RunAttributes& attributes,
                const std::string& config_yaml, Make&& make) {
  hdf5::File file = hdf5::File::create(path);
  try {
    write_header(file, schema, attributes, config_yaml);
    return make(file);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
    throw;
  }
}

// The journal's header: what create() needs to make the file again.
struct RunHeader {
  RunAttributes attributes;
  std::string config_yaml;
  int version = kSchemaVersion;
};

std::string header_json(const RunAttributes& a, const std::string& config_yaml, int version) {
  nlohmann::json j = {{"schema", tag_of(kRunFamily, version)}, {"config", config_yaml}};
  for (const auto& [name, member] : kStringAttributes) j["attributes"][name] = a.*member;
  for (const auto& [name, member] : kIntAttributes) j["attributes"][name] = a.*member;
  return j.dump();
}

RunHeader parse_header(const std::string& text, const std::string& where) {
  RunHeader h;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    h.version = version_of(j.at("schema").get<std::string>(), kRunFamily);
    if (h.version == 0) {
      throw FormatError("'" + where + "' is the journal of a " + j.at("schema").get<std::string>() +
                        " file, not of a " + kRunFamily + " file this build reads (up to " +
                        kRunSchema + ")");
    }
    h.config_yaml = j.at("config").get<std::string>();
    const nlohmann::json& a = j.at("attributes");
    for (const auto& [name, member] : kStringAttributes)
      h.attributes.*member = a.at(name).get<std::string>();
    for (const auto& [name, member] : kIntAttributes)
      h.attributes.*member = a.at(name).get<std::int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError("'" + where + "': the journal's header is not what quantfork writes (" +
                      e.what() + ")");
  }
  return h;
}

// Keeps the packed rows whose `step` is at most `last`; returns how many were dropped.
std::size_t keep_through(std::vector<unsigned char>& packed, const hdf5::RowLayout& layout,
                         std::int64_t last, const std::string& where) {
  const std::size_t row = layout.row_bytes(), at = layout.offset(layout.index_of("step"));
  if (packed.size() % row != 0) {
    throw FormatError("'" + where + "': " + layout.label() + " holds " +
                      std::to_string(packed.size()) + " bytes, not a whole number of " +
                      std::to_string(row) + "-byte rows");
  }
  std::vector<unsigned char> kept;
  kept.reserve(packed.size());
  for (std::size_t i = 0; i < packed.size(); i += row) {
    std::int64_t step;
    std::memcpy(&step, packed.data() + i + at, sizeof step);
    if (step <= last) kept.insert(kept.end(), packed.begin() + i, packed.begin() + i + row);
  }
  const std::size_t dropped = (packed.size() - kept.size()) / row;
  packed.swap(kept);
  return dropped;
}

// Opens a file of `family` (any version this build reads); `version` gets its version.
hdf5::File open_tagged(const std::string& path, const char* family, hdf5::Access access,
                       int& version) {
  const std::string expected = tag_of(family, kSchemaVersion) + " file";
  hdf5::File file = hdf5::File::open(path, access, expected);
  std::optional<std::string> tag;
  try {
    tag = file.string_attribute("schema");
  } catch (const FormatError&) {
    // Not a string: reported below like any other foreign tag.
  }
  version = tag ? version_of(*tag, family) : 0;
  if (version == 0) {
    throw FormatError("'" + path + "' is not a " + expected + ": its root attribute 'schema' is " +
                      (tag ? "'" + *tag + "'" : "missing or not a string"));
  }
  return file;
}

template <class Row>
hdf5::Table open_table(const hdf5::File& file, const std::string& name, const char* family,
                       int version) {
  try {
    return hdf5::Table::open(file, name, schema_of<Row>(version));
  } catch (const FormatError& e) {
    throw FormatError(std::string(e.what()) + " (expected by " + tag_of(family, version) + ")");
  }
}

}  // namespace

const hdf5::Schema& train_schema() {
  return schema_of<TrainRow>();
}
const hdf5::Schema& probe_schema() {
  return schema_of<ProbeRow>();
}
const hdf5::Schema& probe_tensors_schema() {
  return schema_of<ProbeTensorRow>();
}
const hdf5::Schema& audit_schema() {
  return schema_of<AuditRow>();
}
const hdf5::Schema& phases_schema() {
  return schema_of<PhaseRow>();
}
const hdf5::Schema& attribution_schema() {
  return schema_of<AttributionRow>();
}
const hdf5::Schema& events_schema() {
  return schema_of<EventRow>();
}
const hdf5::Schema& lawa_schema() {
  return schema_of<LawaRow>();
}

// --- RunFile ------------------------------------------------------------------------

RunFile::RunFile(hdf5::File file, int version, hdf5::Table train, hdf5::Table probe,
                 hdf5::Table probe_tensors, std::optional<hdf5::Table> events)
    : file_(std::move(file)),
      version_(version),
      train_(std::move(train)),
      probe_(std::move(probe)),
      probe_tensors_(std::move(probe_tensors)),
      events_(std::move(events)) {}

RunFile RunFile::create(const std::string& path, const RunAttributes& attributes,
                        const std::string& config_yaml) {
  return create_version(path, attributes, config_yaml, kSchemaVersion);
}

RunFile RunFile::create_version(const std::string& path, const RunAttributes& attributes,
                                const std::string& config_yaml, int version) {
  return create_new(
      path, tag_of(kRunFamily, version), attributes, config_yaml, [version](hdf5::File& file) {
        auto train = hdf5::Table::create(file, "train", schema_of<TrainRow>(version));
        auto probe = hdf5::Table::create(file, "probe", schema_of<ProbeRow>(version));
        auto tensors =
            hdf5::Table::create(file, "probe_tensors", schema_of<ProbeTensorRow>(version));
        std::optional<hdf5::Table> events;
        if (version >= kEventsSince) {
          events = hdf5::Table::create(file, kEventsTable, schema_of<EventRow>(version));
        }
        return RunFile(std::move(file), version, std::move(train), std::move(probe),
                       std::move(tensors), std::move(events));
      });
}

RunFile RunFile::open(const std::string& path, hdf5::Access access) {
  int version = 0;
  hdf5::File file = open_tagged(path, kRunFamily, access, version);
  auto train = open_table<TrainRow>(file, "train", kRunFamily, version);
  auto probe = open_table<ProbeRow>(file, "probe", kRunFamily, version);
  auto tensors = open_table<ProbeTensorRow>(file, "probe_tensors", kRunFamily, version);
  std::optional<hdf5::Table> events;
  if (version >= kEventsSince) {
    events = open_table<EventRow>(file, kEventsTable, kRunFamily, version);
  }
  return RunFile(std::move(file), version, std::move(train), std::move(probe), std::move(tensors),
                 std::move(events));
}

RunFile RunFile::open_for_append(const std::string& path) {
  return open(path, hdf5::Access::kReadWrite);
}
RunFile RunFile::open_read_only(const std::string& path) {
  return open(path, hdf5::Access::kReadOnly);
}

RunFile RunFile::create_journaled(const std::string& path, const RunAttributes& attributes,
                                  const std::string& config_yaml) {
  RunFile f = create(path, attributes, config_yaml);
  f.journal_ =
      std::make_unique<RunJournal>(RunJournal::write(journal_path_for(path), f.contents()));
  return f;
}

RunFile RunFile::recover(const std::string& path, std::int64_t keep_through_step,
                         RunRecovery* report) {
  RunRecovery r;
  const std::filesystem::path journal = journal_path_for(path);
  JournalContents c;
  try {
    c = open_read_only(path).contents();
  } catch (const Error& e) {
    r.damage = e.what();
  }
  std::string journal_damage = "there is no journal (" + journal.string() + ") to rebuild it from";
  if (std::filesystem::exists(journal)) {
    try {
      c = RunJournal::read(journal);
      r.from_journal = true;
      r.torn_bytes = c.torn_bytes;
    } catch (const Error& e) {
      journal_damage = std::string("its journal is unreadable too: ") + e.what();
    }
  }
  if (!r.from_journal && !r.damage.empty()) {
    throw FormatError(r.damage + "; " + journal_damage +
                      ". Move the file aside to go on with a new log.");
  }
  const RunHeader header = parse_header(c.header, journal.string());
  const std::string rebuilt = path + ".rebuild";
  std::error_code ec;
  std::filesystem::remove(rebuilt, ec);
  {
    // The file's own schema version: the journal's rows are packed in its layout.
    RunFile fresh = create_version(rebuilt, header.attributes, header.config_yaml, header.version);
    for (auto& [kind, rows] : c.rows) {
      hdf5::Table& table = fresh.table_of_kind(kind, journal.string());
      r.dropped_rows += keep_through(rows, table.layout(), keep_through_step, journal.string());
      table.append_packed(rows.data(), rows.size());
    }
    fresh.close();
  }
  std::filesystem::rename(rebuilt, path, ec);
  if (ec) throw IoError("cannot rename '" + rebuilt + "' to '" + path + "': " + ec.message());
  RunFile f = open_for_append(path);
  f.journal_ = std::make_unique<RunJournal>(RunJournal::write(journal, c));
  if (report) *report = r;
  return f;
}

hdf5::Table& RunFile::table_of_kind(std::uint8_t kind, const std::string& where) {
  switch (kind) {
    case kTrainKind:
      return train_;
    case kProbeKind:
      return probe_;
    case kProbeTensorsKind:
      return probe_tensors_;
    case kEventsKind:
      if (events_) return *events_;
      throw FormatError("'" + where + "': an /events record in the journal of a " +
                        tag_of(kRunFamily, version_) + " file, which has no /events table");
    default:
      throw FormatError("'" + where + "': a record of unknown kind " + std::to_string(kind) +
                        " (written by a newer quantfork?)");
  }
}

JournalContents RunFile::contents() const {
  JournalContents c;
  c.header = header_json(attributes(), config_yaml(), version_);
  c.rows[kTrainKind] = train_.read().packed();
  c.rows[kProbeKind] = probe_.read().packed();
  c.rows[kProbeTensorsKind] = probe_tensors_.read().packed();
  if (events_) c.rows[kEventsKind] = events_->read().packed();
  return c;
}

void RunFile::append_rows(hdf5::Table& table, std::uint8_t kind,
                          const std::vector<hdf5::RowBuilder>& rows) {
  if (journal_ && !rows.empty()) {
    std::vector<unsigned char> packed;
    for (const auto& row : rows)
      packed.insert(packed.end(), row.bytes().begin(), row.bytes().end());
    journal_->append(kind, packed.data(), packed.size());
  }
  table.append(rows);
}

void RunFile::append_train(const TrainRow& row) {
  append_rows(train_, kTrainKind, {to_builder(train_, row)});
}
void RunFile::append_probe(const ProbeRow& row) {
  append_rows(probe_, kProbeKind, {to_builder(probe_, row)});
}
void RunFile::append_probe_tensor(const ProbeTensorRow& row) {
  append_rows(probe_tensors_, kProbeTensorsKind, {to_builder(probe_tensors_, row)});
}
void RunFile::append_probe_tensors(const std::vector<ProbeTensorRow>& rows) {
  std::vector<hdf5::RowBuilder> builders;
  for (const auto& row : rows) builders.push_back(to_builder(probe_tensors_, row));
  append_rows(probe_tensors_, kProbeTensorsKind, builders);
}
void RunFile::append_event(const EventRow& row) {
  if (!events_) {
    throw FormatError("'" + file_.path() + "' is a " + tag_of(kRunFamily, version_) +
                      " file, which has no /events table (added in schema version " +
                      std::to_string(kEventsSince) + "); start a new run file to log events");
  }
  append_rows(*events_, kEventsKind, {to_builder(*events_, row)});
}

std::size_t RunFile::truncate_after(std::int64_t step) {
  const std::size_t dropped = train_.truncate_after(step) + probe_.truncate_after(step) +
                              probe_tensors_.truncate_after(step) +
                              (events_ ? events_->truncate_after(step) : 0);
  if (journal_ && dropped) {
    journal_ = std::make_unique<RunJournal>(RunJournal::write(journal_->path(), contents()));
  }
  return dropped;
}

std::vector<TrainRow> RunFile::read_train() const {
  return read_rows<TrainRow>(train_.read());
}
std::vector<ProbeRow> RunFile::read_probe() const {
  return read_rows<ProbeRow>(probe_.read());
}
std::vector<ProbeTensorRow> RunFile::read_probe_tensors() const {
  return read_rows<ProbeTensorRow>(probe_tensors_.read());
}
std::vector<EventRow> RunFile::read_events() const {
  if (!events_) return {};
  return read_rows<EventRow>(events_->read());
}
RunAttributes RunFile::attributes() const {
  return read_attributes(file_);
}
std::string RunFile::config_yaml() const {
  return file_.read_string("config");
}

namespace {

template <class Row>
std::shared_ptr<const hdf5::RowLayout> layout_of(const std::string& label,
                                                 int version = kSchemaVersion) {
  return std::make_shared<const hdf5::RowLayout>(label, schema_of<Row>(version));
}

// Journal rows packed in Row's layout of `version` (a torn record never gets here: the
// journal reader drops it whole).
template <class Row>
std::vector<Row> unpack_rows(const std::vector<unsigned char>& packed, const std::string& label,
                             int version) {
  const auto layout = layout_of<Row>(label, version);
  if (packed.size() % layout->row_bytes() != 0) {
    throw FormatError(label + ": " + std::to_string(packed.size()) +
                      " bytes, not a whole number of rows");
  }
  return read_rows<Row>(hdf5::RowSet(layout, packed));
}

}  // namespace

std::vector<std::pair<std::string, double>> float_columns(const ProbeRow& row) {
  const auto layout = layout_of<ProbeRow>("a /probe row");
  hdf5::RowBuilder b(layout);
  for (const auto& f : fields_of<ProbeRow>()) f.write(b, row);
  const hdf5::RowSet set(layout, b.bytes());
  std::vector<std::pair<std::string, double>> out;
  for (const auto& c : layout->schema()) {
    if (c.type == hdf5::ColumnType::kF4 || c.type == hdf5::ColumnType::kF8) {
      out.emplace_back(c.name, set.double_at(0, c.name));
    }
  }
  return out;
}

JournalRows read_journal_rows(const std::filesystem::path& journal) {
  JournalContents c = RunJournal::read(journal);
  const int version = parse_header(c.header, journal.string()).version;
  JournalRows rows;
  rows.train = unpack_rows<TrainRow>(c.rows[kTrainKind],
                                     "/train rows of '" + journal.string() + "'", version);
  rows.probe = unpack_rows<ProbeRow>(c.rows[kProbeKind],
                                     "/probe rows of '" + journal.string() + "'", version);
  if (version >= kEventsSince) {
    rows.events = unpack_rows<EventRow>(c.rows[kEventsKind],
                                        "/events rows of '" + journal.string() + "'", version);
  }
  return rows;
}

// --- AuditFile ----------------------------------------------------------------------

namespace {
const std::pair<const char*, std::optional<std::int64_t> AuditLandmarks::*> kLandmarks[] = {
    {"fp32_convergence_step", &AuditLandmarks::fp32_convergence_step},
    {"divergence_onset_step", &AuditLandmarks::divergence_onset_step},
    {"pre_divergence_step", &AuditLandmarks::pre_divergence_step}};
}  // namespace

AuditFile::AuditFile(hdf5::File file, int version, hdf5::Table audit, hdf5::Table phases)
    : file_(std::move(file)),
      version_(version),
      audit_(std::move(audit)),
      phases_(std::move(phases)) {}

AuditFile AuditFile::create(const std::string& path, const RunAttributes& attributes,
                            const std::string& config_yaml) {
  return create_new(path, kAuditSchema, attributes, config_yaml, [](hdf5::File& file) {
    auto audit = hdf5::Table::create(file, "audit", audit_schema());
    auto phases = hdf5::Table::create(file, "phases", phases_schema());
    return AuditFile(std::move(file), kSchemaVersion, std::move(audit), std::move(phases));
  });
}

AuditFile AuditFile::open(const std::string& path, hdf5::Access access) {
  int version = 0;
  hdf5::File file = open_tagged(path, kAuditFamily, access, version);
  auto audit = open_table<AuditRow>(file, "audit", kAuditFamily, version);
  auto phases = open_table<PhaseRow>(file, "phases", kAuditFamily, version);
  return AuditFile(std::move(file), version, std::move(audit), std::move(phases));
}

AuditFile AuditFile::open_for_append(const std::string& path) {
  return open(path, hdf5::Access::kReadWrite);
}
AuditFile AuditFile::open_read_only(const std::string& path) {
  return open(path, hdf5::Access::kReadOnly);
}

void AuditFile::append_audit(const AuditRow& row) {
  audit_.append(to_builder(audit_, row));
}

namespace {
constexpr const char* kAttributionTable = "probe_attribution";
}  // namespace

void AuditFile::append_attribution(const std::vector<AttributionRow>& rows) {
  if (rows.empty()) return;
  hdf5::Table table =
      file_.contains(kAttributionTable)
          ? open_table<AttributionRow>(file_, kAttributionTable, kAuditFamily, version_)
          : hdf5::Table::create(file_, kAttributionTable, attribution_schema());
  std::vector<hdf5::RowBuilder> builders;
  for (const auto& row : rows) builders.push_back(to_builder(table, row));
  table.append(builders);
}

std::vector<AttributionRow> AuditFile::read_attribution() const {
  if (!file_.contains(kAttributionTable)) return {};
  return read_rows<AttributionRow>(
      open_table<AttributionRow>(file_, kAttributionTable, kAuditFamily, version_).read());
}

std::vector<LawaRow> AuditFile::read_lawa() const {
  if (!file_.contains(kAuditLawaTable)) return {};
  return read_rows<LawaRow>(
      open_table<LawaRow>(file_, kAuditLawaTable, kAuditFamily, version_).read());
}

std::optional<std::int64_t> AuditFile::lawa_k() const {
  return file_.int_attribute("lawa_k");
}

void AuditFile::write_phases(const std::vector<PhaseRow>& phases) {
  std::vector<hdf5::RowBuilder> builders;
  for (const auto& row : phases) builders.push_back(to_builder(phases_, row));
  phases_.clear();
  phases_.append(builders);
}

void AuditFile::write_landmarks(const AuditLandmarks& landmarks) {
  for (const auto& [name, member] : kLandmarks) {
    file_.set_int_attribute(name, (landmarks.*member).value_or(AuditLandmarks::kNotFound));
  }
  file_.flush();
}

std::size_t AuditFile::truncate_after(std::int64_t step) {
  return audit_.truncate_after(step);
}

std::vector<AuditRow> AuditFile::read_audit() const {
  return read_rows<AuditRow>(audit_.read());
}
std::vector<PhaseRow> AuditFile::read_phases() const {
  return read_rows<PhaseRow>(phases_.read());
}

std::optional<AuditLandmarks> AuditFile::landmarks() const {
  std::optional<AuditLandmarks> out;
  for (const auto& [name, member] : kLandmarks) {
    const auto value = file_.int_attribute(name);
    if (!value) continue;
    if (!out) out.emplace();
    if (*value != AuditLandmarks::kNotFound) (*out).*member = *value;
  }
  return out;
}

RunAttributes AuditFile::attributes() const {
  return read_attributes(file_);
}
std::string AuditFile::config_yaml() const {
  return file_.read_string("config");
}

}  // namespace qf
