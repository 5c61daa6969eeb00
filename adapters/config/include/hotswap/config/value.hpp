// The configuration as readers see it: a flat, immutable map from dotted key
// ("limits.max_connections") to a typed value.
//
// A snapshot is built once by the loader (or by an API update), published
// whole through a slot, and never changed after that; a reader that got one
// can keep using it for as long as its read section or pin lasts, and sees
// every key from the same version. Keys are flat because the schema, the diff
// and the error messages all speak of one key at a time; TOML tables are the
// key's dotted prefix.
//
// Flat keys: names joined by '.'; a name holding '.', '"', '[', ']' (or
// empty) is written as a TOML basic string (site."example.com"); an element
// of an array that is not a plain list of strings or integers (an array of
// tables, nested or mixed arrays, floats, booleans, dates) is its array's key
// with its index: servers[0].host, matrix[1][0].
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace hotswap::config {

/// The value types a schema can declare.
enum class value_type { boolean, integer, floating, string, string_list, integer_list, date_time };

/// A TOML date, time or date-time, in the canonical text of its form:
/// 1979-05-27T07:32:00.5-07:00, 1979-05-27T07:32:00, 1979-05-27, 07:32:00
/// (upper-case 'T' and 'Z', a fraction without trailing zeros).
struct datetime {
  enum class form { offset_date_time, local_date_time, local_date, local_time };
  form kind = form::local_date;
  std::string text;

  /// Parses TOML's spelling of a date, time or date-time (any case of T/Z, a
  /// space for T); std::invalid_argument if it is none.
  static datetime parse(std::string_view text);
  /// Within one form: offset date-times by instant, the others by value;
  /// unordered across forms.
  std::partial_ordering operator<=>(const datetime& other) const;
  bool operator==(const datetime& other) const = default;
};

const char* to_string(datetime::form f) noexcept;

const char* to_string(value_type t) noexcept;

/// One configuration value. Equality is exact (floats compare by value).
/// Alternatives in value_type's order.
using value = std::variant<bool, std::int64_t, double, std::string, std::vector<std::string>, std::vector<std::int64_t>,
                           datetime>;

value_type type_of(const value& v) noexcept;

/// TOML spelling of a value, e.g. `"info"`, `[1, 2]`; for messages and diffs.
std::string to_toml_text(const value& v);

/// One complete configuration version. Immutable once published.
class snapshot {
 public:
  using map = std::map<std::string, value, std::less<>>;

  snapshot() = default;
  explicit snapshot(map values) : values_(std::move(values)) {}

  /// The value at `key`, or nullptr when the key is absent.
  const value* find(std::string_view key) const noexcept {
    const auto it = values_.find(key);
    return it == values_.end() ? nullptr : &it->second;
  }
  bool contains(std::string_view key) const noexcept { return find(key) != nullptr; }

  /// The value at `key` as a T; std::nullopt when absent or of another type.
  template <class T>
  std::optional<T> get(std::string_view key) const {
    const value* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (const T* typed = std::get_if<T>(v)) return *typed;
    return std::nullopt;
  }

  /// Typed accessors for keys the schema guarantees (required or defaulted):
  /// they throw std::out_of_range naming the key if it is absent or mistyped.
  bool boolean(std::string_view key) const { return must<bool>(key); }
  std::int64_t integer(std::string_view key) const { return must<std::int64_t>(key); }
  double floating(std::string_view key) const { return must<double>(key); }
  const std::string& string(std::string_view key) const { return must<std::string>(key); }
  const std::vector<std::string>& string_list(std::string_view key) const { return must<std::vector<std::string>>(key); }
  const std::vector<std::int64_t>& integer_list(std::string_view key) const {
    return must<std::vector<std::int64_t>>(key);
  }
  const datetime& date_time(std::string_view key) const { return must<datetime>(key); }
  /// How many elements the array at `key` has (keys key[0]..., as arrays of
  /// tables and mixed arrays are flattened): one more than the highest index.
  std::size_t count(std::string_view key) const;

  /// Every key under `prefix.` (a schema map such as routes.*), with the
  /// prefix stripped and a quoted name unquoted: {"/api" -> "app"}.
  std::map<std::string, value, std::less<>> section(std::string_view prefix) const;

  const map& values() const noexcept { return values_; }
  std::size_t size() const noexcept { return values_.size(); }
  bool operator==(const snapshot& other) const = default;

 private:
  template <class T>
  const T& must(std::string_view key) const;

  map values_;
};

}  // namespace hotswap::config
