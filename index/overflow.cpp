#include "index/overflow.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "blockdev/aligned_buffer.h"
#include "blockdev/block_header.h"

namespace vde::index {

namespace {

// A staging buffer for one extent; NoSpace instead of an exception when memory is short.
Result<AlignedBuffer> MakeExtentBuffer(blockdev::BlockDevice* device, uint64_t blocks) {
  size_t bytes = static_cast<size_t>(blocks) * device->block_size();
  try {
    return AlignedBuffer(bytes, std::max<size_t>(device->alignment(), 64));
  } catch (const std::bad_alloc&) {
    return Status::NoSpace(device->path() + ": cannot allocate " + std::to_string(bytes) +
                           " bytes to stage an out-of-line value");
  }
}

}  // namespace

void EncodeOverflowRef(const OverflowRef& ref, std::byte* out) {
  PutU64(out, ref.first_block);
  PutU32(out + 8, ref.block_count);
  PutU64(out + 12, ref.value_size);
}

OverflowRef DecodeOverflowRef(const std::byte* in) {
  return OverflowRef{GetU64(in), GetU32(in + 8), GetU64(in + 12)};
}

bool IsValidOverflowRef(const OverflowRef& ref, uint32_t block_size) {
  if (ref.value_size == 0 || ref.value_size > kMaxValueSize) return false;
  if (ref.block_count != OverflowBlocksFor(ref.value_size, block_size)) return false;
  return ref.first_block != 0 && ref.first_block <= ~uint64_t{0} - ref.block_count;
}

Result<OverflowRef> WriteOverflowValue(blockdev::BlockDevice* device, BlockSource* source,
                                       std::string_view value) {
  const uint32_t bs = device->block_size();
  const uint32_t per = OverflowPayloadPerBlock(bs);
  OverflowRef ref;
  ref.value_size = value.size();
  ref.block_count = static_cast<uint32_t>(OverflowBlocksFor(value.size(), bs));
  VDE_ASSIGN_OR_RETURN(AlignedBuffer buf, MakeExtentBuffer(device, ref.block_count));
  VDE_ASSIGN_OR_RETURN(ref.first_block, source->Allocate(ref.block_count));
  const uint64_t generation = source->generation();
  for (uint32_t i = 0; i < ref.block_count; i++) {
    std::byte* b = buf.data() + static_cast<size_t>(i) * bs;
    PutU64(b + 32, ref.value_size);
    PutU32(b + 40, i);
    PutU32(b + 44, ref.block_count);
    size_t off = static_cast<size_t>(i) * per;
    size_t n = std::min<size_t>(per, value.size() - off);
    std::memcpy(b + kOverflowHeaderSize, value.data() + off, n);  // the tail stays zero
    SealBlock({b, bs}, BlockType::kOverflow, ref.first_block + i, generation);
  }
  Status s = device->Write(ref.first_block, ref.block_count, buf.span());
  if (!s.ok()) {
    Status f = source->Free(ref.first_block, ref.block_count);
    return f.ok() ? s : s.WithContext("(and freeing the extent failed: " + f.ToString() + ")");
  }
  return ref;
}

namespace {

Status InvalidRef(blockdev::BlockDevice* device, const OverflowRef& ref) {
  return Status::Corruption("block " + std::to_string(ref.first_block) + " of " + device->path() +
                            ": invalid out-of-line value reference (" +
                            std::to_string(ref.block_count) + " blocks, " +
                            std::to_string(ref.value_size) + " bytes)");
}

// Verifies the extent read into `buf` and copies the value out of it.
Status DecodeExtent(blockdev::BlockDevice* device, const OverflowRef& ref, const std::byte* buf,
                    std::string* out) {
  const uint32_t bs = device->block_size();
  const uint32_t per = OverflowPayloadPerBlock(bs);
  out->resize(ref.value_size);
  for (uint32_t i = 0; i < ref.block_count; i++) {
    const std::byte* b = buf + static_cast<size_t>(i) * bs;
    uint64_t block = ref.first_block + i;
    VDE_RETURN_IF_ERROR(VerifyBlock({b, bs}, block, BlockType::kOverflow, device->path()));
    if (GetU64(b + 32) != ref.value_size || GetU32(b + 40) != i ||
        GetU32(b + 44) != ref.block_count) {
      return Status::Corruption("block " + std::to_string(block) + " of " + device->path() +
                                ": overflow block says value of " + std::to_string(GetU64(b + 32)) +
                                " bytes, block " + std::to_string(GetU32(b + 40)) + " of " +
                                std::to_string(GetU32(b + 44)) + "; the reference expects block " +
                                std::to_string(i) + " of " + std::to_string(ref.block_count) +
                                " for " + std::to_string(ref.value_size) + " bytes");
    }
    size_t off = static_cast<size_t>(i) * per;
    size_t n = std::min<size_t>(per, ref.value_size - off);
    std::memcpy(out->data() + off, b + kOverflowHeaderSize, n);
  }
  return Status::OK();
}

}  // namespace

Status ReadOverflowValue(blockdev::BlockDevice* device, const OverflowRef& ref, std::string* out) {
  if (!IsValidOverflowRef(ref, device->block_size())) return InvalidRef(device, ref);
  VDE_ASSIGN_OR_RETURN(AlignedBuffer buf, MakeExtentBuffer(device, ref.block_count));
  VDE_RETURN_IF_ERROR(device->Read(ref.first_block, ref.block_count, buf.span()));
  return DecodeExtent(device, ref, buf.data(), out);
}

uint32_t ReadOverflowValues(blockdev::BlockDevice* device, std::span<const OverflowRef> refs,
                            std::span<std::string* const> outs, std::span<Status> statuses) {
  const uint32_t bs = device->block_size();
  const uint64_t batch_blocks = std::max<uint64_t>(1, kOverflowBatchBytes / bs);
  uint32_t batches = 0;
  std::vector<size_t> members;
  std::vector<blockdev::ReadRequest> reqs;
  size_t i = 0;
  while (i < refs.size()) {
    // The next batch: valid references up to batch_blocks blocks (at least one extent).
    members.clear();
    uint64_t blocks = 0;
    for (; i < refs.size(); i++) {
      if (!IsValidOverflowRef(refs[i], bs)) {
        statuses[i] = InvalidRef(device, refs[i]);
        continue;
      }
      if (!members.empty() && blocks + refs[i].block_count > batch_blocks) break;
      members.push_back(i);
      blocks += refs[i].block_count;
    }
    if (members.empty()) break;
    Result<AlignedBuffer> buf = MakeExtentBuffer(device, blocks);
    if (!buf.has_value()) {
      for (size_t k : members) statuses[k] = buf.error();
      continue;
    }
    reqs.assign(members.size(), blockdev::ReadRequest{});
    uint64_t at = 0;
    for (size_t j = 0; j < members.size(); j++) {
      const OverflowRef& r = refs[members[j]];
      reqs[j].block = r.first_block;
      reqs[j].count = r.block_count;
      reqs[j].buf = buf->data() + at * bs;
      at += r.block_count;
    }
    batches++;
    (void)device->ReadBatch(reqs);  // per-request statuses are checked below
    for (size_t j = 0; j < members.size(); j++) {
      const size_t k = members[j];
      statuses[k] = reqs[j].status.ok() ? DecodeExtent(device, refs[k], reqs[j].buf, outs[k])
                                        : reqs[j].status;
    }
  }
  return batches;
}

Status FreeOverflowValue(BlockSource* source, const OverflowRef& ref) {
  return source->Free(ref.first_block, ref.block_count);
}

}  // namespace vde::index
