// The smallest real user of the kernel: swap a value, read it back.
#include <hotswap/hotswap.hpp>

#include <cstdio>

int main() {
  hotswap::domain dom;
  hotswap::slot<int> answer(dom, 41);
  if (!answer.publish(42)) return 1;
  const int seen = answer.call([](const int& v) { return v; });
  std::printf("consumer sees %d\n", seen);
  return seen == 42 ? 0 : 1;
}
