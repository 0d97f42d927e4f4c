// fma_peak: the machine's fp32 FMA peak in GFLOP/s, with 1 thread and with N threads.
//
//   fma_peak [--threads N] [--seconds S]
//
// Each thread runs 12 independent chains of vector FMAs (acc = acc * a + b), enough to cover
// the FMA latency (4 cycles) on two FMA ports; nothing touches memory inside the loop. One FMA
// on a W-float vector is 2*W FLOPs. Prints one JSON line:
//   {"gflops_1t":..,"gflops_nt":..,"threads":N,"isa":"avx512"}   (isa "avx2" without AVX-512F)
//
// This file is compiled with -O2 -mavx512f -mfma (bench/CMakeLists.txt); the AVX-512 kernel
// runs only where the CPU reports avx512f, the AVX2 FMA one otherwise.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Volatile so the compiler cannot fold the chains into a closed form.
volatile float g_a = 0.999999f;
volatile float g_b = 1e-6f;
std::atomic<double> g_sink{0};

constexpr int kChains = 12;

// Twelve named accumulators (an array would be kept in memory around the asm barrier).
#define DESKML_CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

// Runs `iters` rounds of kChains FMAs on 16-float vectors; returns FLOPs done.
__attribute__((target("avx512f,fma"))) double run_avx512(long iters) {
  const __m512 a = _mm512_set1_ps(g_a), b = _mm512_set1_ps(g_b);
#define INIT(c) __m512 acc##c = _mm512_set1_ps(static_cast<float>(c) * 0.01f);
  DESKML_CHAINS(INIT)
#undef INIT
  for (long i = 0; i < iters; ++i) {
#define STEP(c) acc##c = _mm512_fmadd_ps(acc##c, a, b);
    DESKML_CHAINS(STEP)
#undef STEP
    // Keeps the chains in registers and stops the compiler reasoning across iterations.
    __asm__ volatile(""
                     : "+v"(acc0), "+v"(acc1), "+v"(acc2), "+v"(acc3), "+v"(acc4), "+v"(acc5), "+v"(acc6), "+v"(acc7),
                       "+v"(acc8), "+v"(acc9), "+v"(acc10), "+v"(acc11));
  }
  __m512 s = _mm512_setzero_ps();
#define SUM(c) s = _mm512_add_ps(s, acc##c);
  DESKML_CHAINS(SUM)
#undef SUM
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  double total = 0;
  for (float v : lanes) total += v;
  g_sink.store(g_sink.load() + total);
  return 2.0 * 16.0 * kChains * static_cast<double>(iters);
}

__attribute__((target("avx2,fma"))) double run_avx2(long iters) {
  const __m256 a = _mm256_set1_ps(g_a), b = _mm256_set1_ps(g_b);
#define INIT(c) __m256 acc##c = _mm256_set1_ps(static_cast<float>(c) * 0.01f);
  DESKML_CHAINS(INIT)
#undef INIT
  for (long i = 0; i < iters; ++i) {
#define STEP(c) acc##c = _mm256_fmadd_ps(acc##c, a, b);
    DESKML_CHAINS(STEP)
#undef STEP
    __asm__ volatile(""
                     : "+x"(acc0), "+x"(acc1), "+x"(acc2), "+x"(acc3), "+x"(acc4), "+x"(acc5), "+x"(acc6), "+x"(acc7),
                       "+x"(acc8), "+x"(acc9), "+x"(acc10), "+x"(acc11));
  }
  __m256 s = _mm256_setzero_ps();
#define SUM(c) s = _mm256_add_ps(s, acc##c);
  DESKML_CHAINS(SUM)
#undef SUM
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  double total = 0;
  for (float v : lanes) total += v;
  g_sink.store(g_sink.load() + total);
  return 2.0 * 8.0 * kChains * static_cast<double>(iters);
}

// GFLOP/s with `threads` threads, each running `iters` rounds; the best of `reps` repetitions.
double measure(bool avx512, int threads, long iters, int reps) {
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<double> flops(static_cast<size_t>(threads), 0.0);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) {
        }
        flops[static_cast<size_t>(t)] = avx512 ? run_avx512(iters) : run_avx2(iters);
      });
    }
    while (ready.load() < threads) {
    }
    const auto t0 = Clock::now();
    go.store(true, std::memory_order_release);
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    double total = 0;
    for (double f : flops) total += f;
    best = std::max(best, total / s / 1e9);
  }
  return best;
}

// Rounds per thread that take about `seconds` on one thread.
long calibrate(bool avx512, double seconds) {
  long iters = 1 << 16;
  for (;;) {
    const auto t0 = Clock::now();
    if (avx512)
      run_avx512(iters);
    else
      run_avx2(iters);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (s > 0.05) return std::max(1L, static_cast<long>(static_cast<double>(iters) * seconds / s));
    iters *= 4;
  }
}

}  // namespace

int main(int argc, char** argv) {
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  double seconds = 0.3;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--threads" || arg == "--seconds") && i + 1 < argc) {
      const char* v = argv[++i];
      if (arg == "--threads")
        threads = std::max(1, std::atoi(v));
      else
        seconds = std::max(0.01, std::atof(v));
    } else {
      std::fprintf(stderr, "usage: fma_peak [--threads N] [--seconds S]\n");
      return 2;
    }
  }
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  if (!avx512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
    std::fprintf(stderr, "fma_peak: this CPU has neither AVX-512F nor AVX2+FMA\n");
    return 1;
  }
  const long iters = calibrate(avx512, seconds);
  const double one = measure(avx512, 1, iters, 5);
  const double all = measure(avx512, threads, iters, 5);
  std::printf("{\"gflops_1t\":%.1f,\"gflops_nt\":%.1f,\"threads\":%d,\"isa\":\"%s\"}\n", one, all, threads,
              avx512 ? "avx512" : "avx2");
  return g_sink.load() == 12345.0 ? 3 : 0;  // never true; keeps the results observable
}
