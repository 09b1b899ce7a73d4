// The SIMT emulation runtime (see simt.h): one fiber per CUDA thread, blocks one at a time in a
// seeded random order, a scheduler that switches fibers only at synchronisation points and picks
// the next one by a seeded policy, fault detection, and the few CUDA runtime calls the host code
// makes (cudaMemsetAsync, cudaGetLastError, cudaGetErrorString, cudaFuncSetAttribute).
//
// Fibers switch with a 14-instruction x86-64 routine (simt_switch below) rather than ucontext:
// swapcontext makes a sigprocmask system call per switch: 12-14 ns against 383-436 ns on the CI
// machine (switch_bench.cpp). Under AddressSanitizer every switch is announced to it.
#include "simt.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define SIMT_ASAN 1
#endif

#include "simt_control.h"

extern "C" void simt_switch(void** save_sp, void* load_sp);
extern "C" void simt_fiber_start();
// simt_switch: saves the callee-saved registers of the System V ABI on the current stack, stores
// the stack pointer in *save_sp, loads load_sp and restores the other fiber's registers.
// simt_fiber_start: the first "return address" of a new fiber; calls simt_fiber_main(rbx).
asm(R"(
  .text
  .globl simt_switch
  .type simt_switch, @function
simt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size simt_switch, .-simt_switch
  .globl simt_fiber_start
  .type simt_fiber_start, @function
simt_fiber_start:
  movq %rbx, %rdi
  call simt_fiber_main
  ud2
  .size simt_fiber_start, .-simt_fiber_start
)");

namespace simt {
namespace {

constexpr size_t kStackBytes = 256 * 1024;  // ASan frames are large
constexpr unsigned kMaxThreads = 1024;
constexpr size_t kMaxDynamicSmem = 227 * 1024;     // sm_90 opt-in limit
constexpr size_t kDefaultDynamicSmem = 48 * 1024;  // without cudaFuncSetAttribute

enum class Wait { None, Barrier, Collective, Done };

struct Fiber {
  void* sp = nullptr;
  char* stack = nullptr;
  ThreadState state{};
  Wait wait = Wait::None;
  const char* what = nullptr;
  const char* file = nullptr;
  int line = 0;
  unsigned mask = 0;
  void* data = nullptr;  // this lane's argument of the collective it waits in
};

struct Runtime {
  // Configuration (simt_control.h).
  uint64_t seed = 1;
  Policy policy = Policy::Uniform;
  // Current launch.
  const LaunchConfig* config = nullptr;
  void (*body)(void*) = nullptr;
  void* context = nullptr;
  BlockState block{};
  std::vector<Fiber> fibers;
  Fiber* current = nullptr;
  void* scheduler_sp = nullptr;
  std::mt19937_64 rng;
  std::vector<int> warp_priority;
  // Fibers of the block by state, kept by set_wait(): the scheduler's decisions are O(warps).
  std::vector<int> warp_runnable;
  size_t runnable = 0, at_barrier = 0, done = 0;
  bool faulted = false;
  std::string fault_message;
  cudaError_t error = cudaSuccess;  // sticky until cudaGetLastError
  std::string error_message;
  std::map<const void*, size_t> max_dynamic_smem;
  std::vector<std::pair<void*, size_t>> shared_vars;
  bool shared_vars_found = false;
  Stats stats{};
};

Runtime& rt() {
  static Runtime r;
  return r;
}

void count(const Fiber& f, int delta) {
  Runtime& r = rt();
  if (f.wait == Wait::None) {
    r.warp_runnable[f.state.warp] += delta;
    r.runnable += delta;
  }
  if (f.wait == Wait::Barrier) r.at_barrier += delta;
  if (f.wait == Wait::Done) r.done += delta;
}

void set_wait(Fiber& f, Wait w) {
  count(f, -1);
  f.wait = w;
  count(f, +1);
}

void set_error(cudaError_t e, std::string message) {
  Runtime& r = rt();
  if (r.error == cudaSuccess) {
    r.error = e;
    r.error_message = std::move(message);
  }
}

// ---- Switching ---------------------------------------------------------------------------------
void switch_to(void** save, void* load, const void* stack_bottom, size_t stack_size) {
#ifdef SIMT_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, stack_bottom, stack_size);
  simt_switch(save, load);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  (void)stack_bottom;
  (void)stack_size;
  simt_switch(save, load);
#endif
}

// The scheduler's own stack, as ASan needs it when a fiber switches back.
const void* g_main_stack_bottom = nullptr;
size_t g_main_stack_size = 0;

void to_scheduler() {
  Runtime& r = rt();
  ++r.stats.switches;
  switch_to(&r.current->sp, r.scheduler_sp, g_main_stack_bottom, g_main_stack_size);
}

void to_fiber(Fiber& f) {
  Runtime& r = rt();
  r.current = &f;
#ifdef SIMT_ASAN
  if (!g_main_stack_bottom) {  // learn the scheduler stack's bounds once
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack, kStackBytes);
    simt_switch(&r.scheduler_sp, f.sp);
    __sanitizer_finish_switch_fiber(fake, &g_main_stack_bottom, &g_main_stack_size);
    r.current = nullptr;
    return;
  }
#endif
  switch_to(&r.scheduler_sp, f.sp, f.stack, kStackBytes);
  r.current = nullptr;
}

}  // namespace
}  // namespace simt

extern "C" void simt_fiber_main(simt::Fiber* f) {
  using namespace simt;
#ifdef SIMT_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &g_main_stack_bottom, &g_main_stack_size);
#endif
  Runtime& r = rt();
  r.body(r.context);
  set_wait(*f, Wait::Done);
  to_scheduler();
  __builtin_unreachable();
}

namespace simt {
namespace {

void start_fiber(Fiber& f) {
  if (!f.stack) {
    void* m = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (m == MAP_FAILED) {
      std::perror("simt: mmap fiber stack");
      std::abort();
    }
    f.stack = static_cast<char*>(m);
  }
#ifdef SIMT_ASAN
  ASAN_UNPOISON_MEMORY_REGION(f.stack, kStackBytes);  // frames of an abandoned launch
#endif
  // Initial frame popped by simt_switch: r15 r14 r13 r12 rbx rbp, then the return address.
  auto* top = reinterpret_cast<uint64_t*>(f.stack + kStackBytes);
  top -= 2;  // keeps rsp % 16 == 0 at simt_fiber_start, so its call aligns the callee
  *--top = reinterpret_cast<uint64_t>(&simt_fiber_start);
  *--top = 0;                                  // rbp
  *--top = reinterpret_cast<uint64_t>(&f);     // rbx: simt_fiber_main's argument
  for (int i = 0; i < 4; ++i) *--top = 0;      // r12-r15
  f.sp = top;
  f.wait = Wait::None;  // counted by run_block
}

// ---- Faults --------------------------------------------------------------------------------------
std::string where(const Fiber& f) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "thread (%u,%u,%u)", f.state.thread_idx.x, f.state.thread_idx.y,
                f.state.thread_idx.z);
  return buf;
}

std::string launch_prefix() {
  Runtime& r = rt();
  char buf[512];
  std::snprintf(buf, sizeof buf, "simt: %s, block (%u,%u,%u): ", r.config->name,
                r.block.block_idx.x, r.block.block_idx.y, r.block.block_idx.z);
  return buf;
}

// ---- Shared memory ---------------------------------------------------------------------------------
// __shared__ variables are function statics (simt.h). They are found once in this module's ELF
// symbol table: local statics (_ZZ...) of functions in namespace ganloss whose name ends in
// "_kernel". (GCC ignores section attributes on statics of function templates, so they cannot be
// gathered into one section.)
void find_shared_vars() {
  Runtime& r = rt();
  if (r.shared_vars_found) return;
  r.shared_vars_found = true;
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&find_shared_vars), &info) || !info.dli_fname) return;
  std::ifstream in(info.dli_fname, std::ios::binary | std::ios::ate);
  std::vector<char> elf(size_t(std::max<std::streamoff>(0, in.tellg())));
  in.seekg(0);
  in.read(elf.data(), std::streamsize(elf.size()));
  if (elf.size() < sizeof(Elf64_Ehdr)) return;
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(elf.data());
  const auto* sh = reinterpret_cast<const Elf64_Shdr*>(elf.data() + eh->e_shoff);
  for (int i = 0; i < eh->e_shnum; ++i) {
    if (sh[i].sh_type != SHT_SYMTAB) continue;
    const char* names = elf.data() + sh[sh[i].sh_link].sh_offset;
    const auto* syms = reinterpret_cast<const Elf64_Sym*>(elf.data() + sh[i].sh_offset);
    const size_t count = sh[i].sh_size / sizeof(Elf64_Sym);
    for (size_t k = 0; k < count; ++k) {
      const Elf64_Sym& s = syms[k];
      const char* name = names + s.st_name;
      if (ELF64_ST_TYPE(s.st_info) != STT_OBJECT || s.st_size == 0 || s.st_shndx == SHN_UNDEF ||
          std::strncmp(name, "_ZZ", 3) != 0)
        continue;
      int status = 0;
      char* demangled = abi::__cxa_demangle(name, nullptr, nullptr, &status);
      if (status != 0 || !demangled) continue;
      const std::string d = demangled;
      std::free(demangled);
      // "ganloss::(anonymous namespace)::feature_loss_kernel<float, ...>(ganloss::FeatureLaunch)::smem"
      const size_t close = d.rfind(")::");  // end of the function's parameter list
      if (d.rfind("ganloss::", 0) != 0 || close == std::string::npos) continue;
      size_t open = close + 1;
      for (int depth = 0; open-- > 0;) {
        if (d[open] == ')') ++depth;
        if (d[open] == '(' && --depth == 0) break;
      }
      if (open == std::string::npos) continue;
      std::string function = d.substr(0, open);
      if (!function.empty() && function.back() == '>') {  // strip the template arguments
        int depth = 0;
        size_t j = function.size();
        while (j-- > 0) {
          if (function[j] == '>') ++depth;
          if (function[j] == '<' && --depth == 0) break;
        }
        function.resize(j);
      }
      if (function.size() < 7 || function.compare(function.size() - 7, 7, "_kernel") != 0)
        continue;
      r.shared_vars.emplace_back(static_cast<char*>(info.dli_fbase) + s.st_value, s.st_size);
    }
  }
}

// ---- Scheduling ------------------------------------------------------------------------------------
// The index of the fiber to run next, or -1 when none is runnable.
int pick_runnable() {
  Runtime& r = rt();
  if (r.runnable == 0) return -1;
  const int warps = int(r.warp_runnable.size());
  int warp = -1;
  uint64_t k = 0;  // the k-th runnable lane of `warp`
  if (r.policy == Policy::Uniform) {
    k = r.rng() % r.runnable;
    for (warp = 0; k >= uint64_t(r.warp_runnable[warp]); ++warp) k -= r.warp_runnable[warp];
  } else {  // the highest-priority warp with runnable lanes
    for (int w = 0; w < warps; ++w)
      if (r.warp_runnable[w] > 0 && (warp < 0 || r.warp_priority[w] > r.warp_priority[warp]))
        warp = w;
    k = r.rng() % uint64_t(r.warp_runnable[warp]);
    if (r.policy == Policy::WarpPriorityDemotion && r.rng() % 8 == 0)
      r.warp_priority[warp] = *std::min_element(r.warp_priority.begin(), r.warp_priority.end()) - 1;
  }
  for (size_t i = size_t(warp) * 32;; ++i)
    if (r.fibers[i].wait == Wait::None && k-- == 0) return int(i);
}

std::string describe_waits() {
  Runtime& r = rt();
  std::map<std::string, std::vector<int>> groups;
  for (const Fiber& f : r.fibers) {
    std::string key;
    if (f.wait == Wait::Done) key = "exited";
    else {
      char buf[256];
      std::snprintf(buf, sizeof buf, "wait at %s (%s:%d, mask 0x%08x)", f.what, f.file, f.line,
                    f.mask);
      key = buf;
    }
    groups[key].push_back(f.state.linear);
  }
  std::string out;
  for (auto& [key, threads] : groups) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "; %zu threads (first %d) ", threads.size(), threads[0]);
    out += buf + key;
  }
  return out;
}

// Releases a completed __syncthreads: every thread of the block waits at a barrier.
bool try_release_barrier() {
  Runtime& r = rt();
  if (r.at_barrier != r.fibers.size()) return false;
  const Fiber* first = &r.fibers[0];
  for (const Fiber& f : r.fibers) {
    if (f.line == first->line && std::strcmp(f.file, first->file) == 0) continue;
    char buf[512];
    std::snprintf(buf, sizeof buf, "__syncthreads reached from different lines: %s at %s:%d, "
                  "%s at %s:%d", where(*first).c_str(), first->file, first->line,
                  where(f).c_str(), f.file, f.line);
    r.faulted = true;
    r.fault_message = launch_prefix() + buf;
    return true;
  }
  for (Fiber& f : r.fibers) set_wait(f, Wait::None);
  ++r.stats.barriers;
  return true;
}

void run_block() {
  Runtime& r = rt();
  const unsigned threads = r.config->block.x * r.config->block.y * r.config->block.z;
  r.fibers.resize(threads);
  const size_t warps = (threads + 31) / 32;
  r.warp_priority.resize(warps);
  r.warp_runnable.assign(warps, 0);
  r.runnable = threads;
  r.at_barrier = r.done = 0;
  for (size_t w = 0; w < r.warp_priority.size(); ++w) r.warp_priority[w] = int(w);
  std::shuffle(r.warp_priority.begin(), r.warp_priority.end(), r.rng);
  for (unsigned t = 0; t < threads; ++t) {
    Fiber& f = r.fibers[t];
    const dim3& b = r.config->block;
    f.state.thread_idx = {t % b.x, t / b.x % b.y, t / (b.x * b.y)};
    f.state.linear = int(t);
    f.state.warp = int(t / 32);
    f.state.lane = int(t % 32);
    start_fiber(f);
    ++r.warp_runnable[f.state.warp];
  }
  for (const auto& [p, n] : r.shared_vars) std::memset(p, 0xff, n);
  while (!r.faulted) {
    const int next = pick_runnable();
    if (next >= 0) {
      to_fiber(r.fibers[next]);
      continue;
    }
    if (r.done == r.fibers.size()) return;
    if (try_release_barrier()) continue;
    r.faulted = true;
    r.fault_message = launch_prefix() + "deadlock: a barrier or warp collective that not every "
                                        "required thread reaches" + describe_waits();
  }
}

}  // namespace

// ---- The API of simt.h ---------------------------------------------------------------------------
const ThreadState& this_thread() {
  Runtime& r = rt();
  if (!r.current) {
    std::fprintf(stderr, "simt: a CUDA built-in was used outside a kernel\n");
    std::abort();
  }
  return r.current->state;
}

const BlockState& this_block() { return rt().block; }

void fault(const char* fmt, ...) {
  Runtime& r = rt();
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (!r.current) {  // only fibers fault; the scheduler sets fault_message itself
    std::fprintf(stderr, "simt: fault outside a fiber: %s\n", buf);
    std::abort();
  }
  r.faulted = true;
  r.fault_message = launch_prefix() + where(*r.current) + ": " + buf;
  set_wait(*r.current, Wait::Done);  // never resumed: the launch is abandoned
  to_scheduler();
  __builtin_unreachable();
}

void syncthreads(const char* file, int line) {
  Runtime& r = rt();
  Fiber& f = *r.current;
  f.what = "__syncthreads";
  f.file = file;
  f.line = line;
  f.mask = 0;
  set_wait(f, Wait::Barrier);
  to_scheduler();
}

void yield(const char* what, const char* file, int line) {
  Runtime& r = rt();
  Fiber& f = *r.current;
  f.what = what;
  f.file = file;
  f.line = line;
  ++r.stats.yields;
  to_scheduler();
}

void warp_collective(const char* what, const char* file, int line, unsigned mask, void* data,
                     CollectiveFn complete) {
  Runtime& r = rt();
  Fiber& me = *r.current;
  const int lane = me.state.lane, warp = me.state.warp;
  if (!(mask >> lane & 1u)) fault("%s at %s:%d: the calling lane %d is outside the mask 0x%08x",
                                  what, file, line, lane, mask);
  Fiber* lanes = &r.fibers[size_t(warp) * 32];
  const int warp_size = int(std::min<size_t>(32, r.fibers.size() - size_t(warp) * 32));
  if (warp_size < 32 && (mask >> warp_size))
    fault("%s at %s:%d: the mask 0x%08x names lanes beyond the block's last warp", what, file,
          line, mask);
  // Lanes of this warp already waiting in a collective: same mask -> the same collective.
  for (int l = 0; l < warp_size; ++l) {
    const Fiber& o = lanes[l];
    if (o.wait != Wait::Collective) continue;
    if (o.mask != mask && (o.mask & mask))
      fault("%s at %s:%d with mask 0x%08x while lane %d waits in %s at %s:%d with the "
            "overlapping mask 0x%08x", what, file, line, mask, l, o.what, o.file, o.line, o.mask);
    if (o.mask == mask && (o.line != line || std::strcmp(o.file, file) != 0 ||
                           std::strcmp(o.what, what) != 0))
      fault("%s at %s:%d while lane %d waits in %s at %s:%d with the same mask 0x%08x", what,
            file, line, l, o.what, o.file, o.line, mask);
  }
  me.what = what;
  me.file = file;
  me.line = line;
  me.mask = mask;
  me.data = data;
  set_wait(me, Wait::Collective);
  bool all = true;
  for (int l = 0; l < 32 && all; ++l)
    if (mask >> l & 1u) all = lanes[l].wait == Wait::Collective && lanes[l].mask == mask;
  if (all) {
    void* lane_data[32] = {};
    for (int l = 0; l < 32; ++l)
      if (mask >> l & 1u) lane_data[l] = lanes[l].data;
    complete(lane_data, mask, what);
    for (int l = 0; l < 32; ++l)
      if (mask >> l & 1u) set_wait(lanes[l], Wait::None);
    ++r.stats.collectives;
  }
  to_scheduler();  // a switch point even for the last lane to arrive
}

void run_grid(const LaunchConfig& config, void (*body)(void*), void* context) {
  Runtime& r = rt();
  const dim3 g = config.grid, b = config.block;
  const uint64_t threads = uint64_t(b.x) * b.y * b.z;
  const uint64_t blocks = uint64_t(g.x) * g.y * g.z;
  char buf[512];
  if (threads == 0 || threads > kMaxThreads || b.z > 64 || blocks == 0 || g.y > 65535 ||
      g.z > 65535 || g.x > 0x7fffffffu) {
    std::snprintf(buf, sizeof buf, "simt: %s: invalid launch configuration grid (%u,%u,%u) "
                  "block (%u,%u,%u)", config.name, g.x, g.y, g.z, b.x, b.y, b.z);
    set_error(cudaErrorInvalidConfiguration, buf);
    return;
  }
  auto limit = r.max_dynamic_smem.find(config.kernel);
  const size_t smem_limit = limit != r.max_dynamic_smem.end() ? limit->second : kDefaultDynamicSmem;
  if (config.dynamic_smem_bytes > smem_limit) {
    std::snprintf(buf, sizeof buf, "simt: %s: %zu bytes of dynamic shared memory exceed %zu "
                  "(cudaFuncSetAttribute raises it up to %zu)", config.name,
                  config.dynamic_smem_bytes, smem_limit, kMaxDynamicSmem);
    set_error(cudaErrorInvalidValue, buf);
    return;
  }
  find_shared_vars();
  r.config = &config;
  r.body = body;
  r.context = context;
  r.faulted = false;
  r.rng.seed(r.seed * 0x9E3779B97F4A7C15ull + ++r.stats.launches);
  std::vector<uint64_t> order(blocks);
  for (uint64_t i = 0; i < blocks; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), r.rng);
  for (uint64_t id : order) {
    r.block.block_idx = {unsigned(id % g.x), unsigned(id / g.x % g.y), unsigned(id / (uint64_t(g.x) * g.y))};
    r.block.block_dim = b;
    r.block.grid_dim = g;
    // A fresh exact-size, 128-byte aligned allocation per block (AddressSanitizer sees
    // overruns), filled with 0xff.
    void* smem = nullptr;
    if (config.dynamic_smem_bytes && posix_memalign(&smem, 128, config.dynamic_smem_bytes) != 0) {
      std::perror("simt: dynamic shared memory");
      std::abort();
    }
    if (smem) std::memset(smem, 0xff, config.dynamic_smem_bytes);
    r.block.dynamic_smem = static_cast<unsigned char*>(smem);
    r.block.dynamic_smem_bytes = config.dynamic_smem_bytes;
    ++r.stats.blocks;
    run_block();
    std::free(smem);
    if (r.faulted) {
      set_error(cudaErrorLaunchFailure, r.fault_message);
      break;
    }
  }
  r.config = nullptr;
}

// ---- simt_control.h --------------------------------------------------------------------------
void set_schedule(uint64_t seed, Policy policy) {
  rt().seed = seed;
  rt().policy = policy;
}

Stats stats() {
  find_shared_vars();
  Stats s = rt().stats;
  s.shared_vars = rt().shared_vars.size();
  return s;
}

void reset_stats() { rt().stats = Stats{}; }

}  // namespace simt

// ---- The CUDA runtime calls made by the host code ----------------------------------------------------
extern "C" {

cudaError_t cudaGetLastError(void) {
  simt::Runtime& r = simt::rt();
  const cudaError_t e = r.error;
  r.error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) { return simt::rt().error; }

const char* cudaGetErrorString(cudaError_t error) {
  static std::string message;
  simt::Runtime& r = simt::rt();
  message = r.error_message.empty() ? "simt: error " + std::to_string(int(error)) : r.error_message;
  if (r.error == cudaSuccess) r.error_message.clear();
  return message.c_str();
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  std::memset(p, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || size_t(value) > simt::kMaxDynamicSmem) return cudaErrorInvalidValue;
    simt::rt().max_dynamic_smem[func] = size_t(value);
  }
  return cudaSuccess;
}

}  // extern "C"
