#pragma once
// Where this process sits in a data-parallel job, read from the launcher's environment
// (interfaces.md, "Distributed launch"). Kept apart from train/distributed.h so that
// programs can ask "am I rank 0?" without connecting to anything.
#include <map>
#include <optional>
#include <string>

namespace qf::train {

struct DistEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "single";  // "torchrun", "slurm", "openmpi", "single"
  // QF_STORE_PREFIX: set by `quantfork experiment` for the runs it starts (run groups,
  // experiments/run_groups.h). The store at MASTER_ADDR:MASTER_PORT is then hosted by the
  // experiment (every rank of the run is a client) and the run's keys live under this
  // prefix, so that runs sharing the store do not meet each other's keys. Empty: rank 0
  // hosts the store itself (unless torchrun's agent does).
  std::string store_prefix;
  // CUDA_VISIBLE_DEVICES as the launcher set it (nullopt: unset, every GPU of the node).
  std::optional<std::string> cuda_visible_devices;

  // The CUDA device of this rank on its node: LOCAL_RANK counts the ranks of a node, so
  // with all the node's GPUs visible (CUDA_VISIBLE_DEVICES unset or listing at least
  // LOCAL_RANK + 1 of them: torchrun --nproc-per-node 8, srun --gpus-per-node 8) it is
  // device LOCAL_RANK; a launcher that binds one GPU per rank (srun --gpus-per-task 1,
  // CUDA_VISIBLE_DEVICES of one entry) makes it device 0. ConfigError when LOCAL_RANK
  // points past the visible devices, or none is visible.
  int cuda_device_index() const;

  // The first launcher whose variables are present wins, in this order:
  //  - torchrun: RANK, WORLD_SIZE, LOCAL_RANK (default 0), MASTER_ADDR, MASTER_PORT.
  //  - Open MPI: OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK,
  //    MASTER_ADDR, MASTER_PORT. Before Slurm because mpirun inside an allocation
  //    inherits the batch step's SLURM_PROCID (0 in every process).
  //  - Slurm (srun): SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; the master is MASTER_ADDR,
  //    else the first host of SLURM_JOB_NODELIST (SLURM_NODELIST), through
  //    `scontrol show hostnames` where it exists, else parsed (node[01-04],gpu7 ...). The
  //    port is MASTER_PORT, else 20000 + SLURM_JOB_ID % 10000, so that two jobs sharing a
  //    node do not fight over 29500.
  //  - none: one process.
  // MASTER_PORT defaults to 29500 for torchrun and Open MPI. LOCAL_RANK may exceed the
  // world size (a run group's ranks keep their node-local rank, experiments/run_groups.h).
  // A non-numeric or out-of-range value, RANK >= WORLD_SIZE, a missing partner variable, or no
  // master address for more than one rank is a ConfigError naming the variable.
  static DistEnv from_environment();
  // The same rules over `vars` instead of the process environment, resolving Slurm node
  // lists by parsing only (never running scontrol): for tests and for callers that
  // collected the variables themselves.
  static DistEnv from_variables(const std::map<std::string, std::string>& vars);
};

// The first host of a Slurm node list ("node[01-04],gpu7" -> "node01", "a[3,5-7]b" ->
// "a3b"), keeping zero padding. `variable` names the list in errors (ConfigError when
// the brackets do not balance or the list is empty).
std::string first_slurm_host(const std::string& nodelist,
                             const std::string& variable = "SLURM_JOB_NODELIST");

}  // namespace qf::train
