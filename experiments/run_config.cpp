#include "experiments/run_config.h"

#include "experiments/probe_hook.h"
#include "quant_probe/probe_config.h"
#include "train/train_config.h"

namespace qf::experiments {

void declare_run_config(ConfigSchema& s) {
  train::declare_train_config(s);
  quant::declare_probe_config(s);
  declare_probe_hook_config(s);
}

}  // namespace qf::experiments
