// A shared library opened with dlopen() on first use, for the CUDA libraries mlforge does not link
// (core/cublas_lazy.cc, core/cusolver_lazy.cc: linking them costs every process, GPU or not,
// hundreds of MB of resident memory). Host code only; only built with CUDA.
#pragma once

#include <dlfcn.h>

#include <initializer_list>
#include <string>

namespace mlforge::detail {

struct LazyLibrary {
  void* handle = nullptr;
  std::string name;   // the name that opened
  std::string error;  // why it could not be opened or bound ("" when it was)

  // Opens the first of `names` that loads (RTLD_NOW | RTLD_LOCAL). On failure `error` gives the
  // first name's dlopen reason (the informative one) and `hint`.
  bool Open(std::initializer_list<std::string> names, const char* hint) {
    for (const std::string& n : names) {
      handle = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle != nullptr) {
        name = n;
        error.clear();
        return true;
      }
      const char* e = dlerror();
      if (error.empty()) error = "cannot load " + n + ": " + (e ? e : "unknown dlopen error") + " (" + hint + ")";
    }
    return false;
  }

  // fn = the symbol `name`; on failure records it in `error` and returns false.
  template <typename T>
  bool Bind(T& fn, const char* symbol) {
    fn = reinterpret_cast<T>(dlsym(handle, symbol));
    if (fn == nullptr) error = name + " has no symbol " + symbol;
    return fn != nullptr;
  }

  // After a failed Bind: closes the library, keeping `error`.
  void Close() {
    if (handle != nullptr) dlclose(handle);
    handle = nullptr;
  }
};

}  // namespace mlforge::detail
