// BTree::Iterator. It keeps a copy of the current leaf, so stepping within a leaf touches
// neither the lock nor the cache beyond a version check; it crosses to the next or previous leaf
// by re-descending from the root with the leaf's fence key (no sibling pointers: under
// copy-on-write a moved page would have to update both neighbours).
#include <cstring>
#include <mutex>
#include <string>

#include "index/btree.h"

namespace vde::index {

std::unique_ptr<BTree::Iterator> BTree::NewIterator(IteratorOptions options) const {
  return std::unique_ptr<Iterator>(new Iterator(this, std::move(options)));
}

BTree::Iterator::Iterator(const BTree* tree, IteratorOptions options)
    : tree_(tree), options_(std::move(options)), leaf_(new std::byte[tree->block_size_]) {
  std::memset(leaf_.get(), 0, tree->block_size_);
}

void BTree::Iterator::CopyLeaf(const SharedGuard& g) {
  std::memcpy(leaf_.get(), g.data().data(), tree_->block_size_);
  leaf_version_ = tree_->modifications_.load(std::memory_order_relaxed);
}

void BTree::Iterator::Finish(Status s) {
  value_loaded_ = false;
  value_.clear();
  status_ = std::move(s);
  if (!status_.ok()) valid_ = false;
  if (!valid_) return;
  leaf().CopyKey(slot_, &key_);
  if ((!options_.lower_bound.empty() && key_ < options_.lower_bound) ||
      (!options_.upper_bound.empty() && key_ >= options_.upper_bound)) {
    valid_ = false;
  }
}

Status BTree::Iterator::AtOrAfter(std::string_view key, bool strict) {
  valid_ = false;
  VDE_ASSIGN_OR_RETURN(SharedGuard g, tree_->DescendShared(key, Descent::kLowerBound));
  CopyLeaf(g);
  g.Release();
  Node n = leaf();
  bool found;
  uint32_t pos = n.LowerBound(key, &found);
  if (strict && found) pos++;
  if (pos < n.count()) {
    slot_ = pos;
    valid_ = true;
    return Status::OK();
  }
  return NextLeaf();
}

Status BTree::Iterator::AtOrBefore(std::string_view key, bool strict) {
  valid_ = false;
  VDE_ASSIGN_OR_RETURN(SharedGuard g, tree_->DescendShared(key, Descent::kLowerBound));
  CopyLeaf(g);
  g.Release();
  Node n = leaf();
  bool found;
  uint32_t pos = n.LowerBound(key, &found);
  if (found && !strict) {
    slot_ = pos;
    valid_ = true;
    return Status::OK();
  }
  if (pos > 0) {
    slot_ = pos - 1;
    valid_ = true;
    return Status::OK();
  }
  return PrevLeaf();
}

Status BTree::Iterator::AtLast() {
  valid_ = false;
  VDE_ASSIGN_OR_RETURN(SharedGuard g, tree_->DescendShared({}, Descent::kRightmost));
  CopyLeaf(g);
  g.Release();
  if (leaf().count() > 0) {
    slot_ = leaf().count() - 1;
    valid_ = true;
    return Status::OK();
  }
  return PrevLeaf();
}

Status BTree::Iterator::NextLeaf() {
  valid_ = false;
  for (;;) {
    const std::string fence(leaf().upper_fence());
    // No next leaf, or every key beyond this leaf is past the upper bound.
    if (fence.empty()) return Status::OK();
    if (!options_.upper_bound.empty() && fence >= options_.upper_bound) return Status::OK();
    VDE_ASSIGN_OR_RETURN(SharedGuard g, tree_->DescendShared(fence, Descent::kUpperBound));
    if (Node(g.data().data(), tree_->block_size_).lower_fence() != fence) {
      return tree_->Corrupt(g.page_id(), "the leaf after fence key does not start at it");
    }
    CopyLeaf(g);
    if (leaf().count() > 0) {
      slot_ = 0;
      valid_ = true;
      return Status::OK();
    }
  }
}

Status BTree::Iterator::PrevLeaf() {
  valid_ = false;
  for (;;) {
    const std::string fence(leaf().lower_fence());
    if (fence.empty()) return Status::OK();
    if (!options_.lower_bound.empty() && fence < options_.lower_bound) return Status::OK();
    VDE_ASSIGN_OR_RETURN(SharedGuard g, tree_->DescendShared(fence, Descent::kLowerBound));
    if (Node(g.data().data(), tree_->block_size_).upper_fence() != fence) {
      return tree_->Corrupt(g.page_id(), "the leaf before fence key does not end at it");
    }
    CopyLeaf(g);
    if (leaf().count() > 0) {
      slot_ = leaf().count() - 1;
      valid_ = true;
      return Status::OK();
    }
  }
}

void BTree::Iterator::SeekToFirst() {
  std::shared_lock lock(tree_->mu_);
  Status s = tree_->CheckUsable();
  Finish(s.ok() ? AtOrAfter(options_.lower_bound, false) : s);
}

void BTree::Iterator::SeekToLast() {
  std::shared_lock lock(tree_->mu_);
  Status s = tree_->CheckUsable();
  if (!s.ok()) return Finish(s);
  Finish(options_.upper_bound.empty() ? AtLast() : AtOrBefore(options_.upper_bound, true));
}

void BTree::Iterator::Seek(std::string_view key) {
  std::shared_lock lock(tree_->mu_);
  Status s = tree_->CheckUsable();
  if (!s.ok()) return Finish(s);
  std::string target(key < options_.lower_bound ? options_.lower_bound : key);
  Finish(AtOrAfter(target, false));
}

void BTree::Iterator::SeekForPrev(std::string_view key) {
  std::shared_lock lock(tree_->mu_);
  Status s = tree_->CheckUsable();
  if (!s.ok()) return Finish(s);
  if (!options_.upper_bound.empty() && key >= options_.upper_bound) {
    Finish(AtOrBefore(options_.upper_bound, true));
  } else {
    std::string target(key);
    Finish(AtOrBefore(target, false));
  }
}

void BTree::Iterator::Next() {
  if (!Valid()) return;
  std::shared_lock lock(tree_->mu_);
  Status s = tree_->CheckUsable();
  if (!s.ok()) return Finish(s);
  if (leaf_version_ == tree_->modifications_.load(std::memory_order_relaxed)) {
    if (slot_ + 1 < leaf().count()) {
      slot_++;
      return Finish(Status::OK());
    }
    return Finish(NextLeaf());
  }
  const std::string current = key_;  // the tree changed: continue after the current key
  Finish(AtOrAfter(current, true));
}

void BTree::Iterator::Prev() {
  if (!Valid()) return;
  std::shared_lock lock(tree_->mu_);
  Status s = tree_->CheckUsable();
  if (!s.ok()) return Finish(s);
  if (leaf_version_ == tree_->modifications_.load(std::memory_order_relaxed)) {
    if (slot_ > 0) {
      slot_--;
      return Finish(Status::OK());
    }
    return Finish(PrevLeaf());
  }
  const std::string current = key_;
  Finish(AtOrBefore(current, true));
}

std::string_view BTree::Iterator::value() const {
  if (!Valid()) return {};
  const Node n = leaf();
  if (!(n.flags(slot_) & kSlotFlagOverflow)) return n.payload(slot_);
  if (value_loaded_) return value_;
  std::shared_lock lock(tree_->mu_);
  Status s = tree_->CheckUsable();
  if (s.ok()) {
    if (leaf_version_ == tree_->modifications_.load(std::memory_order_relaxed)) {
      OverflowRef ref =
          DecodeOverflowRef(reinterpret_cast<const std::byte*>(n.payload(slot_).data()));
      s = ReadOverflowValue(tree_->cache_->device(), ref, &value_);
    } else {
      // The extent may have been freed since the leaf was copied: look the key up afresh.
      s = tree_->GetLocked(key_, &value_);
    }
  }
  if (!s.ok()) {
    status_ = s;
    value_.clear();
    return {};
  }
  value_loaded_ = true;
  return value_;
}

}  // namespace vde::index
