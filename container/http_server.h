// The endpoint's HTTP/1.1 layer: event-driven (Boost.Beast over Boost.Asio, Debian's libboost-dev),
// so an idle or slow connection holds a socket and a few kilobytes, never a thread. A few I/O
// threads multiplex every connection; a handler runs on one of them once its request is complete.
//
// What a client cannot do to it (each limit answered the way the comment says, then the connection
// is closed; the server goes on):
//   - hold a request header open: the header must arrive whole within header_timeout of its first
//     byte (a new connection gets the same time for that first byte; a kept-alive one waits up to
//     keep_alive_timeout between requests), else the connection is closed without an answer;
//   - send a header over max_header_bytes: 431;
//   - announce a body over max_body_bytes: 413 from Content-Length, before any of the body is
//     read; a chunked body is cut off (413) as soon as it passes the limit;
//   - trickle a body: it must be complete within body_timeout of the header, else the connection
//     is closed (without an answer, like a header that does not arrive);
//   - open connections without end: past max_connections a new one gets 503 at once and is closed;
//   - send requests and never read the answers: once max_unsent_bytes of answers wait to be
//     written, further answers are 503 (and each unread one is dropped at write_timeout);
//   - send something that is not HTTP/1.x: 400 with the parser's reason; a chunk-size line
//     (with extensions) over 64 KB: 400 (the read buffer of a connection is bounded);
// Errors are JSON bodies {"error": "<reason>", "status": N}, like the handler's own. Keep-alive
// follows HTTP/1.1 (and Connection: keep-alive on 1.0); "Expect: 100-continue" is honoured.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mlforge::container {

struct HttpLimits {
  size_t max_body_bytes = size_t{6} << 20;
  size_t max_header_bytes = 16 << 10;
  double header_timeout_s = 10;
  double keep_alive_timeout_s = 60;
  double body_timeout_s = 60;
  double write_timeout_s = 60;
  int max_connections = 10000;  // also capped by the open-file limit (raised to its hard maximum)
  // Answer bytes being written, over all connections; an answer past it becomes a 503 (clients
  // that never read their answers cannot fill memory).
  size_t max_unsent_bytes = size_t{1} << 30;
  int io_threads = 2;
};

// One complete request, as the handler sees it (views valid during the call).
struct HttpRequest {
  std::string_view method;  // "GET", "POST", ...
  std::string_view path;    // the target without its query string
  std::string_view content_type;
  std::string_view accept;
  // SageMaker's X-Amzn-SageMaker-Custom-Attributes header (request options, e.g. FM's top_k).
  std::string_view custom_attributes;
  std::string_view remote;  // the client's address
  std::string_view body;
  bool has_length = false;  // Content-Length or Transfer-Encoding was sent
};

struct HttpResponse {
  int status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (e.g. Allow)
};

// The JSON error body every non-2xx answer carries: {"error": reason, "status": status}.
std::string HttpErrorBody(int status, const std::string& reason);
// Sets `res` to that error.
void HttpFail(HttpResponse& res, int status, const std::string& reason);

class HttpServer {
 public:
  // Called on an I/O thread for every complete request; must not throw (the server answers 500 and
  // logs if it does).
  using Handler = std::function<void(const HttpRequest&, HttpResponse&)>;
  // Called after every answer, the layer's own errors included, with the answer's status and
  // body size: counting and access logs. For the layer's own errors the request has no body, and
  // no method or path when its request line was never read.
  using Logger = std::function<void(int status, const HttpRequest& request, size_t out_bytes)>;

  HttpServer(HttpLimits limits, Handler handler, Logger logger = nullptr);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (0: any free port) and returns the port. UserError naming the address when
  // it cannot.
  int Bind(const std::string& host, int port);
  // Serves until Stop(); then refuses new connections, closes idle ones, lets requests in flight
  // finish (at most `grace_s` seconds) and returns.
  void Run(double grace_s = 25);
  // Thread-safe, returns at once; also before Run() (Run then returns at once).
  void Stop();
  // Connections open now (tests).
  int open_connections() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace mlforge::container
