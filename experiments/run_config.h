#pragma once
// The configuration of one training run, the schema of `quantfork train`: the training
// keys (train/train_config.h), the probe's (quant_probe/probe_config.h) and the probe and
// monitor hooks' (probe_hook.h, monitor_hook.h). The experiment, the sweep and the demo
// build every child run's config against it.
#include "core/config_schema.h"

namespace qf::experiments {

void declare_run_config(ConfigSchema& schema);

}  // namespace qf::experiments
