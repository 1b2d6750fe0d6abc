// Helpers shared by vde's tests: scratch directories and seeds.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

namespace vde::testing {

// Built with AddressSanitizer or ThreadSanitizer (g++ defines __SANITIZE_*, clang answers
// __has_feature): each operation is 5-50x slower and RSS counts the sanitizer's shadow memory,
// so long tests shrink and memory-budget tests skip.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitizerBuild = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
inline constexpr bool kSanitizerBuild = true;
#else
inline constexpr bool kSanitizerBuild = false;
#endif
#else
inline constexpr bool kSanitizerBuild = false;
#endif

// A fresh directory removed at destruction. Lives under $VDE_TEST_TMPDIR (set by ctest to a
// directory inside the build tree, on a file system that supports O_DIRECT) or else /tmp.
class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::getenv("VDE_TEST_TMPDIR");
    std::filesystem::path root = base != nullptr && *base != '\0' ? base : "/tmp";
    std::filesystem::create_directories(root);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info != nullptr ? std::string(info->test_suite_name()) + "." + info->name()
                                       : std::string("vde");
    for (char& c : name) {
      if (c == '/') c = '_';
    }
    std::string tmpl = (root / (name + ".XXXXXX")).string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) throw std::runtime_error("mkdtemp failed under " + root.string());
    path_ = p;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A seed for randomized tests: $VDE_TEST_SEED if set (to replay a failure), else random.
// Printed through RecordProperty and stdout so a failing run can be replayed.
inline uint64_t TestSeed() {
  const char* env = std::getenv("VDE_TEST_SEED");
  uint64_t seed = env != nullptr ? std::strtoull(env, nullptr, 0) : std::random_device{}();
  std::printf("[   SEED   ] VDE_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

}  // namespace vde::testing
