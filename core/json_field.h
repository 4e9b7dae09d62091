#pragma once
// Reading a required member of a JSON object that came from a file (checkpoint state,
// batch cursors): a missing member or one of the wrong type is a FormatError naming the
// file, the object and the key.
#include <nlohmann/json.hpp>
#include <string>

#include "core/errors.h"

namespace qf {

// `what` names the object for messages: "run/checkpoints/step8/trainer_state.json: batch
// cursor" gives '...: batch cursor has no "seed"'.
template <class T>
T json_field(const nlohmann::json& j, const char* key, const std::string& what) {
  const auto it = j.find(key);
  if (it == j.end()) throw FormatError(what + " has no \"" + key + "\"");
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw FormatError(what + " \"" + key + "\" has the wrong type: " + it->dump());
  }
}

}  // namespace qf
