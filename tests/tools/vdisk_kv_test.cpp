// vdisk's key-value commands (put, get, delete, scan, load, dump, and inspect's indexes), end to
// end: runs the built binary (VDISK_BIN) on real disks and checks exit codes, output and what
// round-trips; plus the escaping and dump format underneath (kv_format.h) and the progress line.
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "tests/tools/vdisk_test_util.h"
#include "tools/vdisk/kv_common.h"
#include "tools/vdisk/kv_format.h"
#include "tools/vdisk/progress.h"

namespace vde::vdisk {
namespace {

using Json = nlohmann::json;
using testing::Outcome;
using testing::ScratchDir;
using testing::Slurp;
using testing::Spit;
using testing::Vdisk;
using testing::VdiskPipe;

// A fresh 16 MiB disk (no store yet) in `dir`.
std::string NewDisk(const ScratchDir& dir, const std::string& name = "d.vdisk") {
  const std::string path = dir.File(name);
  Outcome c = Vdisk(dir, {"create", path, "--size", "16M"});
  EXPECT_EQ(c.code, 0) << c.err;
  return path;
}

// The dump of `records` as vdisk dump writes it, built here from the documented format.
std::string DumpOf(const std::map<std::string, std::string>& records) {
  std::string d = "vde-dump 1\n";
  for (const auto& [k, v] : records) d += Escape(k) + "\t" + Escape(v) + "\n";
  return d + "vde-dump-end " + std::to_string(records.size()) + "\n";
}

// Loads `records` into the default index of `disk` from a dump file.
void LoadRecords(const ScratchDir& dir, const std::string& disk,
                 const std::map<std::string, std::string>& records) {
  const std::string file = dir.File("records.dump");
  Spit(file, DumpOf(records));
  Outcome r = Vdisk(dir, {"load", disk, file, "--quiet"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

Json InspectJson(const ScratchDir& dir, const std::string& path) {
  Outcome r = Vdisk(dir, {"inspect", path, "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  Json j = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j;
}

// ---- put, get, delete ----------------------------------------------------------------------

TEST(VdiskKv, HelpForEveryCommand) {
  ScratchDir dir;
  for (const char* cmd : {"put", "get", "delete", "scan", "load", "dump"}) {
    Outcome r = Vdisk(dir, {cmd, "--help"});
    EXPECT_EQ(r.code, 0) << cmd << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Examples"), std::string::npos) << r.out;
  }
}

TEST(VdiskKv, PutGetDelete) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  Outcome p = Vdisk(dir, {"put", disk, "hello", "world"});
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_TRUE(p.out.empty() && p.err.empty()) << p.out << p.err;

  Outcome g = Vdisk(dir, {"get", disk, "hello"});
  EXPECT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out, "world\n");

  ASSERT_EQ(Vdisk(dir, {"put", disk, "hello", "again"}).code, 0);  // replaces
  EXPECT_EQ(Vdisk(dir, {"get", disk, "hello"}).out, "again\n");

  Outcome d = Vdisk(dir, {"delete", disk, "hello"});
  EXPECT_EQ(d.code, 0) << d.err;
  Outcome gone = Vdisk(dir, {"get", disk, "hello"});
  EXPECT_EQ(gone.code, 4);
  EXPECT_TRUE(gone.out.empty()) << gone.out;
  EXPECT_NE(gone.err.find("not found"), std::string::npos) << gone.err;
  EXPECT_NE(gone.err.find("\"hello\""), std::string::npos) << gone.err;
  EXPECT_NE(gone.err.find("index 'default' of " + disk), std::string::npos) << gone.err;

  EXPECT_EQ(Vdisk(dir, {"delete", disk, "hello"}).code, 0);  // absent already: still OK
}

TEST(VdiskKv, EmptyValueAndDashedKey) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  ASSERT_EQ(Vdisk(dir, {"put", disk, "empty", ""}).code, 0);
  Outcome g = Vdisk(dir, {"get", disk, "empty"});
  EXPECT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out, "\n");
  ASSERT_EQ(Vdisk(dir, {"put", disk, "--", "-k", "-v"}).code, 0);
  EXPECT_EQ(Vdisk(dir, {"get", disk, "--", "-k"}).out, "-v\n");
}

TEST(VdiskKv, EscapedKeysAndValuesReachEveryByte) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  Outcome p = Vdisk(dir, {"put", disk, "-e", "k\\x00\\t\\\\", "\\xff\\n\\r a"});
  ASSERT_EQ(p.code, 0) << p.err;
  // The output escapes the same way, so it is unambiguous and can be typed back with -e.
  Outcome s = Vdisk(dir, {"scan", disk});
  EXPECT_EQ(s.out, "k\\x00\\t\\\\\t\\xff\\n\\r a\n");
  Outcome raw = Vdisk(dir, {"get", disk, "-e", "k\\x00\\t\\\\", "--raw"});
  EXPECT_EQ(raw.code, 0) << raw.err;
  EXPECT_EQ(raw.out, std::string("\xff\n\r a", 5));
  // Without -e the backslashes are literal: another key.
  EXPECT_EQ(Vdisk(dir, {"get", disk, "k\\x00\\t\\\\"}).code, 4);

  Outcome bad = Vdisk(dir, {"put", disk, "-e", "k\\q", "v"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("KEY: bad escape"), std::string::npos) << bad.err;
}

TEST(VdiskKv, ValueFromFile) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  std::string big(300 << 10, '\0');  // past the 128 KiB an argument may hold
  std::mt19937_64 rng(testing::TestSeed());
  for (char& c : big) c = static_cast<char>(rng());
  Spit(dir.File("value.bin"), big);
  Outcome p = Vdisk(dir, {"put", disk, "big", "--value-file", dir.File("value.bin")});
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_EQ(Vdisk(dir, {"get", disk, "big", "--raw"}).out, big);
  // Both, or neither, is a usage error.
  EXPECT_EQ(Vdisk(dir, {"put", disk, "k", "v", "--value-file", dir.File("value.bin")}).code, 1);
  EXPECT_EQ(Vdisk(dir, {"put", disk, "k"}).code, 1);
}

TEST(VdiskKv, LimitsAndMissingThingsAreClearErrors) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  Outcome longkey = Vdisk(dir, {"put", disk, std::string(5000, 'k'), "v"});
  EXPECT_EQ(longkey.code, 1) << longkey.err;
  EXPECT_NE(longkey.err.find("index 'default' of " + disk), std::string::npos) << longkey.err;
  EXPECT_EQ(Vdisk(dir, {"put", disk, "", "v"}).code, 1);  // keys are at least one byte

  const std::string missing = dir.File("missing.vdisk");
  for (auto args : std::vector<std::vector<std::string>>{{"get", missing, "k"},
                                                         {"put", missing, "k", "v"},
                                                         {"scan", missing},
                                                         {"dump", missing},
                                                         {"load", missing, "-"}}) {
    Outcome r = Vdisk(dir, args, "/dev/null");
    EXPECT_EQ(r.code, 4) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(missing));

  Spit(dir.File("junk"), std::string(64 << 10, 'j'));
  Outcome notdisk = Vdisk(dir, {"get", dir.File("junk"), "k"});
  EXPECT_EQ(notdisk.code, 2) << notdisk.err;
}

TEST(VdiskKv, NamedIndex) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  Outcome none = Vdisk(dir, {"put", disk, "k", "v", "--index", "users"});
  EXPECT_EQ(none.code, 4);
  EXPECT_NE(none.err.find("index 'users' of " + disk + " does not exist"), std::string::npos)
      << none.err;
  ASSERT_EQ(Vdisk(dir, {"put", disk, "k", "in-users", "--index", "users", "--create-index"}).code,
            0);
  ASSERT_EQ(Vdisk(dir, {"put", disk, "k", "in-default"}).code, 0);
  EXPECT_EQ(Vdisk(dir, {"get", disk, "k", "--index", "users"}).out, "in-users\n");
  EXPECT_EQ(Vdisk(dir, {"get", disk, "k"}).out, "in-default\n");
  EXPECT_EQ(Vdisk(dir, {"scan", disk, "--index", "users"}).out, "k\tin-users\n");
  for (const char* cmd : {"get", "delete"}) {
    Outcome r = Vdisk(dir, {cmd, disk, "k", "--index", "nope"});
    EXPECT_EQ(r.code, 4) << cmd;
    EXPECT_NE(r.err.find("index 'nope'"), std::string::npos) << r.err;
  }
  EXPECT_EQ(Vdisk(dir, {"scan", disk, "--index", "nope"}).code, 4);
  EXPECT_EQ(Vdisk(dir, {"dump", disk, "--index", "nope"}).code, 4);
}

// ---- scan ----------------------------------------------------------------------------------

std::string Lines(const std::vector<std::string>& keys, bool with_values) {
  std::string s;
  for (const std::string& k : keys) s += with_values ? k + "\tv-" + k + "\n" : k + "\n";
  return s;
}

TEST(VdiskKv, ScanBoundsLimitAndReverse) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  std::map<std::string, std::string> records;
  for (const char* k : {"a", "ab", "abc", "b", "ba", "bb", "c"}) records[k] = "v-" + std::string(k);
  LoadRecords(dir, disk, records);

  struct Case {
    std::vector<std::string> opts;
    std::vector<std::string> keys;
  };
  const std::vector<Case> cases = {
      {{}, {"a", "ab", "abc", "b", "ba", "bb", "c"}},
      {{"--prefix", "a"}, {"a", "ab", "abc"}},
      {{"--prefix", "ab"}, {"ab", "abc"}},
      {{"--prefix", "z"}, {}},
      {{"--from", "b"}, {"b", "ba", "bb", "c"}},
      {{"--from", "aa"}, {"ab", "abc", "b", "ba", "bb", "c"}},
      {{"--to", "b"}, {"a", "ab", "abc"}},
      {{"--from", "ab", "--to", "ba"}, {"ab", "abc", "b"}},
      {{"--from", "c", "--to", "a"}, {}},
      {{"--prefix", "b", "--from", "ba"}, {"ba", "bb"}},
      {{"--prefix", "b", "--to", "bb"}, {"b", "ba"}},
      {{"--limit", "2"}, {"a", "ab"}},
      {{"--limit", "0"}, {}},
      {{"--reverse"}, {"c", "bb", "ba", "b", "abc", "ab", "a"}},
      {{"--reverse", "--limit", "1"}, {"c"}},
      {{"--reverse", "--prefix", "a", "--limit", "2"}, {"abc", "ab"}},
      {{"--reverse", "--from", "ab", "--to", "bb"}, {"ba", "b", "abc", "ab"}},
  };
  for (const Case& c : cases) {
    // A small cache: the cache's memory is set up at open, so each run starts faster.
    std::vector<std::string> args = {"scan", disk, "--cache", "1M"};
    args.insert(args.end(), c.opts.begin(), c.opts.end());
    std::string what;
    for (const std::string& o : c.opts) what += o + " ";
    Outcome r = Vdisk(dir, args);
    EXPECT_EQ(r.code, 0) << what << r.err;
    EXPECT_EQ(r.out, Lines(c.keys, true)) << what;
    args.push_back("--keys-only");
    EXPECT_EQ(Vdisk(dir, args).out, Lines(c.keys, false)) << what;
  }
  EXPECT_EQ(Vdisk(dir, {"scan", disk, "--limit", "-1"}).code, 1);
}

TEST(VdiskKv, ScanPrefixOfHighBytes) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  LoadRecords(dir, disk,
              {{"\xff", "1"},
               {"\xff\xff", "2"},
               {std::string("\xff\x00", 2), "3"},
               {"\xfe\xff", "4"},
               {"a", "5"}});
  Outcome r = Vdisk(dir, {"scan", disk, "-e", "--prefix", "\\xff", "--keys-only"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "\\xff\n\\xff\\x00\n\\xff\\xff\n");
}

// ---- read-only commands on a disk without a store ------------------------------------------

TEST(VdiskKv, ReadOnlyCommandsLeaveAFreshDiskUntouched) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  const std::string before = Slurp(disk);
  Outcome g = Vdisk(dir, {"get", disk, "k"});
  EXPECT_EQ(g.code, 4);
  EXPECT_NE(g.err.find("no store yet"), std::string::npos) << g.err;
  Outcome s = Vdisk(dir, {"scan", disk});
  EXPECT_EQ(s.code, 0) << s.err;
  EXPECT_TRUE(s.out.empty()) << s.out;
  Outcome d = Vdisk(dir, {"dump", disk});
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(d.out, "vde-dump 1\nvde-dump-end 0\n");
  EXPECT_TRUE(InspectJson(dir, disk)["indexes"].empty());
  EXPECT_EQ(Slurp(disk), before);
}

// ---- dump and load -------------------------------------------------------------------------

// Keys and values with every awkward byte: tabs, newlines, CR, NUL, backslashes, 0xff, all 256
// byte values, an empty value, a 1 MiB value (stored out of line), and a key of the largest
// size.
std::map<std::string, std::string> AwkwardRecords(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    return s;
  };
  std::map<std::string, std::string> r;
  r[std::string("tab\tkey", 7)] = "tab\tvalue";
  r["newline\nkey"] = "newline\nvalue\n";
  r[std::string("nul\0key", 7)] = std::string("\0\0\0", 3);
  r["\xff\xff"] = "\xff";
  r["back\\slash"] = "\\x41 is not A";
  r["cr\r"] = "\r\n";
  r["empty value"] = "";
  r["big"] = random_bytes(1 << 20);
  std::string all;
  for (int b = 0; b < 256; b++) all.push_back(static_cast<char>(b));
  r["all bytes"] = all;
  r[all] = "all bytes as a key";
  r[std::string(1024, 'K')] = "the longest key for 4 KiB blocks";
  for (int i = 0; i < 2000; i++) r[random_bytes(1 + rng() % 40)] = random_bytes(rng() % 300);
  return r;
}

TEST(VdiskKv, DumpLoadDumpRoundTripsExactly) {
  ScratchDir dir;
  const std::string a = NewDisk(dir, "a.vdisk");
  const std::string b = NewDisk(dir, "b.vdisk");
  const std::map<std::string, std::string> records = AwkwardRecords(testing::TestSeed());
  const std::string expected = DumpOf(records);
  Spit(dir.File("in.dump"), expected);

  // Into a from a file, in small batches.
  Outcome l = Vdisk(dir, {"load", a, dir.File("in.dump"), "--batch", "100"});
  ASSERT_EQ(l.code, 0) << l.err;
  EXPECT_NE(l.out.find("loaded " + std::to_string(records.size()) + " keys"), std::string::npos)
      << l.out;
  EXPECT_TRUE(l.err.empty()) << l.err;  // stderr is not a terminal: no progress

  Outcome da = Vdisk(dir, {"dump", a});
  ASSERT_EQ(da.code, 0) << da.err;
  EXPECT_TRUE(da.out == expected) << "dump of a differs from the dump loaded into it";

  // a | b through a pipe; the load is quiet on stderr.
  auto [dump, load] = VdiskPipe(dir, {"dump", a}, {"load", b});
  EXPECT_EQ(dump.code, 0) << dump.err;
  EXPECT_EQ(load.code, 0) << load.err;
  EXPECT_TRUE(dump.err.empty()) << dump.err;
  EXPECT_TRUE(load.err.empty()) << load.err;

  Outcome db = Vdisk(dir, {"dump", b, "-o", dir.File("b.dump")});
  ASSERT_EQ(db.code, 0) << db.err;
  EXPECT_TRUE(Slurp(dir.File("b.dump")) == expected) << "dump | load | dump is not exact";

  Outcome big = Vdisk(dir, {"get", b, "big", "--raw"});
  EXPECT_TRUE(big.out == records.at("big"));

  Json j = InspectJson(dir, b);
  ASSERT_EQ(j["indexes"].size(), 1u) << j["indexes"];
  const Json& ix = j["indexes"][0];
  EXPECT_EQ(ix["name"], "default");
  EXPECT_EQ(ix["entries"], records.size());
  EXPECT_GE(ix["height"], 2);
  EXPECT_EQ(ix["pages_per_level"].size(), ix["height"]);
  EXPECT_EQ(ix["pages_per_level"].back(), 1);  // one root
  EXPECT_GE(ix["overflow_values"], 1);         // the 1 MiB value
  EXPECT_GT(ix["fill_factor"].get<double>(), 0.0);
  EXPECT_LE(ix["fill_factor"].get<double>(), 1.0);
  EXPECT_TRUE(ix["error"].is_null());
  EXPECT_TRUE(j["indexes_error"].is_null());
}

TEST(VdiskKv, LoadIntoNamedIndexAndInspect) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  std::map<std::string, std::string> records;
  for (int i = 0; i < 500; i++) records["key" + std::to_string(i)] = std::string(100, 'v');
  Spit(dir.File("in.dump"), DumpOf(records));
  Outcome no = Vdisk(dir, {"load", disk, dir.File("in.dump"), "--index", "bulk"});
  EXPECT_EQ(no.code, 4);
  EXPECT_NE(no.err.find("index 'bulk'"), std::string::npos) << no.err;
  Outcome yes =
      Vdisk(dir, {"load", disk, "--index", "bulk", "--create-index", "-q"}, dir.File("in.dump"));
  ASSERT_EQ(yes.code, 0) << yes.err;
  EXPECT_TRUE(yes.out.empty()) << yes.out;
  ASSERT_EQ(Vdisk(dir, {"put", disk, "one", "1"}).code, 0);

  Json j = InspectJson(dir, disk);
  ASSERT_EQ(j["indexes"].size(), 2u) << j["indexes"];
  EXPECT_EQ(j["indexes"][0]["name"], "bulk");  // sorted by name
  EXPECT_EQ(j["indexes"][0]["entries"], 500);
  EXPECT_GE(j["indexes"][0]["height"], 1);
  EXPECT_EQ(j["indexes"][1]["name"], "default");
  EXPECT_EQ(j["indexes"][1]["entries"], 1);
  EXPECT_EQ(j["indexes"][1]["height"], 1);

  Outcome text = Vdisk(dir, {"inspect", disk});
  EXPECT_NE(text.out.find("indexes:          2\n"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("  bulk:           500 entries, height "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("  default:        1 entry, height 1, pages 1, "), std::string::npos)
      << text.out;
}

TEST(VdiskKv, LoadRejectsDamagedDumps) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  struct Case {
    std::string dump;
    int code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", 2, "not a vde dump"},
      {"k\tv\n", 2, "not a vde dump"},
      {"vde-dump 2\nvde-dump-end 0\n", 2, "dump format version 2"},
      {"vde-dump 1\nk\tv\n", 2, "line 2: no \"vde-dump-end\" line after 1 records"},
      {"vde-dump 1\nk\tv", 2, "line 2: the last line has no newline"},
      {"vde-dump 1\nk\tv\nvde-dump-end 2\n", 2, "line 3: the dump ends claiming 2 records"},
      {"vde-dump 1\nvde-dump-end 0\nk\tv\n", 2, "line 3: text after"},
      {"vde-dump 1\nk\\q\tv\nvde-dump-end 1\n", 2, "line 2: key: bad escape at offset 1"},
      {"vde-dump 1\nk\tv\\x4\nvde-dump-end 1\n", 2, "line 2: value: bad escape"},
      {"vde-dump 1\nk\tv\tw\nvde-dump-end 1\n", 2, "line 2: more than one tab"},
      {"vde-dump 1\nk\tv\r\nvde-dump-end 1\r\n", 2, "line 2: a raw carriage return"},
      {"vde-dump 1\n\tv\nvde-dump-end 1\n", 2, "line 2: an empty key"},
      {"vde-dump 1\nkv\nvde-dump-end 1\n", 2, "line 2: expected a record"},
  };
  const std::string file = dir.File("bad.dump");
  for (const Case& c : cases) {
    Spit(file, c.dump);
    Outcome r = Vdisk(dir, {"load", disk, file, "--cache", "1M"});
    EXPECT_EQ(r.code, c.code) << c.dump << r.err;
    EXPECT_NE(r.err.find(file), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.dump << "\n" << r.err;
  }
  Outcome missing = Vdisk(dir, {"load", disk, dir.File("nope.dump")});
  EXPECT_EQ(missing.code, 4);
  EXPECT_NE(missing.err.find("nope.dump"), std::string::npos) << missing.err;
}

// A failed load keeps the batches before the failure; loading again completes it.
TEST(VdiskKv, LoadThatFailsKeepsEarlierBatches) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  std::string dump = "vde-dump 1\n";
  for (int i = 0; i < 10; i++) dump += "k" + std::to_string(i) + "\tv\n";
  Spit(dir.File("cut.dump"), dump);  // no trailer
  Outcome r = Vdisk(dir, {"load", disk, dir.File("cut.dump"), "--batch", "4"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(Vdisk(dir, {"scan", disk, "--keys-only"}).out, "k0\nk1\nk2\nk3\nk4\nk5\nk6\nk7\n");
}

TEST(VdiskKv, DumpToUnwritablePlaceFailsCleanly) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  Outcome r = Vdisk(dir, {"dump", disk, "-o", dir.File("no/such/dir/out.dump")});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("no/such/dir/out.dump"), std::string::npos) << r.err;
}

// A disk the user may not write: writes fail with exit 3 naming the file; reads still work.
TEST(VdiskKv, ReadOnlyDiskFile) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  ASSERT_EQ(Vdisk(dir, {"put", disk, "k", "v"}).code, 0);
  ASSERT_EQ(::chmod(disk.c_str(), 0444), 0);
  if (::access(disk.c_str(), W_OK) == 0)
    GTEST_SKIP() << "running with privileges that ignore modes";
  const std::string before = Slurp(disk);
  Outcome r = Vdisk(dir, {"put", disk, "k", "w"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find(disk), std::string::npos) << r.err;
  EXPECT_EQ(Vdisk(dir, {"get", disk, "k"}).out, "v\n");
  EXPECT_EQ(Slurp(disk), before);
}

TEST(VdiskKv, DamagedIndexPageIsCorruptionNamingTheBlock) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  ASSERT_EQ(Vdisk(dir, {"put", disk, "k", "v"}).code, 0);
  const uint64_t root = InspectJson(dir, disk)["indexes"][0]["root"].get<uint64_t>();
  ASSERT_GT(root, 1u);
  std::string bytes = Slurp(disk);
  bytes[root * 4096 + 100] ^= 0x5a;
  Spit(disk, bytes);
  const std::string block = "block " + std::to_string(root) + " of " + disk;
  for (auto args : std::vector<std::vector<std::string>>{
           {"get", disk, "k"}, {"scan", disk}, {"dump", disk}, {"put", disk, "k2", "v"}}) {
    Outcome r = Vdisk(dir, args);
    EXPECT_EQ(r.code, 2) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find(block), std::string::npos) << args[0] << ": " << r.err;
  }
  Outcome j = Vdisk(dir, {"inspect", disk, "--json"});
  EXPECT_EQ(j.code, 2);
  Json parsed = Json::parse(j.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(parsed.is_discarded()) << j.out;  // the rest of the report is still there
  EXPECT_NE(parsed["indexes_error"].get<std::string>().find(block), std::string::npos) << j.out;
}

// vdisk's lock (kv_common.h, OpenStore): readers share a disk, a writer has it alone, and the
// one that finds it taken exits 3 (busy) at once. Held here by the test, as another vdisk would.
TEST(VdiskKv, OneWriterOrManyReaders) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  ASSERT_EQ(Vdisk(dir, {"put", disk, "k", "v"}).code, 0);
  auto hold = [&](short type) {
    const int fd = ::open(disk.c_str(), O_RDWR | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    struct flock fl {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = off_t{1} << 62;
    fl.l_len = 1;
    EXPECT_EQ(::fcntl(fd, F_OFD_SETLK, &fl), 0) << std::strerror(errno);
    return fd;
  };
  int fd = hold(F_RDLCK);  // a reader
  EXPECT_EQ(Vdisk(dir, {"get", disk, "k"}).out, "v\n");
  Outcome w = Vdisk(dir, {"put", disk, "k", "w"});
  EXPECT_EQ(w.code, 3);
  EXPECT_NE(w.err.find("busy: " + disk + ": in use by another vdisk"), std::string::npos) << w.err;
  ::close(fd);
  fd = hold(F_WRLCK);  // a writer
  EXPECT_EQ(Vdisk(dir, {"get", disk, "k"}).code, 3);
  EXPECT_EQ(Vdisk(dir, {"scan", disk}).code, 3);
  EXPECT_EQ(Vdisk(dir, {"load", disk}, "/dev/null").code, 3);
  ::close(fd);
  ASSERT_EQ(Vdisk(dir, {"put", disk, "k", "w"}).code, 0);
  EXPECT_EQ(Vdisk(dir, {"get", disk, "k"}).out, "w\n");
}

// ---- the progress line ---------------------------------------------------------------------

// On a terminal, load draws its progress line (at least the last one, "checkpointing", which is
// drawn whatever the timing) and erases it at the end.
TEST(VdiskKv, LoadShowsProgressOnATerminal) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  Spit(dir.File("in.dump"), DumpOf({{"k", "v"}}));
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0) GTEST_SKIP() << "no pseudo-terminals here";
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  const int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(slave, 0);
  testing::Redirect redirect;
  redirect.in_file = "/dev/null";
  redirect.out_file = dir.File("out");
  redirect.err_fd = slave;
  const int code =
      testing::WaitVdisk(testing::SpawnVdisk({"load", disk, dir.File("in.dump")}, redirect));
  ::close(slave);
  EXPECT_EQ(code, 0);
  std::string seen;
  char buf[4096];
  pollfd p{master, POLLIN, 0};
  while (::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0) {
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;
    seen.append(buf, static_cast<size_t>(n));
  }
  ::close(master);
  EXPECT_NE(seen.find("loading: 100% ["), std::string::npos) << seen;
  EXPECT_NE(seen.find("1 key, "), std::string::npos) << seen;
  EXPECT_NE(seen.find("checkpointing"), std::string::npos) << seen;
  EXPECT_TRUE(seen.ends_with("\r\033[K")) << seen;  // erased before the summary
  EXPECT_NE(Slurp(dir.File("out")).find("loaded 1 key "), std::string::npos);
}

TEST(VdiskKvProgress, LineShowsCountsRatesAndBar) {
  EXPECT_EQ(Progress::Line("loading", 1000, 1 << 20, 4 << 20, 2.0),
            "loading:  25% [######                  ] 1000 keys, 1 MiB, 500 keys/s, 512 KiB/s");
  EXPECT_EQ(Progress::Line("loading", 1, 10, 0, 0), "loading: 1 key, 10 bytes");
  EXPECT_EQ(
      Progress::Line("loading", 3'000'000, 0, 0, 1.0).find("3.0M keys/s") != std::string::npos,
      true);
}

// ---- escaping and the dump format ----------------------------------------------------------

TEST(VdiskKvFormat, EscapeIsPrintableAndInvertible) {
  std::string all;
  for (int b = 0; b < 256; b++) all.push_back(static_cast<char>(b));
  const std::string e = Escape(all);
  for (char c : e) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "unprintable byte in the escaped form: " << int(c);
  }
  EXPECT_EQ(e.find('\t'), std::string::npos);
  auto back = Unescape(e);
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(*back, all);
  EXPECT_EQ(Escape(std::string("a\\b\tc\nd\re\0f\x7f\x80\xff", 14)),
            "a\\\\b\\tc\\nd\\re\\x00f\\x7f\\x80\\xff");
}

TEST(VdiskKvFormat, UnescapeAcceptsUpperHexAndRawBytes) {
  EXPECT_EQ(*Unescape("\\xAB\\xab"), "\xab\xab");
  EXPECT_EQ(*Unescape("caf\xc3\xa9\t"), "caf\xc3\xa9\t");
  for (const char* bad : {"\\", "a\\", "\\x", "\\x4", "\\xg0", "\\0", "\\a", "\\\"", "\\X41"}) {
    auto r = Unescape(bad);
    EXPECT_FALSE(r.has_value()) << bad;
    if (!r) {
      EXPECT_TRUE(r.error().IsInvalidArgument());
    }
  }
}

TEST(VdiskKvFormat, QuoteCutsLongKeys) {
  EXPECT_EQ(Quote("k\t"), "\"k\\t\"");
  const std::string q = Quote(std::string(1 << 20, '\xff'));
  EXPECT_LT(q.size(), 100u);
  EXPECT_TRUE(q.ends_with("...\"")) << q;
}

TEST(VdiskKvFormat, ReaderReadsWhatWriterWrites) {
  ScratchDir dir;
  const std::map<std::string, std::string> records = AwkwardRecords(testing::TestSeed());
  const std::string file = dir.File("x.dump");
  {
    UniqueFile out(std::fopen(file.c_str(), "wb"));
    ASSERT_NE(out, nullptr);
    DumpWriter w(out.get(), file);
    ASSERT_TRUE(w.Begin().ok());
    for (const auto& [k, v] : records) ASSERT_TRUE(w.Add(k, v).ok());
    ASSERT_TRUE(w.Finish().ok());
    EXPECT_EQ(w.records(), records.size());
    EXPECT_EQ(w.bytes(), std::filesystem::file_size(file));
  }
  EXPECT_EQ(Slurp(file), DumpOf(records));
  UniqueFile in(std::fopen(file.c_str(), "rb"));
  ASSERT_NE(in, nullptr);
  DumpReader r(in.get(), file);
  ASSERT_TRUE(r.Begin().ok());
  std::map<std::string, std::string> got;
  std::string k, v;
  for (;;) {
    auto more = r.Next(&k, &v);
    ASSERT_TRUE(more.has_value()) << more.error().ToString();
    if (!*more) break;
    got[k] = v;
  }
  EXPECT_TRUE(got == records);
  EXPECT_EQ(r.bytes_read(), std::filesystem::file_size(file));
}

TEST(VdiskKv, GetSeveralKeysPrintsALineEachAndMarksMissingOnes) {
  ScratchDir dir;
  const std::string disk = NewDisk(dir);
  // A disk without a store yet: every key missing.
  Outcome fresh = Vdisk(dir, {"get", disk, "a", "b"});
  EXPECT_EQ(fresh.code, 4) << fresh.err;
  EXPECT_EQ(fresh.out, "a\t\\N\nb\t\\N\n");
  EXPECT_NE(fresh.err.find("the disk holds no store yet"), std::string::npos) << fresh.err;

  const std::string big(10 << 10, 'b');  // stored out of line
  LoadRecords(dir, disk,
              {{"user:1", "Ada"},
               {"user:2", ""},
               {std::string("bin\0key", 7), "tab\there\xff"},
               {"big", big},
               {"slash", "\\N"}});  // a value that is literally backslash, N

  // In the order given, repeats included: the escaped key, a tab, the escaped value.
  Outcome all = Vdisk(dir, {"get", disk, "user:2", "user:1", "big", "slash", "user:1"});
  EXPECT_EQ(all.code, 0) << all.err;
  EXPECT_EQ(all.out, "user:2\t\nuser:1\tAda\nbig\t" + big + "\nslash\t\\\\N\nuser:1\tAda\n");
  EXPECT_TRUE(all.err.empty()) << all.err;

  // Missing keys are marked \N in place; exit 4 after every line, naming them.
  Outcome some = Vdisk(dir, {"get", disk, "-e", "nobody", "bin\\x00key", "ghost", "user:1"});
  EXPECT_EQ(some.code, 4) << some.err;
  EXPECT_EQ(some.out, "nobody\t\\N\nbin\\x00key\ttab\\there\\xff\nghost\t\\N\nuser:1\tAda\n");
  EXPECT_NE(some.err.find("2 of 4 keys are not in index 'default' of " + disk), std::string::npos)
      << some.err;
  EXPECT_NE(some.err.find("\"nobody\", \"ghost\""), std::string::npos) << some.err;
  Outcome one = Vdisk(dir, {"get", disk, "user:1", "nobody"});
  EXPECT_EQ(one.code, 4) << one.err;
  EXPECT_EQ(one.out, "user:1\tAda\nnobody\t\\N\n");
  EXPECT_NE(one.err.find("no key \"nobody\" in index 'default' of " + disk), std::string::npos)
      << one.err;

  // One key keeps its output: the value alone.
  EXPECT_EQ(Vdisk(dir, {"get", disk, "user:1"}).out, "Ada\n");

  // A named index.
  ASSERT_EQ(Vdisk(dir, {"put", disk, "k", "in-users", "--index", "users", "--create-index"}).code,
            0);
  Outcome named = Vdisk(dir, {"get", disk, "k", "user:1", "--index", "users"});
  EXPECT_EQ(named.code, 4) << named.err;
  EXPECT_EQ(named.out, "k\tin-users\nuser:1\t\\N\n");
  EXPECT_NE(named.err.find("index 'users'"), std::string::npos) << named.err;

  // Errors print nothing on stdout: --raw with several keys and a key over the limit are usage
  // errors, a missing index is 4.
  Outcome raw = Vdisk(dir, {"get", disk, "user:1", "user:2", "--raw"});
  EXPECT_EQ(raw.code, 1) << raw.err;
  EXPECT_TRUE(raw.out.empty()) << raw.out;
  EXPECT_NE(raw.err.find("--raw"), std::string::npos) << raw.err;
  Outcome longkey = Vdisk(dir, {"get", disk, "user:1", std::string(5000, 'k')});
  EXPECT_EQ(longkey.code, 1) << longkey.err;
  EXPECT_TRUE(longkey.out.empty()) << longkey.out;
  EXPECT_NE(longkey.err.find("index 'default' of " + disk), std::string::npos) << longkey.err;
  Outcome badidx = Vdisk(dir, {"get", disk, "a", "b", "--index", "nope"});
  EXPECT_EQ(badidx.code, 4) << badidx.err;
  EXPECT_TRUE(badidx.out.empty()) << badidx.out;
  EXPECT_NE(badidx.err.find("index 'nope'"), std::string::npos) << badidx.err;
}

}  // namespace
}  // namespace vde::vdisk
