// Catalog: header block and record codecs, and the names tree.
#include "vde/catalog.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "blockdev/aligned_buffer.h"
#include "blockdev/block_header.h"
#include "vde/format.h"

namespace vde {

namespace {

std::string Where(uint64_t block, std::string_view path) {
  return "block " + std::to_string(block) + " of " + std::string(path) + ": catalog: ";
}

bool InDisk(uint64_t block, uint64_t block_count) {
  return block >= format::kSuperblockCopies && block < block_count;
}

const std::byte* AsBytes(std::string_view s) {
  return reinterpret_cast<const std::byte*>(s.data());
}

}  // namespace

void EncodeCatalogHeader(const CatalogHeader& h, std::span<std::byte> block, uint64_t block_no,
                         uint64_t generation) {
  std::fill(block.begin(), block.end(), std::byte{0});
  std::memcpy(block.data() + kCatalogMagic, kCatalogMagicBytes.data(), kCatalogMagicBytes.size());
  PutU64(block.data() + kCatalogNamesRoot, h.names_root);
  PutU64(block.data() + kCatalogIndexCount, h.index_count);
  PutU64(block.data() + kCatalogNextIndexId, h.next_index_id);
  SealBlock(block, BlockType::kCatalog, block_no, generation, kCatalogBlockVersion);
}

Result<CatalogHeader> DecodeCatalogHeader(std::span<const std::byte> block, uint64_t block_no,
                                          uint64_t block_count, std::string_view path) {
  BlockHeader bh;
  VDE_RETURN_IF_ERROR(VerifyBlock(block, block_no, BlockType::kCatalog, path, &bh));
  const std::string where = Where(block_no, path);
  if (bh.version != kCatalogBlockVersion) {
    return Status::NotSupported(where + "header version " + std::to_string(bh.version) +
                                " (this build reads version 1)");
  }
  if (bh.flags != 0) return Status::Corruption(where + "nonzero flags");
  if (std::memcmp(block.data() + kCatalogMagic, kCatalogMagicBytes.data(), 8) != 0) {
    return Status::Corruption(where + "bad magic (not a catalog header)");
  }
  CatalogHeader h;
  h.names_root = GetU64(block.data() + kCatalogNamesRoot);
  h.index_count = GetU64(block.data() + kCatalogIndexCount);
  h.next_index_id = GetU64(block.data() + kCatalogNextIndexId);
  if (!InDisk(h.names_root, block_count)) {
    return Status::Corruption(where + "names tree root " + std::to_string(h.names_root) +
                              " outside [2, " + std::to_string(block_count) + ")");
  }
  if (h.next_index_id == 0 || h.index_count >= h.next_index_id) {
    return Status::Corruption(where + std::to_string(h.index_count) + " indexes but next id " +
                              std::to_string(h.next_index_id));
  }
  for (size_t i = kCatalogEnd; i < block.size(); i++) {
    if (block[i] != std::byte{0}) {
      return Status::Corruption(where + "reserved byte " + std::to_string(i) + " is not zero");
    }
  }
  return h;
}

std::string EncodeCatalogRecord(const CatalogRecord& r) {
  std::string out(kCatalogRecordSize, '\0');
  auto* p = reinterpret_cast<std::byte*>(out.data());
  PutU64(p, r.root);
  PutU64(p + 8, r.id);
  PutU64(p + 16, r.created_generation);
  PutU32(p + 24, r.max_inline_value);
  PutU32(p + 28, 0);
  return out;
}

Result<CatalogRecord> DecodeCatalogRecord(std::string_view bytes, std::string_view name,
                                          uint64_t block_count, uint64_t header_block,
                                          std::string_view path) {
  const std::string where = Where(header_block, path) + "index '" + std::string(name) + "': ";
  if (name.empty() || name.size() > kMaxIndexNameSize) {
    return Status::Corruption(where + "name of " + std::to_string(name.size()) + " bytes");
  }
  if (bytes.size() != kCatalogRecordSize) {
    return Status::Corruption(where + "record of " + std::to_string(bytes.size()) +
                              " bytes (expected " + std::to_string(kCatalogRecordSize) + ")");
  }
  const std::byte* p = AsBytes(bytes);
  CatalogRecord r;
  r.root = GetU64(p);
  r.id = GetU64(p + 8);
  r.created_generation = GetU64(p + 16);
  r.max_inline_value = GetU32(p + 24);
  if (GetU32(p + 28) != 0) return Status::Corruption(where + "nonzero record flags");
  if (!InDisk(r.root, block_count)) {
    return Status::Corruption(where + "root " + std::to_string(r.root) + " outside [2, " +
                              std::to_string(block_count) + ")");
  }
  if (r.id == 0) return Status::Corruption(where + "index id 0");
  return r;
}

Result<std::unique_ptr<Catalog>> Catalog::Create(Disk* disk, index::PageCache* cache,
                                                 index::BlockSource* source) {
  VDE_ASSIGN_OR_RETURN(std::unique_ptr<index::BTree> names, index::BTree::Create(cache, source));
  return std::unique_ptr<Catalog>(new Catalog(disk, source, std::move(names)));
}

Result<std::unique_ptr<Catalog>> Catalog::Load(Disk* disk, index::PageCache* cache,
                                               index::BlockSource* source, uint64_t header_block,
                                               std::vector<Entry>* entries) {
  blockdev::BlockDevice& dev = disk->device();
  const uint64_t blocks = dev.block_count();
  const std::string& path = dev.path();
  if (!InDisk(header_block, blocks)) {
    return Status::Corruption(path + ": catalog root " + std::to_string(header_block) +
                              " outside [2, " + std::to_string(blocks) + ")");
  }
  AlignedBuffer buf(dev.block_size(), std::max<size_t>(dev.alignment(), 64));
  VDE_RETURN_IF_ERROR(dev.Read(header_block, 1, buf.span()));
  VDE_ASSIGN_OR_RETURN(CatalogHeader h,
                       DecodeCatalogHeader(buf.span(), header_block, blocks, path));
  Result<std::unique_ptr<index::BTree>> names = index::BTree::Open(cache, source, h.names_root);
  if (!names.has_value()) {
    return names.error().WithContext(Where(header_block, path) + "names tree");
  }
  std::unique_ptr<Catalog> c(new Catalog(disk, source, std::move(*names)));
  c->header_block_ = header_block;
  c->written_ = h;
  c->count_ = h.index_count;
  c->next_id_ = h.next_index_id;

  entries->clear();
  std::set<uint64_t> ids;
  auto it = c->names_->NewIterator();
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view value = it->value();
    if (!it->status().ok()) break;
    VDE_ASSIGN_OR_RETURN(CatalogRecord r,
                         DecodeCatalogRecord(value, it->key(), blocks, header_block, path));
    if (r.id >= h.next_index_id || !ids.insert(r.id).second) {
      return Status::Corruption(Where(header_block, path) + "index '" + std::string(it->key()) +
                                "': id " + std::to_string(r.id) +
                                " is a duplicate or not below next id " +
                                std::to_string(h.next_index_id));
    }
    entries->push_back({std::string(it->key()), r});
  }
  VDE_RETURN_IF_ERROR(it->status());
  if (entries->size() != h.index_count) {
    return Status::Corruption(Where(header_block, path) + "header counts " +
                              std::to_string(h.index_count) + " indexes, the names tree holds " +
                              std::to_string(entries->size()));
  }
  return c;
}

Status Catalog::Put(std::string_view name, const CatalogRecord& record, bool is_new) {
  VDE_RETURN_IF_ERROR(names_->Put(name, EncodeCatalogRecord(record)));
  if (is_new) count_++;
  return Status::OK();
}

Status Catalog::Delete(std::string_view name) {
  Status s = names_->Delete(name);
  if (!s.ok()) {
    std::string value;
    Status g = names_->Get(name, &value);
    if (!g.IsNotFound()) return s;
  }
  count_--;
  return Status::OK();
}

Status Catalog::WriteHeaderIfChanged(uint64_t generation) {
  const CatalogHeader h{names_->root(), count_, next_id_};
  if (header_block_ != 0 && h == written_) return Status::OK();
  blockdev::BlockDevice& dev = disk_->device();
  VDE_ASSIGN_OR_RETURN(uint64_t block, source_->Allocate(1));
  AlignedBuffer buf(dev.block_size(), std::max<size_t>(dev.alignment(), 64));
  EncodeCatalogHeader(h, buf.span(), block, generation);
  Status s = dev.Write(block, 1, buf.span());
  if (s.ok()) s = disk_->SetCatalogRoot(block);
  if (!s.ok()) {
    Status f = source_->Free(block, 1);
    return f.ok() ? s : s.WithContext("(freeing block " + std::to_string(block) + " failed too)");
  }
  const uint64_t old = header_block_;
  header_block_ = block;
  written_ = h;
  // The last checkpoint still names the old block; the allocator holds it back until the
  // checkpoint that no longer does is durable.
  if (old != 0) VDE_RETURN_IF_ERROR(source_->Free(old, 1));
  return Status::OK();
}

}  // namespace vde
