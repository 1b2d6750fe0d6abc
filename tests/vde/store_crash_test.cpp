// Crash: a child process loads a store, checkpoints, and keeps writing (with more checkpoints)
// until the parent kills it with SIGKILL at a random moment. The child reports through a pipe
// each operation done and each checkpoint begun and completed (with its generation), so the
// parent knows, without sleeping, which checkpoint the store must reopen at. The reopened store
// must hold exactly the model's state at that checkpoint, and Verify must find every block
// owned once and none leaked. Several rounds with different seeds; VDE_TEST_LONG=1 runs more.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "tests/vde/store_test_util.h"
#include "vde/store.h"

namespace vde {
namespace {

using testing::Model;

const std::vector<std::string> kIndexes = {"default", "a", "b"};
constexpr uint64_t kLoadOps = 20000;

// The operation stream, the same in the child (which applies it) and the parent (which replays
// it into the model). Operation n depends only on the seed and n.
struct Op {
  size_t index = 0;
  bool put = true;
  std::string key, value;
  bool checkpoint_after = false;  // the child checkpoints after this operation
};

Op MakeOp(uint64_t seed, uint64_t n) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + n);
  Op op;
  op.index = rng() % kIndexes.size();
  op.key = "key" + std::to_string(rng() % (n < kLoadOps ? 1000000 : 30000));
  if (rng() % 8 == 0) op.key += std::string(rng() % 300, 'p');
  op.put = n < kLoadOps || rng() % 4 != 0;
  if (op.put) op.value = testing::RandomValue(rng, n);
  op.checkpoint_after = n >= kLoadOps && rng() % 1500 == 0;
  return op;
}

// Pipe messages: one byte of type, the operation count, the generation.
struct Message {
  char type;  // 'O' operation done, 'B' checkpoint begun, 'C' checkpoint done, 'E' error
  uint64_t ops;
  uint64_t generation;
};

void Send(int fd, char type, uint64_t ops, uint64_t generation) {
  char buf[17];
  buf[0] = type;
  std::memcpy(buf + 1, &ops, 8);
  std::memcpy(buf + 9, &generation, 8);
  if (::write(fd, buf, sizeof buf) != static_cast<ssize_t>(sizeof buf)) ::_exit(3);
}

bool Receive(int fd, Message* m) {
  char buf[17];
  size_t got = 0;
  while (got < sizeof buf) {
    ssize_t n = ::read(fd, buf + got, sizeof buf - got);
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  m->type = buf[0];
  std::memcpy(&m->ops, buf + 1, 8);
  std::memcpy(&m->generation, buf + 9, 8);
  return true;
}

// The child: never returns.
[[noreturn]] void Child(const std::string& path, uint64_t seed, uint64_t max_ops, int fd) {
  auto fail = [&](uint64_t n, const Status& s = Status::OK()) {
    std::fprintf(stderr, "child: operation %llu: %s\n", static_cast<unsigned long long>(n),
                 s.ToString().c_str());
    Send(fd, 'E', n, 0);
    ::_exit(2);
  };
  auto opened = Store::Open(path, testing::TestOptions(2 << 20));
  if (!opened.has_value()) fail(0, opened.status());
  std::unique_ptr<Store> store = std::move(*opened);
  std::vector<Index> handles = {store->default_index()};
  for (size_t i = 1; i < kIndexes.size(); i++) {
    auto h = store->CreateIndex(kIndexes[i]);
    if (!h.has_value()) fail(0);
    handles.push_back(*h);
  }
  auto checkpoint = [&](uint64_t n) {
    Send(fd, 'B', n, store->GetStats().generation + 1);
    Status s = store->Checkpoint();
    if (!s.ok()) fail(n, s);
    Send(fd, 'C', n, store->GetStats().generation);
  };
  for (uint64_t n = 0; n < max_ops; n++) {
    if (n == kLoadOps) checkpoint(n);
    Op op = MakeOp(seed, n);
    Status s = op.put ? store->Put(handles[op.index], op.key, op.value)
                      : store->Delete(handles[op.index], op.key);
    if (!s.ok()) fail(n, s);
    if (n >= kLoadOps) Send(fd, 'O', n + 1, 0);
    if (op.checkpoint_after) checkpoint(n + 1);
  }
  Send(fd, 'D', max_ops, 0);
  for (;;) ::pause();  // wait for the kill
}

void RunRound(uint64_t seed) {
  SCOPED_TRACE("round seed " + std::to_string(seed));
  testing::ScratchDir dir;
  const std::string path = dir.File("crash.vdisk");
  std::mt19937_64 rng(seed);
  const uint64_t max_ops = kLoadOps + 8000;
  const uint64_t kill_after = 1 + rng() % (max_ops - kLoadOps);  // operations after the load
  // A third of the rounds kill as soon as a checkpoint begins (past kill_after), to land in it.
  const bool in_checkpoint = rng() % 3 == 0;

  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    Child(path, seed, max_ops, fds[1]);
  }
  ::close(fds[1]);
  // Which checkpoints completed (ops -> generation), and the one in flight if any.
  uint64_t done_ops = 0, done_gen = 0, flight_ops = 0, flight_gen = 0;
  bool killed = false;
  Message m;
  auto track = [&](const Message& msg) {
    if (msg.type == 'B') {
      flight_ops = msg.ops;
      flight_gen = msg.generation;
    } else if (msg.type == 'C') {
      done_ops = msg.ops;
      done_gen = msg.generation;
      flight_gen = 0;
    }
  };
  while (Receive(fds[0], &m)) {
    ASSERT_NE(m.type, 'E') << "the child failed at operation " << m.ops;
    track(m);
    const bool due =
        m.ops >= kLoadOps + kill_after && (in_checkpoint ? m.type == 'B' : m.type == 'O');
    if (!killed && done_gen != 0 && (due || m.type == 'D')) {
      ASSERT_EQ(::kill(pid, SIGKILL), 0);
      killed = true;  // keep reading: what the child said before it died is in the pipe
    }
  }
  ::close(fds[0]);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << "status " << wstatus;
  ASSERT_NE(done_gen, 0u) << "the child never checkpointed";

  auto opened = Store::Open(path, testing::TestOptions(8 << 20));
  ASSERT_TRUE(opened.has_value()) << opened.status().ToString();
  std::unique_ptr<Store> store = std::move(*opened);
  const uint64_t gen = store->GetStats().generation;
  uint64_t expect_ops = done_ops;
  const char* at = "the last completed checkpoint";
  if (flight_gen != 0 && gen == flight_gen) {
    expect_ops = flight_ops;  // the checkpoint in flight reached its superblock
    at = "the checkpoint in flight";
  } else {
    ASSERT_EQ(gen, done_gen) << "in flight: " << flight_gen;
  }
  std::printf(
      "seed %llu: kill sent after %llu ops%s; reopened at generation %llu (after %llu "
      "ops), %s%s\n",
      static_cast<unsigned long long>(seed), static_cast<unsigned long long>(kill_after + kLoadOps),
      in_checkpoint ? " at a checkpoint's start" : "", static_cast<unsigned long long>(gen),
      static_cast<unsigned long long>(expect_ops), at,
      flight_gen != 0 && gen != flight_gen ? " (one was in flight)" : "");

  auto rep = store->Verify(true);
  ASSERT_TRUE(rep.has_value()) << rep.status().ToString();
  EXPECT_EQ(rep->pending_blocks, 0u);
  std::vector<Model> models(kIndexes.size());
  for (uint64_t n = 0; n < expect_ops; n++) {
    Op op = MakeOp(seed, n);
    if (op.put) {
      models[op.index][op.key] = op.value;
    } else {
      models[op.index].erase(op.key);
    }
  }
  ASSERT_EQ(store->ListIndexes(), (std::vector<std::string>{"a", "b", "default"}));
  for (size_t i = 0; i < kIndexes.size(); i++) {
    SCOPED_TRACE(kIndexes[i]);
    testing::ExpectIndexEquals(*store, *store->OpenIndex(kIndexes[i]), models[i]);
  }
  // The store goes on working after the crash.
  for (int i = 0; i < 1000; i++) {
    ASSERT_TRUE(store->Put("after" + std::to_string(i), std::string(i % 1200, 'z')).ok());
  }
  ASSERT_TRUE(store->Close().ok());
  store = std::move(*Store::Open(path, testing::TestOptions()));
  rep = store->Verify(true);
  ASSERT_TRUE(rep.has_value()) << rep.status().ToString();
}

TEST(StoreCrash, KilledAfterCheckpointReopensAtIt) {
  const uint64_t seed = testing::TestSeed();
  const int rounds = testing::LongTests() ? 20 : 5;
  for (int r = 0; r < rounds; r++) {
    RunRound(seed + static_cast<uint64_t>(r));
    if (::testing::Test::HasFatalFailure() || ::testing::Test::HasNonfatalFailure()) return;
  }
}

}  // namespace
}  // namespace vde
