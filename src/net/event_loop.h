#pragma once
// One worker's event loop: edge-triggered epoll, a timer heap, and a cross-thread task queue.
//
// Our own loop rather than Boost.Asio: the proxy's per-request path is a few reads and writes on
// sockets it owns, and a callback-per-readiness loop costs less CPU per request than Asio's
// operation objects and coroutine frames (the benchmark compares us with nginx/HAProxy, which do
// the same). Everything here is single-threaded except post() and stop().

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace proxenos::net {

// Receives readiness for one file descriptor (EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP/EPOLLRDHUP bits).
class IoHandler {
 public:
  virtual void on_io(uint32_t events) = 0;

 protected:
  ~IoHandler() = default;
};

class EventLoop;

// Something that writes buffered output, and wants its writes coalesced: every flush asked for
// while one batch of events is handled becomes one write (one syscall) at the end of the batch,
// however many frames or streams asked (a read of forty upstream DATA frames is one write to
// the client, not forty).
//
// Writes towards upstreams (FlushOrder::kLast) run after all writes towards clients. A write to
// a loopback or same-host socket wakes its reader, and the kernel, taking a socket write as a
// hint that the writer is about to sleep, queues the reader on the writer's CPU: waking an
// upstream in the middle of a batch got the worker preempted while it still held the batch's
// answers to clients (five times the involuntary context switches, and a longer p99).
enum class FlushOrder { kFirst, kLast };

class Flushable {
 public:
  virtual void flush_now() = 0;

 protected:
  explicit Flushable(FlushOrder order = FlushOrder::kFirst) : order_(order) {}
  ~Flushable();
  Flushable(const Flushable&) = delete;
  Flushable& operator=(const Flushable&) = delete;

 private:
  friend class EventLoop;
  EventLoop* flush_loop_ = nullptr;  // set while queued
  FlushOrder order_;
};

// A Flushable member for an owner with more than one kind of coalesced write (to its client and
// to its upstream): the loop calls `callback` at that write's turn.
class FlushCallback final : public Flushable {
 public:
  FlushCallback(FlushOrder order, std::function<void()> callback)
      : Flushable(order), callback_(std::move(callback)) {}
  void flush_now() override { callback_(); }

 private:
  std::function<void()> callback_;
};

// A one-shot timer owned by its user; destroying it cancels it. Re-arming replaces the deadline.
class Timer {
 public:
  Timer(EventLoop& loop, std::function<void()> callback);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void arm(uint64_t delay_ms);
  void cancel();
  bool armed() const { return deadline_ms_ != 0; }
  uint64_t deadline_ms() const { return deadline_ms_; }

 private:
  friend class EventLoop;
  EventLoop& loop_;
  std::function<void()> callback_;
  uint64_t deadline_ms_ = 0;
  size_t heap_index_ = kNotQueued;  // its entry in the loop's heap, so cancel is O(1)
  static constexpr size_t kNotQueued = static_cast<size_t>(-1);
};

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void add(int fd, uint32_t events, IoHandler* handler);  // edge-triggered
  void modify(int fd, uint32_t events, IoHandler* handler);
  void remove(int fd);

  // Thread-safe: runs `task` on this loop's thread.
  void post(std::function<void()> task);
  // Runs `task` after the current batch of events (same thread). Used to destroy connection
  // objects safely from inside their own callbacks.
  void defer(std::function<void()> task);

  // Queues `f->flush_now()` for the end of the current batch (once, however often asked).
  void flush_later(Flushable* f);
  // Runs the queued flushes, kFirst ones before kLast ones, until none is left (a flush may ask
  // for more). run() does it after each batch and after timers.
  void run_flushes();

  void run();  // until stop()
  // Runs deferred tasks (repeatedly, as tasks may defer more). Called by run() after each batch
  // and by owners after run() returns, so objects retired during teardown are freed too.
  void run_deferred();
  void stop();  // thread-safe

  // Monotonic milliseconds, refreshed once per loop iteration (cheap to call on the hot path).
  uint64_t now_ms() const { return now_ms_; }
  uint64_t now_us() const { return now_us_; }  // same instant as now_ms(), in microseconds
  // Wall-clock milliseconds since the Unix epoch, read at most once per loop iteration (request
  // start times for logs and templates share it).
  int64_t now_unix_ms() const;
  uint64_t refresh_now();

 private:
  friend class Timer;
  friend class Flushable;
  void cancel_flush(Flushable* f);
  void schedule(Timer* timer);
  void unschedule(Timer* timer);
  bool earlier(size_t a, size_t b) const;
  void swap_entries(size_t a, size_t b);
  void sift_up(size_t i);
  void sift_down(size_t i);
  void pop_top();
  void drop_cancelled_top();
  void compact_timers();
  int next_timeout_ms();
  void run_timers();
  void drain_posted();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  uint64_t now_ms_ = 0;
  uint64_t now_us_ = 0;
  mutable int64_t unix_ms_ = 0;
  mutable bool unix_ms_fresh_ = false;  // unix_ms_ was read since the last refresh_now()
  // Min-heap on (deadline, seq); seq breaks ties so equal deadlines fire in arm order. The keys
  // live in the entries (no pointer chase per comparison). A cancelled timer only clears its
  // entry's pointer: most timers (request timeouts) are cancelled long before they are due, and
  // taking each one out would sift the heap every time. Cleared entries are dropped when they
  // reach the top, or all at once when they outnumber the live ones.
  struct TimerEntry {
    uint64_t deadline_ms;
    uint64_t seq;
    Timer* timer;  // nullptr once cancelled
  };
  uint64_t next_timer_seq_ = 1;
  std::vector<TimerEntry> timers_;
  size_t cancelled_timers_ = 0;
  std::vector<std::function<void()>> deferred_;
  std::vector<Flushable*> flushes_;       // queued, FlushOrder::kFirst
  std::vector<Flushable*> last_flushes_;  // queued, FlushOrder::kLast
  std::vector<Flushable*> flushing_;      // being run (entries of destroyed objects are nulled)
  std::mutex posted_mutex_;               // taken only on cross-thread handoff, never per request
  std::vector<std::function<void()>> posted_;
  bool stop_requested_ = false;
};

}  // namespace proxenos::net
