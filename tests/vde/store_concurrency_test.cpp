// Eight threads on one store at once, every answer checked against a model.
//
// Each key has one writer. Before it writes version n of a key it publishes started[k] = n; once
// the write returned, committed[k] = n. Whether version n of key k is a put or a delete, and the
// value a put stores, are pure functions of (k, n). So a reader that saw committed[k] = c before
// its read and started[k] = s after it knows the state it read is that of some version in [c, s]
// (0: never written): a value must be exactly Value(k, n) for a put version n in that window,
// and an absent key needs a delete (or 0) in it. A snapshot iterator takes its window with c
// read before the iterator is created and s right after, however long its scan then takes; a
// scan that saw later writes (no snapshot) fails this. The batch writer writes all of its keys
// at one version per batch, so a snapshot must see them at a single version.
//
// Threads: two single-key writers (puts and deletes, some values out of line), one batch
// writer, two Get readers, one MultiGet reader, two snapshot scanners (one forwards, one
// backwards); plus explicit checkpoints from a writer. Afterwards every key equals its last
// version, before and after a reopen, and Verify passes. The seed is printed (VDE_TEST_SEED).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"
#include "tests/vde/store_test_util.h"
#include "vde/store.h"

namespace vde {
namespace {

constexpr int kSingleWriters = 2;
constexpr int kKeysPerWriter = 600;
constexpr int kBatchKeys = 16;
constexpr int kKeys = kSingleWriters * kKeysPerWriter + kBatchKeys;

std::string KeyName(int k) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "key%06d", k);
  return buf;
}

int KeyIndex(std::string_view key) {
  if (key.size() != 9 || key.substr(0, 3) != "key") return -1;
  return std::stoi(std::string(key.substr(3)));
}

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

bool IsBatchKey(int k) {
  return k >= kSingleWriters * kKeysPerWriter;
}

// Version 0 is "never written". Batch keys are only ever put.
bool IsDelete(int k, uint64_t n) {
  return n == 0 || (!IsBatchKey(k) && Mix(k * 1000003ULL + n) % 4 == 0);
}

std::string Value(int k, uint64_t n) {
  std::string v = KeyName(k) + "@" + std::to_string(n) + ":";
  const uint64_t h = Mix(k * 7919ULL + n);
  const size_t extra = h % 23 == 0 ? 3000 + h % 2000 : h % 60;  // some out of line
  for (size_t i = 0; v.size() < 12 + extra; i++) v.push_back(static_cast<char>('a' + (h + i) % 26));
  return v;
}

// Parses the version out of a value; 0 if malformed.
uint64_t VersionOf(std::string_view v) {
  const size_t at = v.find('@'), colon = v.find(':');
  if (at == std::string_view::npos || colon == std::string_view::npos || colon < at) return 0;
  return std::stoull(std::string(v.substr(at + 1, colon - at - 1)));
}

struct KeyState {
  std::atomic<uint64_t> started{0};
  std::atomic<uint64_t> committed{0};
};

class Checker {
 public:
  // Checks that `found`/`value` is a state of key k in versions [lo, hi]. Returns the version
  // (0 for an absent key) or an error message.
  std::string Check(int k, uint64_t lo, uint64_t hi, bool found, std::string_view value,
                    uint64_t* version) const {
    if (found) {
      const uint64_t n = VersionOf(value);
      *version = n;
      if (n < lo || n > hi) {
        return KeyName(k) + ": read version " + std::to_string(n) + " outside the window [" +
               std::to_string(lo) + ", " + std::to_string(hi) + "]";
      }
      if (IsDelete(k, n)) return KeyName(k) + ": read version " + std::to_string(n) + " (a delete)";
      if (value != Value(k, n))
        return KeyName(k) + ": wrong bytes for version " + std::to_string(n);
      return {};
    }
    *version = 0;
    for (uint64_t n = lo; n <= hi; n++) {
      if (IsDelete(k, n)) return {};
    }
    return KeyName(k) + ": absent, but no delete in versions [" + std::to_string(lo) + ", " +
           std::to_string(hi) + "]";
  }
};

TEST(StoreConcurrency, EightThreadsAgainstTheModel) {
  const uint64_t seed = testing::TestSeed();
  testing::ScratchDir dir;
  const std::string path = dir.File("conc.vdisk");
  // A small cache: pages are evicted and read back (with an unknown snapshot epoch) all along.
  auto store = std::move(*Store::Open(path, testing::TestOptions(1 << 20)));
  const int ops = testing::kSanitizerBuild ? (testing::LongTests() ? 20000 : 1000)
                                           : (testing::LongTests() ? 40000 : 5000);
  std::vector<KeyState> keys(kKeys);
  Checker checker;
  std::atomic<int> writers_left{kSingleWriters + 1};
  std::atomic<uint64_t> errors{0}, reads{0}, scans{0}, scanned{0};
  auto fail = [&](const std::string& what) {
    if (errors.fetch_add(1) < 8) ADD_FAILURE() << what;
  };
  std::vector<std::thread> threads;

  // Single-key writers: writer w owns keys [w * kKeysPerWriter, (w + 1) * kKeysPerWriter).
  for (int w = 0; w < kSingleWriters; w++) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(seed + w);
      std::vector<uint64_t> version(kKeysPerWriter, 0);
      for (int i = 0; i < ops && errors.load() == 0; i++) {
        const int local = static_cast<int>(rng() % kKeysPerWriter);
        const int k = w * kKeysPerWriter + local;
        const uint64_t n = ++version[local];
        keys[k].started.store(n);
        Status s = IsDelete(k, n) ? store->Delete(KeyName(k)) : store->Put(KeyName(k), Value(k, n));
        if (!s.ok()) fail("write " + KeyName(k) + ": " + s.ToString());
        keys[k].committed.store(n);
        if (w == 0 && i % 1500 == 1499) {
          Status c = store->Checkpoint();
          if (!c.ok()) fail("checkpoint: " + c.ToString());
        }
      }
      writers_left.fetch_sub(1);
    });
  }
  // The batch writer: every batch puts all batch keys at one version.
  threads.emplace_back([&] {
    const int first = kSingleWriters * kKeysPerWriter;
    for (uint64_t n = 1; n <= static_cast<uint64_t>(ops / 8) && errors.load() == 0; n++) {
      WriteBatch b;
      for (int k = first; k < kKeys; k++) {
        keys[k].started.store(n);
        b.Put(KeyName(k), Value(k, n));
      }
      Status s = store->Write(b);
      if (!s.ok()) fail("batch: " + s.ToString());
      for (int k = first; k < kKeys; k++) keys[k].committed.store(n);
    }
    writers_left.fetch_sub(1);
  });
  // Get readers.
  for (int r = 0; r < 2; r++) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(seed + 100 + r);
      std::string v;
      while (writers_left.load() > 0 && errors.load() == 0) {
        const int k = static_cast<int>(rng() % kKeys);
        const uint64_t lo = keys[k].committed.load();
        Status s = store->Get(KeyName(k), &v);
        const uint64_t hi = keys[k].started.load();
        if (!s.ok() && !s.IsNotFound()) {
          fail("get " + KeyName(k) + ": " + s.ToString());
          continue;
        }
        uint64_t n;
        std::string e = checker.Check(k, lo, hi, s.ok(), v, &n);
        if (!e.empty()) fail("get: " + e);
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  // MultiGet reader: batches of 1 to 200 keys, with repeats.
  threads.emplace_back([&] {
    std::mt19937_64 rng(seed + 200);
    std::vector<std::string> names;
    std::vector<std::string_view> views;
    std::vector<int> ks;
    std::vector<uint64_t> lo;
    std::vector<std::string> values;
    std::vector<Status> statuses;
    while (writers_left.load() > 0 && errors.load() == 0) {
      const size_t count = 1 + rng() % 200;
      names.clear();
      ks.clear();
      lo.clear();
      for (size_t i = 0; i < count; i++) {
        ks.push_back(static_cast<int>(rng() % kKeys));
        names.push_back(KeyName(ks.back()));
        lo.push_back(keys[ks.back()].committed.load());
      }
      views.assign(names.begin(), names.end());
      Status s = store->MultiGet(views, &values, &statuses);
      if (!s.ok()) fail("multiget: " + s.ToString());
      for (size_t i = 0; i < count; i++) {
        const uint64_t hi = keys[ks[i]].started.load();
        if (!statuses[i].ok() && !statuses[i].IsNotFound()) {
          fail("multiget " + names[i] + ": " + statuses[i].ToString());
          continue;
        }
        uint64_t n;
        std::string e = checker.Check(ks[i], lo[i], hi, statuses[i].ok(), values[i], &n);
        if (!e.empty()) fail("multiget: " + e);
      }
      reads.fetch_add(count, std::memory_order_relaxed);
    }
  });
  // Snapshot scanners.
  for (int dir_ = 0; dir_ < 2; dir_++) {
    threads.emplace_back([&, dir_] {
      std::vector<uint64_t> lo(kKeys), hi(kKeys), seen(kKeys);
      std::vector<uint8_t> found(kKeys);
      while (writers_left.load() > 0 && errors.load() == 0) {
        for (int k = 0; k < kKeys; k++) lo[k] = keys[k].committed.load();
        auto it = store->NewIterator();
        for (int k = 0; k < kKeys; k++) hi[k] = keys[k].started.load();
        std::fill(found.begin(), found.end(), 0);
        int last = dir_ == 0 ? -1 : kKeys;
        uint64_t n_seen = 0;
        for (dir_ == 0 ? it->SeekToFirst() : it->SeekToLast(); it->Valid();
             dir_ == 0 ? it->Next() : it->Prev()) {
          const int k = KeyIndex(it->key());
          if (k < 0 || k >= kKeys || (dir_ == 0 ? k <= last : k >= last)) {
            fail("scan: key " + std::string(it->key()) + " out of place");
            break;
          }
          last = k;
          const std::string_view v = it->value();
          if (!it->status().ok()) break;
          found[k] = 1;
          std::string e = checker.Check(k, lo[k], hi[k], true, v, &seen[k]);
          if (!e.empty()) fail("scan: " + e);
          n_seen++;
        }
        if (!it->status().ok()) {
          fail("scan: " + it->status().ToString());
          break;
        }
        uint64_t batch_version = ~uint64_t{0};
        for (int k = 0; k < kKeys; k++) {
          if (!found[k]) {
            std::string e = checker.Check(k, lo[k], hi[k], false, {}, &seen[k]);
            if (!e.empty()) fail("scan (absent): " + e);
          }
          if (IsBatchKey(k)) {
            if (batch_version == ~uint64_t{0}) batch_version = seen[k];
            if (seen[k] != batch_version) {
              fail("scan: a batch seen in part: " + KeyName(k) + " at version " +
                   std::to_string(seen[k]) + ", an earlier batch key at " +
                   std::to_string(batch_version));
            }
          }
        }
        scans.fetch_add(1, std::memory_order_relaxed);
        scanned.fetch_add(n_seen, std::memory_order_relaxed);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(errors.load(), 0u) << "seed " << seed;
  EXPECT_GT(reads.load(), 0u);
  EXPECT_GT(scans.load(), 0u);
  std::printf("seed %llu: %llu reads, %llu scans of %llu entries\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(reads.load()),
              static_cast<unsigned long long>(scans.load()),
              static_cast<unsigned long long>(scanned.load()));

  // The final state is each key's last version, before and after a reopen.
  testing::Model model;
  for (int k = 0; k < kKeys; k++) {
    const uint64_t n = keys[k].committed.load();
    if (!IsDelete(k, n)) model[KeyName(k)] = Value(k, n);
  }
  testing::ExpectIndexEquals(*store, store->default_index(), model);
  Result<VerifyReport> rep = store->Verify(true);
  ASSERT_TRUE(rep.has_value()) << rep.error().ToString();
  ASSERT_TRUE(store->Close().ok());
  store.reset();
  auto reopened = Store::Open(path, testing::TestOptions(1 << 20));
  ASSERT_TRUE(reopened.has_value()) << reopened.error().ToString();
  testing::ExpectIndexEquals(**reopened, (*reopened)->default_index(), model);
  Result<VerifyReport> rep2 = (*reopened)->Verify(true);
  ASSERT_TRUE(rep2.has_value()) << rep2.error().ToString();
}

// A snapshot iterator opened before a burst of writes (splits, merges, copy-on-write of every
// page it reaches, checkpoints in between, blocks freed) still reads exactly what was there;
// once it is gone, the blocks it kept are reused.
TEST(StoreConcurrency, IteratorSeesItsSnapshotThroughRewritesAndCheckpoints) {
  const uint64_t seed = testing::TestSeed();
  testing::ScratchDir dir;
  auto store = std::move(*Store::Open(dir.File("snap.vdisk"), testing::TestOptions(512 << 10)));
  std::mt19937_64 rng(seed);
  const int load = testing::kSanitizerBuild ? 5000 : 20000;
  const int churn = testing::kSanitizerBuild ? 2000 : 8000;
  testing::Model before;
  for (int i = 0; i < load; i++) {
    const std::string k = KeyName(static_cast<int>(rng() % 50000));
    const std::string v = Value(i, rng() % 1000 + 1);
    ASSERT_TRUE(store->Put(k, v).ok());
    before[k] = v;
  }
  ASSERT_TRUE(store->Checkpoint().ok());
  auto it = store->NewIterator();
  it->SeekToFirst();  // positioned before the writes: its leaf copy and path are from then
  testing::Model after = before;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < churn; i++) {
      const std::string k = KeyName(static_cast<int>(rng() % 50000));
      if (rng() % 3 == 0) {
        ASSERT_TRUE(store->Delete(k).ok());
        after.erase(k);
      } else {
        const std::string v = Value(i + 100000 * round, rng() % 1000 + 1);
        ASSERT_TRUE(store->Put(k, v).ok());
        after[k] = v;
      }
    }
    ASSERT_TRUE(store->Checkpoint().ok());
  }
  const uint64_t held = store->GetStats().pending_blocks;
  auto m = before.begin();
  for (; it->Valid(); it->Next(), ++m) {
    ASSERT_NE(m, before.end()) << "extra key " << it->key() << " (seed " << seed << ")";
    ASSERT_EQ(it->key(), m->first) << "seed " << seed;
    ASSERT_EQ(it->value(), m->second) << "seed " << seed;
  }
  ASSERT_TRUE(it->status().ok()) << it->status().ToString();
  ASSERT_EQ(m, before.end());
  // A new iterator sees the new state.
  testing::ExpectIndexEquals(*store, store->default_index(), after);
  it.reset();
  // With the snapshot gone, its blocks are released by the next write and reused after the
  // checkpoint that follows.
  ASSERT_TRUE(store->Put("zzz", "1").ok());
  ASSERT_TRUE(store->Checkpoint().ok());
  EXPECT_LT(store->GetStats().pending_blocks, held);
  ASSERT_TRUE(store->Verify(true).has_value());
}

}  // namespace
}  // namespace vde
