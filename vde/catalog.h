// Catalog: the store's directory of named indexes. docs/FORMAT.md ("Catalog") is the authority for
// its layout:
//
//   superblock.catalog_root -> catalog header block (type kCatalog) -> names B+tree
//   names B+tree: key = index name (1 to 255 bytes), value = a 32-byte catalog record
//
// Catalog header block (version 1), after the 32-byte block header:
//   offset size field
//   32     8    magic          "VDECATLG"
//   40     8    names_root     root page of the names B+tree
//   48     8    index_count    records in the names tree
//   56     8    next_index_id  the id the next created index gets (ids are never reused)
//   64     ...  reserved       zero to the end of the block
//
// Catalog record (the value stored under an index's name), little-endian:
//   offset size field
//   0      8    root                the index's B+tree root page at the checkpoint
//   8      8    id                  unique index id, >= 1
//   16     8    created_generation  generation the index was created in
//   24     4    max_inline_value    IndexOptions::max_inline_value (0 = the block size's limit)
//   28     4    flags               zero
//
// The header block is copy-on-write like every other block: each checkpoint that changes it
// writes it to a fresh block and frees the old one (reuse deferred until the checkpoint is
// durable). The names tree is an ordinary index::BTree sharing the store's page cache.
//
// Thread safety: none; the store serializes every call (writers and checkpoints exclude one
// another). Ownership: the disk, the cache and the block source must outlive the catalog.
// Errors: Corruption naming the file and block for a header or record that does not decode;
// NotSupported for a newer header version; the tree's and device's errors otherwise.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "blockdev/status.h"
#include "index/block_source.h"
#include "index/btree.h"
#include "index/page_cache.h"
#include "vde/disk.h"

namespace vde {

inline constexpr uint16_t kCatalogBlockVersion = 1;
inline constexpr size_t kCatalogMagic = 32;
inline constexpr size_t kCatalogNamesRoot = 40;
inline constexpr size_t kCatalogIndexCount = 48;
inline constexpr size_t kCatalogNextIndexId = 56;
inline constexpr size_t kCatalogEnd = 64;
inline constexpr std::string_view kCatalogMagicBytes{"VDECATLG", 8};
inline constexpr size_t kCatalogRecordSize = 32;
inline constexpr size_t kMaxIndexNameSize = 255;

struct CatalogHeader {
  uint64_t names_root = 0;
  uint64_t index_count = 0;
  uint64_t next_index_id = 1;
  bool operator==(const CatalogHeader&) const = default;
};

struct CatalogRecord {
  uint64_t root = 0;
  uint64_t id = 0;
  uint64_t created_generation = 0;
  uint32_t max_inline_value = 0;
  bool operator==(const CatalogRecord&) const = default;
};

// Encodes the header into `block` (block_size bytes, zero-filled first) and seals it as block
// `block_no` of `generation`.
void EncodeCatalogHeader(const CatalogHeader& h, std::span<std::byte> block, uint64_t block_no,
                         uint64_t generation);
// Verifies and decodes a header read from block `block_no` of `path` (block_count blocks).
Result<CatalogHeader> DecodeCatalogHeader(std::span<const std::byte> block, uint64_t block_no,
                                          uint64_t block_count, std::string_view path);

std::string EncodeCatalogRecord(const CatalogRecord& r);
// Decodes the record of index `name`, found under header block `header_block` of `path`.
Result<CatalogRecord> DecodeCatalogRecord(std::string_view bytes, std::string_view name,
                                          uint64_t block_count, uint64_t header_block,
                                          std::string_view path);

class Catalog {
 public:
  struct Entry {
    std::string name;
    CatalogRecord record;
  };

  // A new, empty catalog (an empty names tree). Nothing on disk names it until WriteHeader.
  static Result<std::unique_ptr<Catalog>> Create(Disk* disk, index::PageCache* cache,
                                                 index::BlockSource* source);
  // The catalog whose header is block `header_block`: verifies the header, opens the names
  // tree and decodes every record into *entries (sorted by name). Checks that the count matches
  // the header and that ids are unique and below next_index_id.
  static Result<std::unique_ptr<Catalog>> Load(Disk* disk, index::PageCache* cache,
                                               index::BlockSource* source, uint64_t header_block,
                                               std::vector<Entry>* entries);

  // Adds or replaces the record of `name`; a new name counts one more index.
  Status Put(std::string_view name, const CatalogRecord& record, bool is_new);
  // Removes `name`. When the tree reports an error, checks whether the name is gone anyway
  // (a merge after the removal failed): then the drop stands and the result is OK.
  Status Delete(std::string_view name);

  // A fresh index id.
  uint64_t TakeIndexId() { return next_id_++; }

  // When the names tree's root, the count or the next id differ from what the header block on
  // disk records (or there is none), writes a new header block sealed with `generation`, frees
  // the old one and points the disk's catalog root at it. The checkpoint calls this after the
  // last change to the names tree and before Disk::Checkpoint.
  Status WriteHeaderIfChanged(uint64_t generation);

  uint64_t header_block() const { return header_block_; }
  const index::BTree& names() const { return *names_; }
  uint64_t index_count() const { return count_; }
  uint64_t next_index_id() const { return next_id_; }

 private:
  Catalog(Disk* disk, index::BlockSource* source, std::unique_ptr<index::BTree> names)
      : disk_(disk), source_(source), names_(std::move(names)) {}

  Disk* disk_;
  index::BlockSource* source_;
  std::unique_ptr<index::BTree> names_;
  uint64_t header_block_ = 0;  // 0 until the first WriteHeaderIfChanged of a new catalog
  CatalogHeader written_;      // what header_block_ holds
  uint64_t count_ = 0;
  uint64_t next_id_ = 1;
};

}  // namespace vde
