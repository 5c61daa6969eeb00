// toml++'s implementation, compiled once into this library. Debian's package
// also ships it as a shared library (libtomlplusplus3, TOML_HEADER_ONLY=0),
// but a copy compiled here is instrumented by the sanitizer builds and by
// libFuzzer's coverage, which is where a parser of outside input most needs
// to be. The other files of the library include it as declarations only
// (TOML_HEADER_ONLY=0, set for the target).
#define TOML_IMPLEMENTATION
#include "toml.hpp"
