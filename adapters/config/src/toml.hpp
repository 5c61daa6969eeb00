// toml++ as this library includes it (every file that uses it includes this).
//
// toml++ 3.3.0 asserts in debug builds (and assumes, through
// __builtin_assume, in clang release builds) that a table header's key starts
// with a key character; "[+x]" breaks that (found by the config_loader fuzz
// target). With its internal assertions off the parser goes on and reports
// the malformed header as an ordinary parse error; the sanitizer and fuzz
// builds still check everything it does.
#pragma once

#define TOML_ASSERT(expr) ((void)0)
#include <toml++/toml.h>
