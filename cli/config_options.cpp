#include <filesystem>
#include <iostream>

#include "cli/command.h"

namespace qf::cli {

void add_config_options(ArgParser& parser) {
  parser.repeated("config", "FILE", "YAML configuration file; later files win")
      .repeated("set", "KEY=VALUE", "override one key; the value is parsed as YAML")
      .flag("dump-config", "print the resolved configuration as YAML and exit")
      .flag("dump-config-docs", "print the resolved configuration with each key's documentation");
}

bool load_config(const ArgParser& parser, const ConfigSchema& schema, Config& out,
                 const std::string& embedded_yaml, const std::string& embedded_name,
                 const std::vector<std::string>& shortcuts) {
  ConfigLoader loader(schema);
  if (!embedded_yaml.empty()) loader.add_text(embedded_yaml, embedded_name);
  for (const auto& file : parser.all("config")) loader.add_file(file);
  for (const auto& assignment : shortcuts) loader.add_override(assignment);
  for (const auto& assignment : parser.all("set")) loader.add_override(assignment);
  out = loader.resolve(/*require_all=*/!parser.has("dump-config-docs"));
  if (parser.has("dump-config") || parser.has("dump-config-docs")) {
    std::cout << out.dump(parser.has("dump-config-docs"));
    return false;
  }
  return true;
}

}  // namespace qf::cli
