// Measures the fiber switch the SIMT runtime uses (the same 14 instructions as simt_switch in
// simt_runtime.cpp) against ucontext swapcontext: g++ -O2 switch_bench.cpp && ./a.out
// On the 2-core CI-class VM: 12-14 ns against 383-436 ns per switch (swapcontext makes a
// sigprocmask system call each time), so the runtime uses its own switch.
#include <ucontext.h>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <vector>
extern "C" void sw(void** save, void* load);
asm(R"(
.text
.globl sw
sw:
 pushq %rbp; pushq %rbx; pushq %r12; pushq %r13; pushq %r14; pushq %r15
 movq %rsp, (%rdi); movq %rsi, %rsp
 popq %r15; popq %r14; popq %r13; popq %r12; popq %rbx; popq %rbp
 ret
.globl start_tramp
start_tramp:
 movq %rbx, %rdi
 call fiber_main
 ud2
)");
extern "C" void start_tramp();
static void* main_sp; static void* fib_sp; static long N = 2000000;
extern "C" void fiber_main(void*) { for (;;) sw(&fib_sp, main_sp); }
static ucontext_t uc_main, uc_fib;
static void ufib() { for (;;) swapcontext(&uc_fib, &uc_main); }
int main() {
  std::vector<char> st(1 << 16), st2(1 << 16);
  auto* top = (uint64_t*)(st.data() + st.size()); top -= 2;
  *--top = (uint64_t)&start_tramp; *--top = 0; *--top = 0; for (int i=0;i<4;++i) *--top=0; fib_sp = top;
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < N; ++i) sw(&main_sp, fib_sp);
  auto t1 = std::chrono::steady_clock::now();
  getcontext(&uc_fib); uc_fib.uc_stack.ss_sp = st2.data(); uc_fib.uc_stack.ss_size = st2.size(); uc_fib.uc_link = nullptr;
  makecontext(&uc_fib, ufib, 0);
  auto t2 = std::chrono::steady_clock::now();
  for (long i = 0; i < N; ++i) swapcontext(&uc_main, &uc_fib);
  auto t3 = std::chrono::steady_clock::now();
  printf("asm switch: %.1f ns per switch\nswapcontext: %.1f ns per switch\n",
    std::chrono::duration<double,std::nano>(t1-t0).count()/(2*N), std::chrono::duration<double,std::nano>(t3-t2).count()/(2*N));
}
