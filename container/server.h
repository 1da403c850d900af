// The SageMaker inference contract (SPEC.md 3): an HTTP server on port 8080 answering
//   GET  /ping                   200, empty body, once the model is loaded (503 while loading)
//   POST /invocations            Content-Type -> rows -> Predictor (one batch per request) -> Accept
//   GET  /execution-parameters   {"MaxConcurrentTransforms": workers, "BatchStrategy": "MULTI_RECORD",
//                                 "MaxPayloadInMB": max payload}
// Every error answers a JSON body {"error": "<reason>", "status": <code>} naming the record and
// field where the request was at fault:
//   400 malformed body, wrong feature count, empty body ("send at least one row": an empty request
//       is a client mistake, never an empty success)
//   404 unknown path, 405 wrong method on a known path
//   406 unsupported Accept (text/csv for a model whose endpoint does not answer CSV included)
//   413 body over the payload limit (SAGEMAKER_MAX_PAYLOAD_IN_MB, default 6)
//   415 unsupported Content-Type
//   500 an internal fault (logged with its reason; the client gets no internals), the server keeps
//       serving; 503 before the model is loaded
// The model is loaded once and shared read-only; each of `workers` prediction slots owns its own
// Resources (device, threads, CUDA stream), so requests are predicted concurrently without locks
// on the model. Stop() (or SIGTERM through the StopToken) stops accepting, lets in-flight requests
// finish, and Run() returns.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "algos/predictor.h"
#include "container/http_server.h"
#include "core/resources.h"
#include "core/stop.h"

namespace mlforge::container {

struct ServeOptions {
  std::string model_path;                       // a model directory, model.tar.gz or bare model_algo-1
  std::string algorithm;                        // "" = detect from the artifact
  std::string host = "0.0.0.0";                 // the address to bind
  int port = 8080;                              // 0 = any free port (tests); see BoundPort()
  int workers = 0;                              // concurrent predictions; 0 = hardware threads
  int http_threads = 0;                         // I/O threads serving every connection; 0 = workers
  DeviceRequest device = DeviceRequest::kAuto;  // where predictions run
  size_t max_payload_bytes = size_t{6} << 20;   // larger bodies get 413 (from Content-Length, unread)
  // Connection limits of the HTTP layer (container/http_server.h): past max_connections a new
  // connection gets 503; a header must arrive within header_timeout_s, a body within
  // body_timeout_s; a kept-alive connection may idle keep_alive_timeout_s between requests. Its
  // max_body_bytes and io_threads come from max_payload_bytes and http_threads above.
  HttpLimits http;
  std::string default_accept;                   // used when Accept is absent or */* ("" = JSON)
  int summary_seconds = 60;                     // access summary at info level this often (and at exit)
  StopToken stop = StopToken::Never();          // polled; a stop request shuts the server down
  // When set, called (on the loader thread) instead of loading model_path: embedding and tests.
  std::function<std::unique_ptr<algos::Predictor>()> load;
};

// Fills port, max_payload_bytes, default_accept and workers from SageMaker's environment
// (SAGEMAKER_BIND_TO_PORT, SAGEMAKER_MAX_PAYLOAD_IN_MB, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT,
// SAGEMAKER_MAX_CONCURRENT_TRANSFORMS) where set. UserError naming the variable when a value is
// not a valid number.
void ApplyServeEnvironment(ServeOptions* options);

class Server {
 public:
  explicit Server(ServeOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds (UserError naming the address when it cannot), loads the model in the background and
  // serves until Stop() or the stop token. Returns 0 after a clean stop; throws UserError when the
  // model cannot be loaded (the server stops answering first).
  int Run();
  // Thread-safe; returns at once. Run() returns after in-flight requests finish.
  void Stop();
  // The bound port once Run() has bound (0 before): for port = 0.
  int BoundPort() const { return bound_port_.load(); }
  // True once the model is loaded and /ping answers 200.
  bool Ready() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::atomic<int> bound_port_{0};
};

}  // namespace mlforge::container
