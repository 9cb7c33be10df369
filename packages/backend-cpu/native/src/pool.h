// A small fixed thread pool: `run(threads, tasks, fn)` calls fn(0..tasks-1) on up to `threads`
// threads (the caller is one of them) and returns when every task is done.
//
// Tasks are claimed with a compare-and-swap on one 64-bit word holding (job generation, task count,
// next task),
// so a worker only ever runs tasks of the job it woke up for, and the caller waits for completed
// tasks, not for workers: a worker that is slow to wake (the machine is loaded, or it was asleep)
// simply finds nothing left to do, and never delays the caller. Workers spin briefly after a job
// before sleeping on a condition variable, since a session runs kernels back to back. Calls are
// serialized (worker_threads may share the addon).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QF_PAUSE() _mm_pause()
#else
#define QF_PAUSE() ((void)0)
#endif

namespace qf {

class Pool {
 public:
  void run(int threads, int tasks, const std::function<void(int)>& fn) {
    if (tasks <= 0) return;
    if (tasks > kMaxTasks) {
      // More tasks than the state word holds: run them in rounds.
      for (int t0 = 0; t0 < tasks; t0 += kMaxTasks) {
        int n = tasks - t0 < kMaxTasks ? tasks - t0 : kMaxTasks;
        run(threads, n, [&](int i) { fn(t0 + i); });
      }
      return;
    }
    if (threads > tasks) threads = tasks;
    if (threads <= 1) {
      for (int i = 0; i < tasks; i++) fn(i);
      return;
    }
    std::lock_guard<std::mutex> serial(call_mu_);
    grow(threads - 1);
    fn_ = &fn;
    helpers_.store(threads - 1, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    uint64_t gen = (state_.load(std::memory_order_relaxed) >> kGenShift) + 1;
    {
      std::lock_guard<std::mutex> lk(mu_);
      state_.store((gen << kGenShift) | (static_cast<uint64_t>(tasks) << kTaskShift), std::memory_order_release);
    }
    cv_.notify_all();
    work(gen);
    while (done_.load(std::memory_order_acquire) < tasks) QF_PAUSE();
  }

 private:
  void grow(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      int index = static_cast<int>(workers_.size());
      uint64_t start = state_.load(std::memory_order_acquire) >> kGenShift;
      workers_.emplace_back([this, index, start] { loop(index, start); });
      workers_.back().detach();
    }
  }

  // Claims and runs tasks of job `gen` until none is left (or the job is over). The task count is
  // part of the word, so a claim can only succeed on a job that still has that task open.
  void work(uint64_t gen) {
    for (;;) {
      uint64_t s = state_.load(std::memory_order_acquire);
      if ((s >> kGenShift) != gen) return;
      int tasks = static_cast<int>((s >> kTaskShift) & kMaxTasks);
      int i = static_cast<int>(s & kMaxTasks);
      if (i >= tasks) return;
      if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) continue;
      (*fn_)(i);
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  void loop(int index, uint64_t seen) {
    for (;;) {
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
      int spins = 0;
      while ((state_.load(std::memory_order_acquire) >> kGenShift) == seen) {
        QF_PAUSE();
        if (++spins % 256 == 0 && std::chrono::steady_clock::now() > until) {
          std::unique_lock<std::mutex> lk(mu_);
          cv_.wait(lk, [&] { return (state_.load(std::memory_order_acquire) >> kGenShift) != seen; });
        }
      }
      seen = state_.load(std::memory_order_acquire) >> kGenShift;
      if (index < helpers_.load(std::memory_order_relaxed)) work(seen);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_, call_mu_;
  std::condition_variable cv_;
  static constexpr int kTaskShift = 20;
  static constexpr int kGenShift = 40;
  static constexpr int kMaxTasks = (1 << 20) - 1;
  const std::function<void(int)>* fn_ = nullptr;
  std::atomic<int> helpers_{0};
  std::atomic<int> done_{0};
  std::atomic<uint64_t> state_{0};  // (job generation << 40) | (task count << 20) | next task
};

}  // namespace qf
