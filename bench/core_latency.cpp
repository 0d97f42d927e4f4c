// core_latency: how long a cache line takes to travel between the first two CPUs this process may
// run on, and back.
//
//   core_latency [--round-trips N]
//
// Two threads, pinned to the two CPUs, pass a counter back and forth through one 64-byte-aligned
// atomic; the time per round trip is the median of 9 batches of N/9 round trips. Prints one JSON
// line: {"round_trip_ns":..,"cpus":[a,b]}.
//
// The bench reports it because a virtual machine's two vCPUs are not always on neighbouring cores:
// on the development VM they sit either on cores that share a last-level cache (about 80-130 ns)
// or on cores that do not (about 350-400 ns), switching every few seconds. Work whose threads
// hand data to each other (every parallel operator of a small network) is much slower in the
// second placement, for deskml and ONNX Runtime alike; the bench marks those rounds.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct alignas(64) Line {
  std::atomic<long> value{0};
};

bool pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  long round_trips = 90000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--round-trips") == 0 && i + 1 < argc) {
      round_trips = std::atol(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: core_latency [--round-trips N]\n");
      return 2;
    }
  }
  if (round_trips < 9) {
    std::fprintf(stderr, "core_latency: --round-trips must be at least 9\n");
    return 2;
  }
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
    std::perror("core_latency: sched_getaffinity");
    return 1;
  }
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c) {
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  }
  if (cpus.size() < 2) {
    std::fprintf(stderr, "core_latency: needs two CPUs, this process may use %zu\n", cpus.size());
    return 1;
  }

  static Line line;
  const long per_batch = round_trips / 9;
  const long total = per_batch * 9;
  std::thread echo([&] {
    pin(cpus[1]);
    for (long i = 0; i < total; ++i) {
      while (line.value.load(std::memory_order_acquire) != 2 * i + 1) {
      }
      line.value.store(2 * i + 2, std::memory_order_release);
    }
  });
  if (!pin(cpus[0])) {
    std::perror("core_latency: pthread_setaffinity_np");
    echo.detach();
    return 1;
  }
  std::vector<double> batches;
  long i = 0;
  for (int b = 0; b < 9; ++b) {
    const auto start = Clock::now();
    for (long end = i + per_batch; i < end; ++i) {
      line.value.store(2 * i + 1, std::memory_order_release);
      while (line.value.load(std::memory_order_acquire) != 2 * i + 2) {
      }
    }
    batches.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
                      static_cast<double>(per_batch));
  }
  echo.join();
  std::sort(batches.begin(), batches.end());
  std::printf("{\"round_trip_ns\":%.0f,\"cpus\":[%d,%d]}\n", batches[4], cpus[0], cpus[1]);
  return 0;
}
