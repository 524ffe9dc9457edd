#pragma once
// The offline subcommands: `validate` and `routes` compile a config path without serving it.

#include <string>

namespace proxenos::app {

// Prints every problem and warning; returns 0 when there are no errors, 1 otherwise.
int validate_command(const std::string& path, const std::string& ambassador_id);
// Prints the compiled route table; returns 1 when the config has errors (the table of what
// would still be served is printed anyway).
int routes_command(const std::string& path, const std::string& ambassador_id);

}  // namespace proxenos::app
