// A std::vector allocator whose resize() leaves new elements of trivial types unwritten: for
// buffers that are filled right after they grow (read(2) targets, score samples), where the
// zeroing would be a wasted pass over memory.
#pragma once

#include <memory>
#include <new>
#include <utility>

namespace mlforge {

template <typename T>
struct NoInitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = NoInitAllocator<U>;
  };
  NoInitAllocator() = default;
  template <typename U>
  NoInitAllocator(const NoInitAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
};

}  // namespace mlforge
