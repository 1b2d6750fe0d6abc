// Helpers for the Store tests: options, a std::map model per index, and comparisons.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "vde/store.h"

namespace vde::testing {

inline bool LongTests() {
  const char* v = std::getenv("VDE_TEST_LONG");
  return v != nullptr && *v != '\0' && *v != '0';
}

// A small growable store: `cache_bytes` of cache, no background checkpoints.
inline Options TestOptions(uint64_t cache_bytes = 4ull << 20) {
  Options o;
  o.create_if_missing = true;
  o.cache_bytes = cache_bytes;
  o.growth_step_bytes = 1ull << 20;
  return o;
}

// Opens (creating) the store at `path`; a failure is a test failure and returns null.
inline std::unique_ptr<Store> OpenStore(const std::string& path, Options o = TestOptions()) {
  auto s = Store::Open(path, o);
  EXPECT_TRUE(s.has_value()) << s.status().ToString();
  return s.has_value() ? std::move(*s) : nullptr;
}

using Model = std::map<std::string, std::string>;

// Compares a whole index with the model, forwards and backwards.
inline void ExpectIndexEquals(const Store& store, const Index& index, const Model& model) {
  auto it = store.NewIterator(index);
  auto m = model.begin();
  uint64_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++m, ++n) {
    ASSERT_NE(m, model.end()) << "extra key " << it->key() << " in " << index.name();
    ASSERT_EQ(it->key(), m->first) << "entry " << n << " of " << index.name();
    ASSERT_EQ(it->value(), m->second) << "key " << m->first << " of " << index.name();
  }
  ASSERT_TRUE(it->status().ok()) << it->status().ToString();
  ASSERT_EQ(m, model.end()) << "missing key " << m->first << " in " << index.name();
  auto r = model.rbegin();
  for (it->SeekToLast(); it->Valid(); it->Prev(), ++r) {
    ASSERT_NE(r, model.rend()) << "extra key " << it->key() << " in " << index.name();
    ASSERT_EQ(it->key(), r->first);
    ASSERT_EQ(it->value(), r->second);
  }
  ASSERT_TRUE(it->status().ok()) << it->status().ToString();
  ASSERT_EQ(r, model.rend());
}

// A key of 1 to max bytes: mostly short, from a space small enough to revisit keys.
inline std::string RandomKey(std::mt19937_64& rng, uint32_t max_key) {
  const unsigned r = rng() % 100;
  std::string k = "k" + std::to_string(rng() % 20000);
  if (r < 5) {
    k.resize(1 + rng() % max_key, static_cast<char>('a' + rng() % 26));
  } else if (r < 15) {
    k += std::string(rng() % 200, 'x');
  }
  return k;
}

// A value of mixed size: mostly small, some around the out-of-line threshold, a few large.
inline std::string RandomValue(std::mt19937_64& rng, uint64_t tag) {
  const unsigned r = rng() % 1000;
  size_t n = r < 850 ? rng() % 64 : r < 980 ? 800 + rng() % 200 : 1000 + rng() % 20000;
  std::string v = std::to_string(tag) + ":";
  v.resize(std::max(n, v.size()), static_cast<char>('A' + tag % 26));
  return v;
}

}  // namespace vde::testing
