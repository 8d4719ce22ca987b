// A DomainConfig as JSON: what `create -n` prints, what the CLI sends to
// hospesd to create a domain, and what hospesd keeps in its state files.
#pragma once

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "toolstack/domain_config.hpp"

namespace hospes::toolstack {

nlohmann::json domain_to_json(const DomainConfig& domain);
// The inverse, for JSON from a client: every field checked, one error
// naming the first wrong one. Warnings are not carried.
Result<DomainConfig> domain_from_json(const nlohmann::json& json);

}  // namespace hospes::toolstack
