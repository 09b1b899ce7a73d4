// Control of the SIMT emulation runtime from the test bindings: the schedule of the next launches
// and counters of what the last ones did.
#pragma once

#include <cstddef>
#include <cstdint>

namespace simt {

// How the scheduler picks the next fiber at every synchronisation point.
enum class Policy : int {
  Uniform = 0,               // any runnable thread, uniformly at random
  WarpPriority = 1,          // the runnable lanes of the highest-priority warp (random per block)
  WarpPriorityDemotion = 2,  // the same, and the chosen warp drops to the lowest priority 1 time in 8
};

struct Stats {
  uint64_t launches, blocks, switches, barriers, collectives, yields;
  size_t shared_vars;  // __shared__ variables found in the module (refilled at every block start)
};

void set_schedule(uint64_t seed, Policy policy);
Stats stats();
void reset_stats();

}  // namespace simt
