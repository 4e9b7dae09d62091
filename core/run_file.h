#pragma once
// The HDF5 files quantfork writes, as code: run files (schema "quantfork.run/3", one per
// training run) and audit files ("quantfork.audit/3", one per audited trajectory). The
// column lists are interfaces.md's (version 1) plus those added since; the row structs are their
// single source: each member's C++ type is the column's type (int32_t i4, int64_t i8, float f4,
// double f8, std::string a fixed-length string of kPhaseBytes or kTensorBytes).
//
// From Python, h5py alone reads them: h5py.File(p)["probe"][:] is a structured numpy
// array with the fields in the order below; root attributes are str or int64;
// f["config"][()] is the resolved YAML as bytes.
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/hdf5_table.h"
#include "core/run_journal.h"

namespace qf {

// Longest phase name ("warmup", "stable", "decay", ...) and tensor name, in bytes.
// A longer one is an error when the row is appended, never silently truncated.
inline constexpr std::size_t kPhaseBytes = 32;
inline constexpr std::size_t kTensorBytes = 64;

// The schema tags this build writes. Version 2 added ppl_int4_gptq and gap_int4_gptq_pct
// to /probe and /audit; version 3 added /probe's `weights` column (raw, or ema for the
// weight average of train.ema) and run files' /events table. Files of older versions are
// still read (a missing column reads as its default: NaN, or "raw") and appended to; a row
// an older file cannot hold (a GPTQ value, an ema row, an event) is refused, not cut.
inline constexpr int kSchemaVersion = 3;
inline constexpr const char* kRunSchema = "quantfork.run/3";
inline constexpr const char* kAuditSchema = "quantfork.audit/3";

// The weights a /probe row measured: the trained weights, or their moving average.
inline constexpr const char* kRawWeights = "raw";
inline constexpr const char* kEmaWeights = "ema";

// /train: one row per logged step.
struct TrainRow {
  std::int64_t step = 0;
  std::int64_t tokens = 0;  // cumulative in this run
  float loss = 0;
  double lr = 0;
  float grad_norm = 0;
  float step_time_s = 0;
  float tokens_per_s = 0;
};

// /probe: one row per probe of a checkpoint.
struct ProbeRow {
  std::int64_t step = 0;
  std::string phase;  // at most kPhaseBytes
  std::int32_t phase_index = 0;
  double loss_fp32 = 0;
  double ppl_fp32 = 0;
  double ppl_int4 = 0;
  double ppl_int8 = 0;
  double gap_int4_pct = 0;
  double gap_int8_pct = 0;
  double kurtosis_mean = 0;
  double grid_residual_mean = 0;
  std::int64_t tokens_evaluated = 0;
  // Since version 2: INT4 after GPTQ (probe.gptq); NaN when it was not measured.
  double ppl_int4_gptq = std::numeric_limits<double>::quiet_NaN();
  double gap_int4_gptq_pct = std::numeric_limits<double>::quiet_NaN();
  // Since version 3, /probe only (not /audit): kRawWeights or kEmaWeights (at most
  // kPhaseBytes). Older files' rows read as raw.
  std::string weights = kRawWeights;
};

// /probe_tensors: one row per probe and quantized tensor.
struct ProbeTensorRow {
  std::int64_t step = 0;
  std::string tensor;  // at most kTensorBytes
  double kurtosis = 0;
  double rel_error_int4 = 0;
  double rel_error_int8 = 0;
  double grid_residual = 0;
};

// /audit: the /probe fields, then the learning rate at that step (NaN when unknown).
struct AuditRow : ProbeRow {
  double lr = std::numeric_limits<double>::quiet_NaN();
};

// /probe_attribution (audit files, with probe.attribution): one row per probed checkpoint
// and unit (one tensor, or one layer's tensors, quantized alone), then a row with unit
// "sum" and layer −1 holding the sum of the units' gaps (beside /audit's joint gap).
struct AttributionRow {
  std::int64_t step = 0;
  std::string unit;  // at most kTensorBytes
  std::int64_t layer = 0;
  double gap_int4_pct = 0;
  double gap_int4_gptq_pct = std::numeric_limits<double>::quiet_NaN();  // NaN without GPTQ
};

// /events (run files, since version 3): what happened to a run besides its steps, one row
// per event: the divergence monitor firing (kind "monitor_fired"), and what was done about
// it ("stop", "schedule_switch"). `step` is the run's update index after which it
// happened, so a resume drops events after its checkpoint as it drops rows.
struct EventRow {
  std::int64_t step = 0;
  std::string kind;    // at most kPhaseBytes
  std::string metric;  // the monitored column, e.g. gap_int4_pct (at most kPhaseBytes)
  double value = std::numeric_limits<double>::quiet_NaN();     // the metric at the step
  double gap_rise = std::numeric_limits<double>::quiet_NaN();  // the monitor's fitted rise
  double fp32_change_pct = std::numeric_limits<double>::quiet_NaN();
  std::string detail;  // for people: the action, the new schedule (at most kDetailBytes)
};
inline constexpr std::size_t kDetailBytes = 512;

// /audit_lawa (audit files with audit.lawa.k; quant_probe/audit_lawa.h): one row per
// checkpoint whose uniform average with the k − 1 checkpoints before it was probed.
struct LawaRow {
  std::int64_t step = 0;         // the newest checkpoint averaged
  std::int64_t first_step = 0;   // the oldest
  std::int32_t checkpoints = 0;  // how many were averaged (fewer than k for the first k − 1)
  double loss_fp32 = 0;
  double ppl_fp32 = 0;
  double ppl_int4 = 0;
  double ppl_int8 = 0;
  double gap_int4_pct = 0;
  double gap_int8_pct = 0;
  double kurtosis_mean = 0;
  double grid_residual_mean = 0;
};
inline constexpr const char* kAuditLawaTable = "audit_lawa";

// /phases: the phases detected along an audited trajectory.
struct PhaseRow {
  std::string phase;  // at most kPhaseBytes
  std::int64_t start_step = 0;
  std::int64_t end_step = 0;
  double slope = 0;
};

const hdf5::Schema& train_schema();
const hdf5::Schema& probe_schema();
const hdf5::Schema& probe_tensors_schema();
const hdf5::Schema& audit_schema();
const hdf5::Schema& phases_schema();
const hdf5::Schema& attribution_schema();
const hdf5::Schema& events_schema();
const hdf5::Schema& lawa_schema();

// The floating-point columns of a /probe row (the measurements) as (name, value), in
// schema order: a column added to the schema is in it without further code.
std::vector<std::pair<std::string, double>> float_columns(const ProbeRow& row);

// The /train and /probe rows of a run's journal (run.h5.journal): what a reader sees of a
// run that is still writing run.h5, which HDF5 keeps locked while it does. Rows after a
// resumed checkpoint are there until the resume rewrites the journal; a torn last record
// is left out. FormatError naming the file when it is not a run journal.
struct JournalRows {
  std::vector<TrainRow> train;
  std::vector<ProbeRow> probe;
  std::vector<EventRow> events;
};
JournalRows read_journal_rows(const std::filesystem::path& journal);

// The root attributes both kinds of file carry (besides `schema`).
struct RunAttributes {
  std::string experiment;
  std::string arm;
  std::int64_t seed = 0;
  std::string schedule;
  std::string base_checkpoint;
  std::int64_t start_step = 0;
  // Left empty, create() fills them in: the current UTC time as ISO 8601
  // ("2024-05-01T12:34:56Z") and this build's "VERSION (GIT_REVISION)".
  std::string created;
  std::string version;
};

// What RunFile::recover found and did, for the log.
struct RunRecovery {
  bool from_journal = false;     // false: a run.h5 written before journals existed
  std::string damage;            // why run.h5 could not be read as it was; empty if it could
  std::size_t dropped_rows = 0;  // logged after the step training goes on from
  std::size_t torn_bytes = 0;    // a journal record cut short by a kill
};

// A quantfork.run file. Every append is flushed before it returns. A journaled run file
// (create_journaled, recover) also writes every row, first, to run.h5.journal
// (core/run_journal.h), from which recover() rebuilds run.h5 whatever a kill did to it.
class RunFile {
 public:
  // Creates `path` (which must not exist) with its attributes, /config (the resolved
  // YAML) and the empty tables. IoError when the directory is missing or read-only.
  static RunFile create(const std::string& path, const RunAttributes& attributes,
                        const std::string& config_yaml);
  // Opens an existing run file to go on writing it (resume). FormatError, naming the
  // file and the expected schema, when it is not a quantfork.run/1 file or a table's
  // columns differ.
  static RunFile open_for_append(const std::string& path);
  // create(), plus the journal journal_path_for(path) (replaced if present).
  static RunFile create_journaled(const std::string& path, const RunAttributes& attributes,
                                  const std::string& config_yaml);
  // For resume: rebuilds `path` from its journal (or, for a run.h5 from before journals,
  // from the file itself), keeping the rows whose step is at most `keep_through_step`,
  // writes both files anew (each atomically) and returns the run file open for appending,
  // journaled. A damaged run.h5 is no obstacle when its journal is there; without one,
  // FormatError names the file.
  static RunFile recover(const std::string& path, std::int64_t keep_through_step,
                         RunRecovery* report = nullptr);
  // The same checks, for reading only (analyze, report).
  static RunFile open_read_only(const std::string& path);

  void append_train(const TrainRow& row);
  void append_probe(const ProbeRow& row);
  void append_probe_tensor(const ProbeTensorRow& row);
  // All tensors of one probe at once: one write and one flush.
  void append_probe_tensors(const std::vector<ProbeTensorRow>& rows);
  // FormatError for a file of a version before /events (3).
  void append_event(const EventRow& row);
  // For resume: drops the rows of every table whose step is after `step` (the step of
  // the checkpoint training goes on from), in the journal too. Returns the number of
  // rows dropped.
  std::size_t truncate_after(std::int64_t step);

  std::vector<TrainRow> read_train() const;
  std::vector<ProbeRow> read_probe() const;
  std::vector<ProbeTensorRow> read_probe_tensors() const;
  std::vector<EventRow> read_events() const;  // empty for files before version 3
  RunAttributes attributes() const;
  std::string config_yaml() const;

  // Root attributes beyond the schema's, and raw table access.
  hdf5::File& file() { return file_; }
  const hdf5::Table& train() const { return train_; }
  const hdf5::Table& probe() const { return probe_; }
  const hdf5::Table& probe_tensors() const { return probe_tensors_; }
  void close() { file_.close(); }
  int schema_version() const { return version_; }

 private:
  RunFile(hdf5::File file, int version, hdf5::Table train, hdf5::Table probe,
          hdf5::Table probe_tensors, std::optional<hdf5::Table> events);
  static RunFile create_version(const std::string& path, const RunAttributes& attributes,
                                const std::string& config_yaml, int version);
  static RunFile open(const std::string& path, hdf5::Access access);
  // The journal's view of this file: header and packed rows.
  JournalContents contents() const;
  hdf5::Table& table_of_kind(std::uint8_t kind, const std::string& where);
  void append_rows(hdf5::Table& table, std::uint8_t kind,
                   const std::vector<hdf5::RowBuilder>& rows);

  hdf5::File file_;
  int version_;
  hdf5::Table train_;
  hdf5::Table probe_;
  hdf5::Table probe_tensors_;
  std::optional<hdf5::Table> events_;  // version 3 on
  std::unique_ptr<RunJournal> journal_;
};

// The steps an audit locates along a trajectory. Stored as int64 root attributes of
// the same names: absent until the detection has run, then each is the step, or
// kNotFound (-1) when the detection ran and found none (e.g. a trajectory that never
// diverges). Read back, kNotFound becomes std::nullopt.
struct AuditLandmarks {
  static constexpr std::int64_t kNotFound = -1;
  std::optional<std::int64_t> fp32_convergence_step;
  std::optional<std::int64_t> divergence_onset_step;
  std::optional<std::int64_t> pre_divergence_step;
};

// A quantfork.audit file: /config, /audit rows (one per probed checkpoint), /phases.
class AuditFile {
 public:
  static AuditFile create(const std::string& path, const RunAttributes& attributes,
                          const std::string& config_yaml);
  static AuditFile open_for_append(const std::string& path);
  static AuditFile open_read_only(const std::string& path);

  void append_audit(const AuditRow& row);
  // /probe_attribution, created with its first rows.
  void append_attribution(const std::vector<AttributionRow>& rows);
  // Replaces the whole /phases table: phases come from the whole trajectory at once.
  void write_phases(const std::vector<PhaseRow>& phases);
  void write_landmarks(const AuditLandmarks& landmarks);
  // Drops /audit rows after `step`; returns how many.
  std::size_t truncate_after(std::int64_t step);

  std::vector<AuditRow> read_audit() const;
  std::vector<PhaseRow> read_phases() const;
  std::vector<AttributionRow> read_attribution() const;  // empty when there is no table
  std::vector<LawaRow> read_lawa() const;                // empty when there is no table
  // The root attribute lawa_k: the k of /audit_lawa; nullopt without one.
  std::optional<std::int64_t> lawa_k() const;
  // std::nullopt until write_landmarks() has run.
  std::optional<AuditLandmarks> landmarks() const;
  RunAttributes attributes() const;
  std::string config_yaml() const;

  hdf5::File& file() { return file_; }
  const hdf5::Table& audit() const { return audit_; }
  const hdf5::Table& phases() const { return phases_; }
  void close() { file_.close(); }
  int schema_version() const { return version_; }

 private:
  AuditFile(hdf5::File file, int version, hdf5::Table audit, hdf5::Table phases);
  static AuditFile open(const std::string& path, hdf5::Access access);

  hdf5::File file_;
  int version_;
  hdf5::Table audit_;
  hdf5::Table phases_;
};

}  // namespace qf
