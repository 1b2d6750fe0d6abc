#include "blockdev/status.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace vde {
namespace {

TEST(Status, OkIsCheapAndPrintsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(sizeof(Status), sizeof(void*) * 2);
}

TEST(Status, ErrnoMapsToCodes) {
  EXPECT_TRUE(Status::FromErrno(ENOSPC, "x").IsNoSpace());
  EXPECT_TRUE(Status::FromErrno(-ENOENT, "x").IsNotFound());
  Status io = Status::FromErrno(-EIO, "read db.vdisk block 7");
  EXPECT_TRUE(io.IsIOError());
  EXPECT_EQ(io.err(), EIO);
  EXPECT_NE(io.ToString().find("read db.vdisk block 7: "), std::string::npos) << io.ToString();
}

TEST(Status, WithContextPrefixesAndKeepsCode) {
  Status s = Status::Corruption("checksum mismatch").WithContext("block 9 of a.vdisk");
  EXPECT_TRUE(s.IsCorruption());
  EXPECT_EQ(s.ToString(), "corruption: block 9 of a.vdisk: checksum mismatch");
  EXPECT_TRUE(Status::OK().WithContext("x").ok());
}

Result<int> Half(int x) {
  if (x % 2) return Status::InvalidArgument("odd");
  return x / 2;
}

Status Quarter(int x, int* out) {
  VDE_ASSIGN_OR_RETURN(int h, Half(x));
  VDE_ASSIGN_OR_RETURN(*out, Half(h));
  return Status::OK();
}

TEST(Result, HoldsValueOrError) {
  int q = 0;
  EXPECT_TRUE(Quarter(8, &q).ok());
  EXPECT_EQ(q, 2);
  Status s = Quarter(6, &q);
  EXPECT_TRUE(s.IsInvalidArgument());
  Result<int> r = Half(3);
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "odd");
}

}  // namespace
}  // namespace vde
