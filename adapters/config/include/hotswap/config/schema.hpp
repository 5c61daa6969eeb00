// What a configuration may contain, declared in C++ by the program that reads
// it. Every key it accepts is named with its type and rules; anything else in
// a file is an error, so a typo ("max_conections") is refused at the line it
// is on instead of silently leaving the default in force.
//
//   hotswap::config::schema s;
//   s.integer("limits.max_connections").range(1, 65536).default_to(std::int64_t{1024});
//   s.string("log.level").one_of({"debug", "info", "warn", "error"}).default_to("info");
//   s.string("server.name").required().pattern("[a-z][a-z0-9-]*");
//   s.string_map("routes").pattern("/.*");        // any routes."<prefix>" = "<string>"
//   s.validator([](const hotswap::config::snapshot& c) -> std::optional<hotswap::config::veto> {
//     if (c.integer("limits.max_body") > c.integer("limits.max_buffer"))
//       return hotswap::config::veto{"limits.max_body", "must not exceed limits.max_buffer"};
//     return std::nullopt;
//   });
//
// Rules per key: type, required or a default, an inclusive range (integers,
// floats, and each element of an integer list; for date-times `between`, which
// also fixes their form), a list of allowed strings, a regular expression that
// the whole string must match (ECMAScript syntax), and a documentation line.
//
// Arrays other than plain lists of strings or integers are declared by their
// elements, with [] for "any index" (value.hpp): an array of tables with
//   cfg::schema server;  server.string("host").required();  server.integer("port").default_to(std::int64_t{80});
//   s.table_list("servers", server);           // [[servers]] host = "a"  -> servers[0].host
// and any other array element by its rule: s.floating("weights[]"),
// s.integer("matrix[][]"), s.boolean("flags[]"). Validators see the whole candidate snapshot after
// the per-key rules passed and can veto it, naming the key to blame.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "value.hpp"

namespace hotswap::config {

/// The reserved top-level key in which a file records the history major
/// version it was written from (write-to-disk maintains it). Not part of any
/// schema; never in a snapshot.
inline constexpr std::string_view history_major_key = "_history_major";

/// A validator's refusal: which key to point at (empty: the file's start) and why.
struct veto {
  std::string key;
  std::string reason;
};

using validator_fn = std::function<std::optional<veto>(const snapshot&)>;

/// The rules of one key (or, for a map, of every key under its prefix).
struct key_rule {
  std::string key;
  value_type type = value_type::string;
  bool is_map = false;  ///< matches every `key.<name>` rather than `key` itself
  bool required = false;
  std::optional<value> default_value;
  std::optional<double> min, max;  ///< inclusive; integers, floats, integer-list elements
  std::optional<datetime> earliest, latest;  ///< inclusive; date-times (of the bounds' form)
  std::vector<std::string> allowed;  ///< strings and string-list elements; empty: any
  /// Old spellings of allowed strings, refused with an error naming the new one.
  std::vector<std::pair<std::string, std::string>> renamed;
  std::string pattern_text;          ///< whole-match regex; empty: any
  std::shared_ptr<const std::regex> pattern;
  std::string doc;

  /// Why `v` breaks this rule (empty: it does not). `v` has the rule's type.
  std::string check(const value& v) const;
};

class schema {
 public:
  /// Chained setters for the rule just declared. Setters throw
  /// std::invalid_argument on contradictions (a default of the wrong type, a
  /// default outside the range, a pattern that does not compile).
  class rule_builder {
   public:
    rule_builder& required();
    rule_builder& default_to(value v);
    /// A string literal (a const char* overload would also catch 0 and false).
    template <std::size_t N>
    rule_builder& default_to(const char (&s)[N]) {
      return default_to(value{std::string(s)});
    }
    rule_builder& range(double min, double max);
    /// Date-times: inclusive bounds in TOML's spelling ("2024-01-01",
    /// "1979-05-27T07:32:00Z"), both of one form, which values must have too.
    rule_builder& between(std::string_view earliest, std::string_view latest);
    rule_builder& min(double m);
    rule_builder& max(double m);
    rule_builder& one_of(std::vector<std::string> allowed);
    /// `old_spelling` was renamed `new_spelling`: refused with an error that
    /// names the new spelling, rather than a bare "is not one of".
    rule_builder& renamed(std::string old_spelling, std::string new_spelling);
    rule_builder& pattern(std::string regex);
    rule_builder& doc(std::string text);

   private:
    friend class schema;
    explicit rule_builder(key_rule& r) : rule_(r) {}
    void check_default() const;
    key_rule& rule_;
  };

  rule_builder boolean(std::string key) { return add(std::move(key), value_type::boolean, false); }
  rule_builder integer(std::string key) { return add(std::move(key), value_type::integer, false); }
  rule_builder floating(std::string key) { return add(std::move(key), value_type::floating, false); }
  rule_builder string(std::string key) { return add(std::move(key), value_type::string, false); }
  rule_builder string_list(std::string key) { return add(std::move(key), value_type::string_list, false); }
  rule_builder integer_list(std::string key) { return add(std::move(key), value_type::integer_list, false); }
  rule_builder date_time(std::string key) { return add(std::move(key), value_type::date_time, false); }
  /// An array of tables at `key` whose every element follows `element`'s
  /// rules (its keys are declared as key[].<name>; its validators do not run).
  void table_list(const std::string& key, const schema& element);
  /// Every `key.<name> = <value of type t>`: a table whose names the operator
  /// chooses (routes, per-module settings). Names may not contain '.'.
  rule_builder map_of(std::string key, value_type t) { return add(std::move(key), t, true); }
  rule_builder string_map(std::string key) { return map_of(std::move(key), value_type::string); }

  /// Runs on every candidate after the per-key rules passed, in declaration order.
  void validator(validator_fn fn) { validators_.push_back(std::move(fn)); }

  /// The rule for a flat key: an exact key, or the map whose prefix it is under.
  const key_rule* rule_for(std::string_view key) const;
  /// Whether `prefix` names a table the schema declares keys under.
  bool is_section(std::string_view prefix) const;

  const std::deque<key_rule>& rules() const noexcept { return rules_; }
  const std::vector<validator_fn>& validators() const noexcept { return validators_; }

 private:
  rule_builder add(std::string key, value_type t, bool is_map);

  std::deque<key_rule> rules_;  // a deque: builders keep references across adds
  std::vector<validator_fn> validators_;
};

}  // namespace hotswap::config
