// DistEnv: where a process sits in the job, from torchrun's, Slurm's or Open MPI's
// variables; bad values name the variable.
#include "train/dist_env.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "test_support.h"

namespace qf::train {
namespace {

using qf::test::message_of;
using Vars = std::map<std::string, std::string>;

// (variables, the DistEnv they describe), one row per launcher and per fallback.
TEST(DistEnv, Launchers) {
  const auto env = [](int rank, int world, int local, std::string addr, int port,
                      std::string launcher) {
    DistEnv e;
    e.rank = rank;
    e.world_size = world;
    e.local_rank = local;
    e.master_addr = std::move(addr);
    e.master_port = port;
    e.launcher = std::move(launcher);
    return e;
  };
  const Vars slurm{{"SLURM_PROCID", "7"},
                   {"SLURM_NTASKS", "8"},
                   {"SLURM_LOCALID", "3"},
                   {"SLURM_JOB_NODELIST", "node[01-04],gpu7"},
                   {"SLURM_JOB_ID", "4123456"}};
  Vars slurm_master = slurm;
  slurm_master["MASTER_ADDR"] = "head";
  slurm_master["MASTER_PORT"] = "4000";
  // clang-format off
  const std::vector<std::pair<Vars, DistEnv>> table = {
    {{}, env(0, 1, 0, "127.0.0.1", 29500, "single")},
    {{{"RANK", "5"}, {"WORLD_SIZE", "16"}, {"LOCAL_RANK", "5"}, {"MASTER_ADDR", "10.1.2.3"},
      {"MASTER_PORT", "1234"}}, env(5, 16, 5, "10.1.2.3", 1234, "torchrun")},
    // torchrun inside a Slurm allocation: torchrun's variables win.
    {{{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}},
     env(0, 1, 0, "127.0.0.1", 29500, "torchrun")},
    {slurm, env(7, 8, 3, "node01", 20000 + 4123456 % 10000, "slurm")},
    {slurm_master, env(7, 8, 3, "head", 4000, "slurm")},
    // mpirun inside a Slurm allocation: every process inherits SLURM_PROCID=0.
    {{{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "4"},
      {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}, {"MASTER_ADDR", "host0"}, {"SLURM_PROCID", "0"}},
     env(2, 4, 0, "host0", 29500, "openmpi")},
  };
  // clang-format on
  for (const auto& [vars, want] : table) {
    const DistEnv got = DistEnv::from_variables(vars);
    EXPECT_EQ(got.launcher, want.launcher);
    EXPECT_EQ(std::make_tuple(got.rank, got.world_size, got.local_rank),
              std::make_tuple(want.rank, want.world_size, want.local_rank))
        << want.launcher;
    EXPECT_EQ(got.master_addr, want.master_addr) << want.launcher;
    EXPECT_EQ(got.master_port, want.master_port) << want.launcher;
  }
}

TEST(DistEnv, SlurmNodeLists) {
  const std::vector<std::pair<std::string, std::string>> table = {
      {"node[01-04],gpu7", "node01"},         {"gpu7,node[1-2]", "gpu7"}, {"a[3,5-7]b", "a3b"},
      {"rack[2-3]-n[009-010]", "rack2-n009"}, {"single", "single"},       {"n[7]", "n7"}};
  for (const auto& [list, first] : table) EXPECT_EQ(first_slurm_host(list), first) << list;
  for (const std::string bad : {"node[01-04", "node01]", "", "[-3]", ",a", "n[[1]]"}) {
    const auto msg = message_of<ConfigError>([&] { first_slurm_host(bad); });
    EXPECT_NE(msg.find("SLURM_JOB_NODELIST"), std::string::npos) << bad << ": " << msg;
  }
}

TEST(DistEnv, BadValuesNameTheVariable) {
  const std::vector<std::pair<Vars, std::string>> table = {
      {{{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}, "RANK=2"},
      {{{"RANK", "x"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}, "RANK='x'"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "0"}}, "WORLD_SIZE=0"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2 "}}, "WORLD_SIZE='2 '"},
      {{{"RANK", "0"}}, "WORLD_SIZE is not set"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}}, "MASTER_ADDR"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}},
       "MASTER_PORT"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"LOCAL_RANK", "-1"}},
       "LOCAL_RANK"},
      {{{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}}, "MASTER_ADDR"},
      {{{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}}, "SLURM_JOB_NODELIST"},
      {{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_NODELIST", "n[1-2"}},
       "SLURM_JOB_NODELIST"},
  };
  for (const auto& [vars, needle] : table) {
    const auto msg = message_of<ConfigError>([&] { DistEnv::from_variables(vars); });
    EXPECT_NE(msg.find(needle), std::string::npos) << "expected '" << needle << "' in: " << msg;
  }
}

TEST(DistEnv, ReadsTheProcessEnvironment) {
  ::setenv("RANK", "1", 1);
  ::setenv("WORLD_SIZE", "3", 1);
  ::setenv("MASTER_ADDR", "example", 1);
  const DistEnv env = DistEnv::from_environment();
  ::unsetenv("RANK");
  ::unsetenv("WORLD_SIZE");
  ::unsetenv("MASTER_ADDR");
  EXPECT_EQ(env.rank, 1);
  EXPECT_EQ(env.world_size, 3);
  EXPECT_EQ(env.master_addr, "example");
}

// 8 GPUs per node × several nodes: LOCAL_RANK picks the GPU among those the launcher
// shows the rank; one visible GPU is device 0 (srun --gpus-per-task 1).
TEST(DistEnv, CudaDeviceOfARank) {
  const auto device = [](int local_rank, std::optional<std::string> visible) {
    DistEnv env;
    env.local_rank = local_rank;
    env.cuda_visible_devices = std::move(visible);
    return env.cuda_device_index();
  };
  EXPECT_EQ(device(5, std::nullopt), 5);
  EXPECT_EQ(device(5, "0,1,2,3,4,5,6,7"), 5);
  EXPECT_EQ(device(7, "GPU-aa,GPU-bb,GPU-cc,GPU-dd,GPU-ee,GPU-ff,GPU-gg,GPU-hh"), 7);
  EXPECT_EQ(device(5, "3"), 0);
  auto msg = message_of<ConfigError>([&] { device(5, "0,1,2,3"); });
  EXPECT_NE(msg.find("LOCAL_RANK"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CUDA_VISIBLE_DEVICES='0,1,2,3'"), std::string::npos) << msg;
  msg = message_of<ConfigError>([&] { device(0, ""); });
  EXPECT_NE(msg.find("CUDA_VISIBLE_DEVICES"), std::string::npos) << msg;
  // Read with the launcher's variables, with or without a launcher.
  EXPECT_EQ(DistEnv::from_variables({{"CUDA_VISIBLE_DEVICES", "2"}}).cuda_visible_devices, "2");
  const DistEnv second_node =
      DistEnv::from_variables({{"RANK", "13"},
                               {"WORLD_SIZE", "16"},
                               {"LOCAL_RANK", "5"},
                               {"MASTER_ADDR", "n0"},
                               {"CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7"}});
  EXPECT_EQ(second_node.cuda_device_index(), 5);
}

// A run of a run group keeps its node-local rank (its GPU) in a smaller world, and meets
// under the experiment's store prefix.
TEST(DistEnv, RunGroupVariables) {
  const DistEnv env = DistEnv::from_variables({{"RANK", "1"},
                                               {"WORLD_SIZE", "2"},
                                               {"LOCAL_RANK", "7"},
                                               {"MASTER_ADDR", "n0"},
                                               {"QF_STORE_PREFIX", "qf/experiment/0/run3/"}});
  EXPECT_EQ(env.local_rank, 7);
  EXPECT_EQ(env.store_prefix, "qf/experiment/0/run3/");
  EXPECT_TRUE(DistEnv::from_variables({}).store_prefix.empty());
}

}  // namespace
}  // namespace qf::train
