// libFuzzer target: the admin API's request handling on bytes a client sends
// after authenticating (or before: the Authorization header). The first byte
// picks the parser; the rest is the body, file name or header value. Each
// parser must answer a value or a refusal with a status and a reason, never
// crash, and a resolved plugin file must be one plain name inside the
// directory.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <hotswap/http/admin_request.hpp>
#include <string_view>
#include <variant>

namespace h = hotswap::http;

namespace {

template <class T>
void check(const h::admin_parse<T>& r) {
  if (const auto* refusal = std::get_if<h::admin_refusal>(&r))
    if (refusal->message.empty() || refusal->status < 400 || refusal->status > 499) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 7) {
    case 0: check(h::parse_swap_request(input)); break;
    case 1: check(h::parse_rollback_request(input)); break;
    case 2: check(h::parse_policy_request(input)); break;
    case 3: {
      const std::filesystem::path dir = "/srv/plugins";
      const auto r = h::resolve_plugin_file(dir, input);
      check(r);
      if (const auto* p = std::get_if<std::filesystem::path>(&r))
        if (p->parent_path() != dir || p->filename() == ".." || p->filename() == ".") std::abort();
      break;
    }
    case 5: check(h::parse_canary_request(input)); break;
    case 6: check(h::parse_module_request(input)); break;
    default: {
      const auto token = h::bearer_token(input);
      if (token && (token->empty() || !h::constant_time_equal(*token, *token))) std::abort();
      if (h::constant_time_equal(input, std::string(input) + "x")) std::abort();
    }
  }
  return 0;
}
