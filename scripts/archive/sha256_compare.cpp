// SHA-256 per plugin file: the hand-written implementation (commit 49cd963,
// extracted by scripts/archive/bench_sha256.sh as namespace oldh) against libcrypto's
// EVP (kernel/modules/include/hotswap/module/sha256.hpp). Median of N runs.
#include "old_sha256.hpp"
#include <hotswap/module/sha256.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <vector>
int main(int argc,char**argv){ std::ifstream in(argv[1],std::ios::binary); std::vector<char> c((std::istreambuf_iterator<char>(in)),{});
 auto sp=std::as_bytes(std::span(c.data(),c.size())); int reps=argc>2?atoi(argv[2]):101;
 auto med=[&](auto f){ f(); std::vector<double> v; for(int i=0;i<reps;i++){auto a=std::chrono::steady_clock::now(); f(); v.push_back(std::chrono::duration<double,std::micro>(std::chrono::steady_clock::now()-a).count());} std::sort(v.begin(),v.end()); return v[v.size()/2];};
 double o=med([&]{volatile auto s=oldh::sha256_hex(sp);}); double n=med([&]{volatile auto s=hotswap::modules::sha256_hex(sp);});
 printf("{\"file\":\"%s\",\"file_bytes\":%zu,\"handwritten_p50_us\":%.1f,\"openssl_evp_p50_us\":%.1f,\"speedup\":%.2f}\n",argv[1],c.size(),o,n,o/n); }
