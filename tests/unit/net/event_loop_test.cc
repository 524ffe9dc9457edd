#include "net/event_loop.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace proxenos::net {
namespace {

TEST(EventLoopTest, TimersFireInDeadlineOrder) {
  EventLoop loop;
  std::vector<int> order;
  Timer a(loop, [&] { order.push_back(1); });
  Timer b(loop, [&] { order.push_back(2); });
  Timer c(loop, [&] {
    order.push_back(3);
    loop.stop();
  });
  c.arm(30);
  b.arm(20);
  a.arm(10);
  loop.run();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(EventLoopTest, CancelledAndRearmedTimers) {
  EventLoop loop;
  int fired_a = 0, fired_b = 0;
  Timer a(loop, [&] { ++fired_a; });
  Timer b(loop, [&] {
    ++fired_b;
    loop.stop();
  });
  a.arm(5);
  a.cancel();
  EXPECT_FALSE(a.armed());
  b.arm(50);
  b.arm(10);  // re-arming replaces the deadline, it does not add a second firing
  loop.run();
  EXPECT_EQ(fired_a, 0);
  EXPECT_EQ(fired_b, 1);
}

TEST(EventLoopTest, DestroyedTimerNeverFires) {
  EventLoop loop;
  bool fired = false;
  {
    Timer t(loop, [&] { fired = true; });
    t.arm(1);
  }
  Timer stop(loop, [&] { loop.stop(); });
  stop.arm(20);
  loop.run();
  EXPECT_FALSE(fired);
}

TEST(EventLoopTest, PostFromAnotherThreadRunsOnLoop) {
  EventLoop loop;
  std::thread::id ran_on;
  std::thread poster([&] {
    loop.post([&] {
      ran_on = std::this_thread::get_id();
      loop.stop();
    });
  });
  loop.run();
  poster.join();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(EventLoopTest, ManyTimersKeepHeapOrder) {
  EventLoop loop;
  std::vector<std::unique_ptr<Timer>> timers;
  std::vector<int> fired;
  for (int i = 0; i < 200; ++i) {
    timers.push_back(std::make_unique<Timer>(loop, [&fired, i] { fired.push_back(i); }));
  }
  // Arm in scrambled order, cancel every third.
  for (int i = 0; i < 200; ++i) timers[(i * 37) % 200]->arm(1 + ((i * 37) % 200) / 10);
  for (int i = 0; i < 200; i += 3) timers[i]->cancel();
  Timer stop(loop, [&] { loop.stop(); });
  stop.arm(100);
  loop.run();
  size_t expected = 0;
  for (int i = 0; i < 200; ++i) expected += (i % 3 != 0);
  EXPECT_EQ(fired.size(), expected);
  for (size_t k = 1; k < fired.size(); ++k) EXPECT_LE(fired[k - 1] / 10, fired[k] / 10);
}

TEST(EventLoopTest, ChurnOfCancelledTimersKeepsOrderAndFiresOnlyTheLive) {
  // Request timeouts: armed, then almost all cancelled (or re-armed) before they are due, some
  // destroyed while armed; the cancelled ones pile up in the heap and are dropped in bulk.
  EventLoop loop;
  std::vector<std::unique_ptr<Timer>> timers;
  std::vector<int> got;  // ids, in firing order
  for (int i = 0; i < 2000; ++i) {
    timers.push_back(std::make_unique<Timer>(loop, [&got, i] { got.push_back(i); }));
  }
  std::vector<bool> live(2000, false);
  std::vector<uint64_t> due(2000, 0);
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 2000; ++i) {
      const size_t k = static_cast<size_t>((i * 7919 + round * 131) % 2000);
      if (timers[k] == nullptr) continue;
      if ((i + round) % 10 == 0) {
        timers[k]->arm(1 + static_cast<uint64_t>((i * 13 + round) % 40));
        live[k] = true;
        due[k] = timers[k]->deadline_ms();
      } else if (timers[k]->armed()) {
        timers[k]->cancel();
        live[k] = false;
      }
    }
    for (size_t k = static_cast<size_t>(round); k < 2000; k += 97) {
      timers[k].reset();  // destroyed, armed or not
      live[k] = false;
    }
  }
  Timer stop(loop, [&] { loop.stop(); });
  stop.arm(200);
  loop.run();
  std::vector<int> want;
  for (int i = 0; i < 2000; ++i) {
    if (live[static_cast<size_t>(i)]) want.push_back(i);
  }
  std::vector<int> sorted_got = got;
  std::sort(sorted_got.begin(), sorted_got.end());
  EXPECT_EQ(sorted_got, want);
  // In deadline order (each timer's own, as armed last).
  for (size_t n = 1; n < got.size(); ++n) {
    EXPECT_LE(due[static_cast<size_t>(got[n - 1])], due[static_cast<size_t>(got[n])]);
  }
}

struct RecordingFlush final : Flushable {
  RecordingFlush(FlushOrder order, int id, std::vector<int>& log)
      : Flushable(order), id(id), log(log) {}
  void flush_now() override {
    log.push_back(id);
    if (then) then();
  }
  int id;
  std::vector<int>& log;
  std::function<void()> then;
};

TEST(EventLoopTest, UpstreamFlushesRunAfterClientFlushesAndOncePerBatch) {
  EventLoop loop;
  std::vector<int> log;
  RecordingFlush up1(FlushOrder::kLast, 1, log);
  RecordingFlush client2(FlushOrder::kFirst, 2, log);
  RecordingFlush up3(FlushOrder::kLast, 3, log);
  RecordingFlush client4(FlushOrder::kFirst, 4, log);
  loop.flush_later(&up1);
  loop.flush_later(&client2);
  loop.flush_later(&up1);  // asked twice, runs once
  loop.flush_later(&up3);
  loop.flush_later(&client4);
  // A write upstream that fails answers the client: that flush still runs in the same pass.
  up3.then = [&] { loop.flush_later(&client2); };
  loop.run_flushes();
  EXPECT_EQ(log, (std::vector<int>{2, 4, 1, 3, 2}));
}

TEST(EventLoopTest, DestroyedFlushableIsDroppedFromEitherQueue) {
  EventLoop loop;
  std::vector<int> log;
  RecordingFlush client(FlushOrder::kFirst, 1, log);
  RecordingFlush up(FlushOrder::kLast, 2, log);
  auto doomed = std::make_unique<RecordingFlush>(FlushOrder::kLast, 3, log);
  loop.flush_later(&up);
  loop.flush_later(doomed.get());
  loop.flush_later(&client);
  client.then = [&] { doomed.reset(); };  // destroyed while queued
  loop.run_flushes();
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
}

}  // namespace
}  // namespace proxenos::net
