#include "net/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>

namespace proxenos::net {

namespace {
// The fine clock (vDSO, no syscall): read once per loop iteration, it gives latency histograms
// sub-millisecond resolution; the coarse clock ticks only every few milliseconds.
uint64_t monotonic_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}
constexpr int kMaxEvents = 256;
}  // namespace

Timer::Timer(EventLoop& loop, std::function<void()> callback)
    : loop_(loop), callback_(std::move(callback)) {}

Timer::~Timer() {
  cancel();
}

void Timer::arm(uint64_t delay_ms) {
  deadline_ms_ = loop_.now_ms() + std::max<uint64_t>(delay_ms, 1);
  loop_.schedule(this);
}

void Timer::cancel() {
  if (heap_index_ != kNotQueued) loop_.unschedule(this);
  deadline_ms_ = 0;
}

EventLoop::EventLoop() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    throw std::runtime_error(std::string("event loop: ") + std::strerror(errno));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the wake fd is the only entry without a handler
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  refresh_now();
}

EventLoop::~EventLoop() {
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void EventLoop::add(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events | EPOLLET;
  ev.data.ptr = handler;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
}

void EventLoop::modify(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events | EPOLLET;
  ev.data.ptr = handler;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
}

void EventLoop::remove(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    posted_.push_back(std::move(task));
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void EventLoop::defer(std::function<void()> task) {
  deferred_.push_back(std::move(task));
}

void EventLoop::stop() {
  post([this] { stop_requested_ = true; });
}

uint64_t EventLoop::refresh_now() {
  now_us_ = monotonic_us();
  unix_ms_fresh_ = false;
  return now_ms_ = now_us_ / 1000;
}

int64_t EventLoop::now_unix_ms() const {
  if (!unix_ms_fresh_) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    unix_ms_ = static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
    unix_ms_fresh_ = true;
  }
  return unix_ms_;
}

bool EventLoop::earlier(size_t a, size_t b) const {
  const TimerEntry& x = timers_[a];
  const TimerEntry& y = timers_[b];
  return x.deadline_ms != y.deadline_ms ? x.deadline_ms < y.deadline_ms : x.seq < y.seq;
}

void EventLoop::swap_entries(size_t a, size_t b) {
  std::swap(timers_[a], timers_[b]);
  if (timers_[a].timer != nullptr) timers_[a].timer->heap_index_ = a;
  if (timers_[b].timer != nullptr) timers_[b].timer->heap_index_ = b;
}

void EventLoop::sift_up(size_t i) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!earlier(i, parent)) break;
    swap_entries(i, parent);
    i = parent;
  }
}

void EventLoop::sift_down(size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, best = i;
    if (l < timers_.size() && earlier(l, best)) best = l;
    if (r < timers_.size() && earlier(r, best)) best = r;
    if (best == i) return;
    swap_entries(i, best);
    i = best;
  }
}

void EventLoop::schedule(Timer* timer) {
  if (timer->heap_index_ != Timer::kNotQueued) unschedule(timer);  // re-armed: a new entry
  timer->heap_index_ = timers_.size();
  timers_.push_back({timer->deadline_ms_, next_timer_seq_++, timer});
  sift_up(timer->heap_index_);  // usually at once: a new deadline tends to be the latest
}

void EventLoop::unschedule(Timer* timer) {
  timers_[timer->heap_index_].timer = nullptr;
  timer->heap_index_ = Timer::kNotQueued;
  ++cancelled_timers_;
  if (cancelled_timers_ > 64 && cancelled_timers_ > timers_.size() / 2) compact_timers();
}

void EventLoop::pop_top() {
  if (timers_.front().timer == nullptr) --cancelled_timers_;
  const size_t last = timers_.size() - 1;
  if (last > 0) swap_entries(0, last);
  timers_.pop_back();
  if (!timers_.empty()) sift_down(0);
}

void EventLoop::drop_cancelled_top() {
  while (!timers_.empty() && timers_.front().timer == nullptr) pop_top();
}

// Drops every cancelled entry and rebuilds the heap: O(n) once the cancelled outnumber the live,
// so O(1) per cancellation on average.
void EventLoop::compact_timers() {
  std::erase_if(timers_, [](const TimerEntry& e) { return e.timer == nullptr; });
  cancelled_timers_ = 0;
  for (size_t i = 0; i < timers_.size(); ++i) timers_[i].timer->heap_index_ = i;
  for (size_t i = timers_.size() / 2; i-- > 0;) sift_down(i);
}

int EventLoop::next_timeout_ms() {
  if (!deferred_.empty()) return 0;
  drop_cancelled_top();
  if (timers_.empty()) return -1;
  uint64_t now = refresh_now();
  uint64_t deadline = timers_.front().deadline_ms;
  return deadline <= now ? 0 : static_cast<int>(std::min<uint64_t>(deadline - now, 60000));
}

void EventLoop::run_timers() {
  for (drop_cancelled_top(); !timers_.empty() && timers_.front().deadline_ms <= now_ms_;
       drop_cancelled_top()) {
    Timer* t = timers_.front().timer;
    t->heap_index_ = Timer::kNotQueued;
    timers_.front().timer = nullptr;
    ++cancelled_timers_;  // pop_top counts it out again
    pop_top();
    t->deadline_ms_ = 0;
    t->callback_();  // may re-arm or destroy t
  }
}

void EventLoop::drain_posted() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    tasks.swap(posted_);
  }
  for (auto& task : tasks) task();
}

void EventLoop::run() {
  epoll_event events[kMaxEvents];
  while (!stop_requested_) {
    int timeout = next_timeout_ms();
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, timeout);
    refresh_now();
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      auto* handler = static_cast<IoHandler*>(events[i].data.ptr);
      if (handler == nullptr) {
        uint64_t value;
        [[maybe_unused]] ssize_t r = read(wake_fd_, &value, sizeof value);
        drain_posted();
        continue;
      }
      handler->on_io(events[i].events);
    }
    run_flushes();
    run_timers();
    run_flushes();
    run_deferred();
  }
}

Flushable::~Flushable() {
  if (flush_loop_ != nullptr) flush_loop_->cancel_flush(this);
}

void EventLoop::flush_later(Flushable* f) {
  if (f->flush_loop_ != nullptr) return;
  f->flush_loop_ = this;
  (f->order_ == FlushOrder::kFirst ? flushes_ : last_flushes_).push_back(f);
}

void EventLoop::cancel_flush(Flushable* f) {
  std::erase(f->order_ == FlushOrder::kFirst ? flushes_ : last_flushes_, f);
  for (Flushable*& g : flushing_) {
    if (g == f) g = nullptr;
  }
  f->flush_loop_ = nullptr;
}

void EventLoop::run_flushes() {
  for (;;) {
    if (!flushes_.empty()) {
      flushing_.swap(flushes_);
    } else if (!last_flushes_.empty()) {
      flushing_.swap(last_flushes_);
    } else {
      return;
    }
    for (size_t i = 0; i < flushing_.size(); ++i) {
      Flushable* f = flushing_[i];
      if (f == nullptr) continue;
      f->flush_loop_ = nullptr;
      f->flush_now();
    }
    flushing_.clear();
  }
}

void EventLoop::run_deferred() {
  run_flushes();
  while (!deferred_.empty()) {
    auto tasks = std::move(deferred_);
    deferred_.clear();
    for (auto& task : tasks) task();
  }
}

}  // namespace proxenos::net
