// vdisk create and inspect, end to end: runs the built binary (VDISK_BIN) and checks its exit
// codes, its stderr and its --json output; plus the size parser and formatters it is built on.
// The key-value commands are tested in vdisk_kv_test.cpp; here only what inspect and their
// --stats report of a loaded B+tree (fill, encodings, splits, read-ahead).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "tests/tools/vdisk_test_util.h"
#include "tools/vdisk/cli_common.h"
#include "vde/format.h"
#include "vde/superblock.h"

namespace vde::vdisk {
namespace {

using Json = nlohmann::json;
using testing::Outcome;
using testing::ScratchDir;
using testing::Slurp;
using testing::Spit;
using testing::Vdisk;

// `vdisk inspect PATH --json`, parsed; fails the test unless it exits 0 with valid JSON.
Json InspectJson(const ScratchDir& dir, const std::string& path) {
  Outcome r = Vdisk(dir, {"inspect", path, "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  Json j = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j;
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::string bytes = Slurp(path);
  ASSERT_LT(offset, bytes.size());
  bytes[offset] = static_cast<char>(bytes[offset] ^ 0x5a);
  Spit(path, bytes);
}

// Rewrites both superblock copies of `path` (block size `bs`) through `mutate`, validly sealed.
template <typename F>
void RewriteSuperblocks(const std::string& path, uint32_t bs, F mutate) {
  std::string bytes = Slurp(path);
  ASSERT_GE(bytes.size(), 2 * size_t{bs});
  for (uint64_t copy = 0; copy < 2; copy++) {
    auto block = std::as_writable_bytes(std::span(bytes.data() + copy * bs, bs));
    auto sb = DecodeSuperblock(block, copy, path);
    ASSERT_TRUE(sb.has_value()) << sb.error().ToString();
    mutate(*sb);
    EncodeSuperblock(*sb, copy, block);
  }
  Spit(path, bytes);
}

// ---- Help and usage ------------------------------------------------------------------------

TEST(VdiskCli, HelpAndVersionExitZero) {
  ScratchDir dir;
  for (auto args : std::vector<std::vector<std::string>>{
           {"--help"}, {"create", "--help"}, {"inspect", "--help"}}) {
    Outcome r = Vdisk(dir, args);
    EXPECT_EQ(r.code, 0) << args[0] << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.out;
  }
  Outcome v = Vdisk(dir, {"--version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("vdisk"), std::string::npos);
}

TEST(VdiskCli, UsageErrorsExitOne) {
  ScratchDir dir;
  EXPECT_EQ(Vdisk(dir, {}).code, 1);
  EXPECT_EQ(Vdisk(dir, {"frobnicate"}).code, 1);
  EXPECT_EQ(Vdisk(dir, {"inspect"}).code, 1);  // PATH missing
  const std::string path = dir.File("d.vdisk");
  EXPECT_EQ(Vdisk(dir, {"create", path}).code, 1);  // no --size
  EXPECT_EQ(Vdisk(dir, {"create", path, "--size", "1M", "--max-size", "2M"}).code, 1);
  EXPECT_EQ(Vdisk(dir, {"create", path, "--size", "1M", "--backend", "tape"}).code, 1);
  EXPECT_EQ(Vdisk(dir, {"create", path, "--size", "1M", "--block-size", "3K"}).code, 1);
  EXPECT_EQ(Vdisk(dir, {"create", path, "--size", "5000"}).code, 1);  // not a block multiple
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(VdiskCli, BadSizeStringIsUsageError) {
  ScratchDir dir;
  const std::string path = dir.File("d.vdisk");
  for (const char* bad : {"10X", "abc", "1.5.G", "10GB", "-1", "", "1e9"}) {
    Outcome r = Vdisk(dir, {"create", path, "--size", bad});
    EXPECT_EQ(r.code, 1) << bad;
    EXPECT_NE(r.err.find("vdisk: --size: invalid size \"" + std::string(bad) + "\""),
              std::string::npos)
        << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

// ---- create, then inspect ----------------------------------------------------------------

TEST(VdiskCli, CreateFixedThenInspect) {
  ScratchDir dir;
  const std::string path = dir.File("d.vdisk");
  Outcome c = Vdisk(dir, {"create", path, "--size", "1M", "--block-size", "4K"});
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("256 blocks"), std::string::npos) << c.out;
  EXPECT_EQ(std::filesystem::file_size(path), 1u << 20);

  Json j = InspectJson(dir, path);
  EXPECT_EQ(j["format_version"], format::kFormatVersion);
  EXPECT_EQ(j["block_size"], 4096);
  EXPECT_EQ(j["block_count"], 256);
  EXPECT_EQ(j["size_bytes"], 1 << 20);
  EXPECT_EQ(j["virtual_size_bytes"], 1 << 20);
  EXPECT_EQ(j["file_size_bytes"], 1 << 20);
  EXPECT_EQ(j["growable"], false);
  EXPECT_EQ(j["checkpoint"]["generation"], 1);
  EXPECT_EQ(j["uuid"].get<std::string>().size(), 36u);
  const Json& s = j["space"];
  EXPECT_TRUE(s["error"].is_null());
  EXPECT_EQ(s["blocks_used"].get<uint64_t>() + s["blocks_free"].get<uint64_t>() +
                s["blocks_pending_reuse"].get<uint64_t>(),
            256u);
  EXPECT_GE(s["blocks_used"], 2);  // at least the two superblocks
  EXPECT_EQ(s["free_extents"], 1);
  EXPECT_EQ(s["largest_free_extent_blocks"], s["blocks_free"]);
  ASSERT_EQ(j["superblocks"].size(), 2u);
  for (int i = 0; i < 2; i++) {
    const Json& sb = j["superblocks"][i];
    EXPECT_EQ(sb["block"], i);
    EXPECT_EQ(sb["valid"], true);
    EXPECT_EQ(sb["generation"], 1);
    EXPECT_TRUE(sb["error"].is_null());
  }
  EXPECT_NE(j["superblocks"][0]["current"], j["superblocks"][1]["current"]);
  EXPECT_TRUE(j["backend"]["name"] == "io_uring" || j["backend"]["name"] == "file");
  EXPECT_FALSE(j["backend"]["reason"].get<std::string>().empty());
  EXPECT_TRUE(j["indexes"].is_array() && j["indexes"].empty());

  Outcome text = Vdisk(dir, {"inspect", path});
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("256 blocks (1 MiB)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("generation 1, current"), std::string::npos) << text.out;
}

TEST(VdiskCli, CreateGrowableSizeIsVirtualSize) {
  ScratchDir dir;
  const std::string path = dir.File("thin.vdisk");
  Outcome c = Vdisk(dir, {"create", path, "--size", "1G", "--growable", "--growth-step", "256K",
                          "--backend", "file"});
  ASSERT_EQ(c.code, 0) << c.err;
  Json j = InspectJson(dir, path);
  EXPECT_EQ(j["growable"], true);
  EXPECT_EQ(j["virtual_size_bytes"], 1ull << 30);
  EXPECT_EQ(j["max_size_bytes"], 1ull << 30);
  EXPECT_EQ(j["growth_step_bytes"], 256 << 10);
  EXPECT_EQ(j["size_bytes"], 256 << 10);  // the file starts at one growth step
  EXPECT_EQ(std::filesystem::file_size(path), 256u << 10);
  EXPECT_EQ(j["features"]["names"], Json::array({"growable"}));
}

TEST(VdiskCli, CreateGrowableWithMaxSizeTakesSizeAsInitial) {
  ScratchDir dir;
  const std::string path = dir.File("thin.vdisk");
  Outcome c = Vdisk(dir, {"create", path, "--growable", "--size", "512K", "--max-size", "1.5G"});
  ASSERT_EQ(c.code, 0) << c.err;
  Json j = InspectJson(dir, path);
  EXPECT_EQ(j["max_size_bytes"], 3ull << 29);
  EXPECT_EQ(j["virtual_size_bytes"], 3ull << 29);
  EXPECT_EQ(j["size_bytes"], 512 << 10);
}

// ---- refusing to clobber -------------------------------------------------------------------

TEST(VdiskCli, CreateRefusesExistingFileWithoutForce) {
  ScratchDir dir;
  const std::string path = dir.File("precious");
  Spit(path, "do not touch");
  Outcome r = Vdisk(dir, {"create", path, "--size", "1M"});
  EXPECT_EQ(r.code, 4);
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  EXPECT_EQ(Slurp(path), "do not touch");

  Outcome f = Vdisk(dir, {"create", path, "--size", "1M", "--force"});
  ASSERT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(InspectJson(dir, path)["size_bytes"], 1 << 20);
}

TEST(VdiskCli, CreateRefusesDirectoryEvenWithForce) {
  ScratchDir dir;
  Outcome r = Vdisk(dir, {"create", dir.path().string(), "--size", "1M", "--force"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_TRUE(std::filesystem::is_directory(dir.path()));
}

// ---- bad disks -----------------------------------------------------------------------------

TEST(VdiskCli, ForeignFileIsNotAVirtualDiskAndUntouched) {
  ScratchDir dir;
  const std::string path = dir.File("random.bin");
  std::mt19937_64 rng(testing::TestSeed());
  std::string bytes(64 << 10, '\0');
  for (char& b : bytes) b = static_cast<char>(rng());
  Spit(path, bytes);
  for (auto args :
       std::vector<std::vector<std::string>>{{"inspect", path}, {"inspect", path, "--json"}}) {
    Outcome r = Vdisk(dir, args);
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("vdisk: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("not a virtual disk"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  EXPECT_EQ(Slurp(path), bytes);
}

TEST(VdiskCli, TruncatedFileIsCorrupt) {
  ScratchDir dir;
  const std::string path = dir.File("d.vdisk");
  ASSERT_EQ(Vdisk(dir, {"create", path, "--size", "1M"}).code, 0);
  std::filesystem::resize_file(path, 64 << 10);
  Outcome r = Vdisk(dir, {"inspect", path});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
  EXPECT_EQ(std::filesystem::file_size(path), 64u << 10);
}

// A file cut mid-block is a damaged disk (exit 2), not a usage error: Disk::InspectPath checks
// the file size against the superblock before the device sees it.
TEST(VdiskCli, FileCutMidBlockIsCorrupt) {
  ScratchDir dir;
  const std::string path = dir.File("d.vdisk");
  ASSERT_EQ(Vdisk(dir, {"create", path, "--size", "1M"}).code, 0);
  std::filesystem::resize_file(path, 10000);
  Outcome r = Vdisk(dir, {"inspect", path});
  EXPECT_EQ(r.code, 2) << r.err;
}

TEST(VdiskCli, OneDamagedSuperblockIsReportedAndTolerated) {
  ScratchDir dir;
  const std::string path = dir.File("d.vdisk");
  ASSERT_EQ(Vdisk(dir, {"create", path, "--size", "1M"}).code, 0);
  FlipByte(path, format::kSbBlockCount);  // in block 0
  Json j = InspectJson(dir, path);
  const Json& c0 = j["superblocks"][0];
  const Json& c1 = j["superblocks"][1];
  EXPECT_EQ(c0["valid"], false);
  EXPECT_TRUE(c0["generation"].is_null());
  ASSERT_TRUE(c0["error"].is_string());
  EXPECT_NE(c0["error"].get<std::string>().find("block 0"), std::string::npos) << c0["error"];
  EXPECT_EQ(c1["valid"], true);
  EXPECT_EQ(c1["current"], true);
  EXPECT_EQ(c1["generation"], 1);
  EXPECT_EQ(j["block_count"], 256);

  Outcome text = Vdisk(dir, {"inspect", path});
  EXPECT_EQ(text.code, 0);
  EXPECT_NE(text.out.find("INVALID"), std::string::npos) << text.out;
  EXPECT_NE(text.err.find("superblock copy 0 is damaged"), std::string::npos) << text.err;
}

TEST(VdiskCli, BothSuperblocksDamagedIsCorrupt) {
  ScratchDir dir;
  const std::string path = dir.File("d.vdisk");
  ASSERT_EQ(Vdisk(dir, {"create", path, "--size", "1M"}).code, 0);
  FlipByte(path, format::kSbBlockCount);
  FlipByte(path, 4096 + format::kSbBlockCount);
  const std::string before = Slurp(path);
  Outcome r = Vdisk(dir, {"inspect", path, "--json"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(Slurp(path), before);
}

TEST(VdiskCli, NewerFormatVersionIsRefused) {
  ScratchDir dir;
  const std::string path = dir.File("d.vdisk");
  ASSERT_EQ(Vdisk(dir, {"create", path, "--size", "1M"}).code, 0);
  RewriteSuperblocks(path, 4096, [](Superblock& sb) { sb.format_version++; });
  Outcome r = Vdisk(dir, {"inspect", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("not supported"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("version"), std::string::npos) << r.err;
}

TEST(VdiskCli, UnknownIncompatibleFeatureIsRefused) {
  ScratchDir dir;
  const std::string path = dir.File("d.vdisk");
  ASSERT_EQ(Vdisk(dir, {"create", path, "--size", "1M"}).code, 0);
  RewriteSuperblocks(path, 4096, [](Superblock& sb) { sb.features_incompat |= 1ull << 40; });
  Outcome r = Vdisk(dir, {"inspect", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("not supported"), std::string::npos) << r.err;
}

TEST(VdiskCli, MissingFileIsReported) {
  ScratchDir dir;
  const std::string path = dir.File("nope.vdisk");
  Outcome r = Vdisk(dir, {"inspect", path});
  EXPECT_EQ(r.code, 4);
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No such file"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path));
}

// ---- the pieces underneath -----------------------------------------------------------------

TEST(VdiskCliSize, ParsesBinaryUnits) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  for (const Case& c :
       {Case{"4096", 4096}, Case{"0", 0}, Case{"4K", 4096}, Case{"4k", 4096}, Case{"4KiB", 4096},
        Case{"4kib", 4096}, Case{"512B", 512}, Case{"10G", 10ull << 30}, Case{"10GiB", 10ull << 30},
        Case{"1.5G", 3ull << 29}, Case{"0.5M", 1ull << 19}, Case{"2T", 2ull << 40},
        Case{"1P", 1ull << 50}, Case{"16383P", 16383ull << 50}}) {
    auto r = ParseSize(c.text);
    ASSERT_TRUE(r.has_value()) << c.text << ": " << r.error().ToString();
    EXPECT_EQ(*r, c.bytes) << c.text;
  }
}

TEST(VdiskCliSize, RejectsGarbage) {
  for (const char* bad : {"", " 4K", "4K ", "K", "-4K", "+4K", "4X", "4KB", "4 K", "1.", ".5G",
                          "1.0000001G", "0.3K", "1e3", "18446744073709551616", "16384P", "0x10"}) {
    auto r = ParseSize(bad);
    EXPECT_FALSE(r.has_value()) << "\"" << bad << "\" parsed as " << (r ? *r : 0);
    if (!r) {
      EXPECT_TRUE(r.error().IsInvalidArgument());
      EXPECT_NE(r.error().message().find(bad), std::string::npos) << r.error().ToString();
    }
  }
}

TEST(VdiskCliSize, FormatsHumanSizes) {
  EXPECT_EQ(FormatSize(0), "0 bytes");
  EXPECT_EQ(FormatSize(1), "1 byte");
  EXPECT_EQ(FormatSize(1023), "1023 bytes");
  EXPECT_EQ(FormatSize(4096), "4 KiB");
  EXPECT_EQ(FormatSize(1536), "1.5 KiB");
  EXPECT_EQ(FormatSize(10ull << 30), "10 GiB");
  EXPECT_EQ(FormatSize(3ull << 29), "1.5 GiB");
  EXPECT_EQ(FormatBlocks(1, 4096), "1 block (4 KiB)");
  EXPECT_EQ(FormatBlocks(256, 4096), "256 blocks (1 MiB)");
}

TEST(VdiskCliExit, StatusCodesMapToDocumentedExitCodes) {
  EXPECT_EQ(ExitCodeFor(Status::OK()), 0);
  EXPECT_EQ(ExitCodeFor(Status::InvalidArgument("x")), 1);
  EXPECT_EQ(ExitCodeFor(Status::Corruption("x")), 2);
  EXPECT_EQ(ExitCodeFor(Status::NotSupported("x")), 2);
  EXPECT_EQ(ExitCodeFor(Status::IOError("x")), 3);
  EXPECT_EQ(ExitCodeFor(Status::NoSpace("x")), 3);
  EXPECT_EQ(ExitCodeFor(Status::NotFound("x")), 4);
  EXPECT_EQ(ExitCodeFor(Status::AlreadyExists("x")), 4);
}

// ---- The adaptive B+tree and the read path, as inspect and --stats show them ----------------

constexpr uint64_t kStatsKeys = 50000;

// A dump of `count` records in key order: 8-byte keys "k0000000", "k0000001", ... and 8-byte
// values "v0000000", ... (printable, so escaped as they are).
std::string SequentialDump(uint64_t count) {
  std::string d = "vde-dump 1\n";
  char line[64];  // room for two 20-digit numbers
  for (uint64_t i = 0; i < count; i++) {
    std::snprintf(line, sizeof line, "k%07llu\tv%07llu\n", static_cast<unsigned long long>(i),
                  static_cast<unsigned long long>(i));
    d += line;
  }
  return d + "vde-dump-end " + std::to_string(count) + "\n";
}

// The number that follows `label` on the --stats line beginning with it (e.g. 8 for
// "  read-ahead:     8 windows, ..."), or -1 when there is no such line.
int64_t StatAfter(const std::string& err, const std::string& label) {
  size_t at = err.rfind("\n" + label);
  if (at == std::string::npos) return -1;
  at += 1 + label.size();
  while (at < err.size() && err[at] == ' ') at++;
  if (at >= err.size() || err[at] < '0' || err[at] > '9') return -1;
  return std::strtoll(err.c_str() + at, nullptr, 10);
}

// A 64 MiB disk in `dir` loaded with SequentialDump(kStatsKeys) by `vdisk load` with `extra`
// options; the load's outcome in *load.
std::string LoadedDisk(const ScratchDir& dir, const std::vector<std::string>& extra,
                       Outcome* load) {
  const std::string disk = dir.File("stats.vdisk");
  Outcome c = Vdisk(dir, {"create", disk, "--size", "64M"});
  EXPECT_EQ(c.code, 0) << c.err;
  Spit(dir.File("seq.dump"), SequentialDump(kStatsKeys));
  std::vector<std::string> args = {"load", disk, dir.File("seq.dump")};
  args.insert(args.end(), extra.begin(), extra.end());
  *load = Vdisk(dir, args);
  EXPECT_EQ(load->code, 0) << load->err;
  return disk;
}

TEST(VdiskCliStats, SequentialLoadFillsLeavesWithFixedWidthPages) {
  ScratchDir dir;
  Outcome load;
  const std::string disk = LoadedDisk(dir, {"--stats"}, &load);
  // stdout is the usual one-line summary; the counters go to stderr.
  EXPECT_EQ(load.out.rfind("loaded " + std::to_string(kStatsKeys) + " keys (", 0), 0u) << load.out;
  EXPECT_EQ(std::count(load.out.begin(), load.out.end(), '\n'), 1) << load.out;
  EXPECT_EQ(load.err.rfind("stats of index 'default' of " + disk + ":\n", 0), 0u) << load.err;
  EXPECT_GT(StatAfter(load.err, "  splits:"), 0) << load.err;  // ascending ones
  EXPECT_GE(StatAfter(load.err, "  cache:"), 0) << load.err;

  Json j = InspectJson(dir, disk);
  ASSERT_EQ(j["indexes"].size(), 1u) << j;
  const Json& x = j["indexes"][0];
  EXPECT_EQ(x["entries"], kStatsKeys);
  EXPECT_GE(x["leaf_fill_factor"].get<double>(), 0.95) << x;
  EXPECT_GT(x["inner_fill_factor"].get<double>(), 0.0) << x;
  EXPECT_EQ(x["fill_per_level"].size(), x["height"].get<size_t>()) << x;
  const Json& enc = x["pages_by_encoding"];
  EXPECT_GT(enc["fixed_entries"].get<uint64_t>() + enc["fixed_keys"].get<uint64_t>(), 0u) << x;
  EXPECT_EQ(enc["variable"].get<uint64_t>() + enc["fixed_keys"].get<uint64_t>() +
                enc["fixed_entries"].get<uint64_t>(),
            x["pages"].get<uint64_t>())
      << x;

  Outcome text = Vdisk(dir, {"inspect", disk});
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("\n                  fill leaves "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(" fixed-entries"), std::string::npos) << text.out;
}

TEST(VdiskCliStats, ColdScanReportsReadAheadWithoutChangingStdout) {
  ScratchDir dir;
  Outcome load;
  const std::string disk = LoadedDisk(dir, {"--quiet"}, &load);
  EXPECT_TRUE(load.err.empty()) << load.err;  // no --stats, no counters

  Outcome plain = Vdisk(dir, {"scan", disk, "--keys-only"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_TRUE(plain.err.empty()) << plain.err;
  Outcome stats = Vdisk(dir, {"scan", disk, "--keys-only", "--stats"});
  ASSERT_EQ(stats.code, 0) << stats.err;
  EXPECT_EQ(std::count(stats.out.begin(), stats.out.end(), '\n'),
            static_cast<std::ptrdiff_t>(kStatsKeys));
  EXPECT_TRUE(stats.out == plain.out) << "--stats changed what scan prints on stdout";
  // Every vdisk opens the disk afresh, so the scan starts cold and reads ahead.
  EXPECT_GT(StatAfter(stats.err, "  read-ahead:"), 0) << stats.err;
  EXPECT_GT(StatAfter(stats.err, "  prefetch:"), 0) << stats.err;
  EXPECT_EQ(StatAfter(stats.err, "  splits:"), 0) << stats.err;  // nothing written

  Outcome get = Vdisk(dir, {"get", disk, "k0000042", "--stats"});
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_EQ(get.out, "v0000042\n");
  EXPECT_GE(StatAfter(get.err, "  cache:"), 0) << get.err;
  EXPECT_EQ(StatAfter(get.err, "  read-ahead:"), 0) << get.err;  // a point read never reads ahead
}

}  // namespace
}  // namespace vde::vdisk
