#include "container/http_server.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/error.h"

namespace mlforge::container {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string HttpErrorBody(int status, const std::string& reason) {
  return nlohmann::json{{"error", reason}, {"status", status}}.dump(-1, ' ', false,
                                                                    nlohmann::json::error_handler_t::replace);
}

void HttpFail(HttpResponse& res, int status, const std::string& reason) {
  res.status = status;
  res.content_type = "application/json";
  res.body = HttpErrorBody(status, reason);
}

namespace {

std::chrono::steady_clock::duration Seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
}

std::string_view View(beast::string_view s) { return std::string_view(s.data(), s.size()); }

// Raises the open-file limit to its hard maximum (each connection is a descriptor) and returns
// how many descriptors connections may use, leaving some for the rest of the process.
int DescriptorBudget() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1000;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  const rlim_t usable = rl.rlim_cur > 128 ? rl.rlim_cur - 128 : 16;
  return static_cast<int>(std::min<rlim_t>(usable, 1 << 30));
}

}  // namespace

class Session;

struct HttpServer::Impl {
  HttpLimits limits;
  Handler handler;
  Logger logger;
  // Declared before the io_context: sessions still queued in it when it is destroyed unregister
  // themselves here.
  std::atomic<bool> stopping{false};
  std::atomic<int> live{0};
  std::atomic<size_t> unsent{0};  // answer bytes being written (see HttpLimits::max_unsent_bytes)
  int cap = 0;
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  // One io_context per I/O thread, each run by its thread alone (no locking between threads in
  // the event loop: a shared context cost a fifth of the throughput on large requests in context
  // switches); connections are dealt to them in turn.
  std::vector<std::unique_ptr<net::io_context>> contexts;
  size_t next_context = 0;
  // On the first context, whose thread also runs the accept loop and the stop's close.
  std::unique_ptr<tcp::acceptor> acceptor_holder;
  tcp::acceptor& acceptor;

  Impl(HttpLimits l, Handler h, Logger g)
      : limits(l), handler(std::move(h)), logger(std::move(g)), acceptor(MakeAcceptor()) {}

  tcp::acceptor& MakeAcceptor() {
    for (int i = 0; i < std::max(1, limits.io_threads); ++i) contexts.push_back(std::make_unique<net::io_context>(1));
    acceptor_holder = std::make_unique<tcp::acceptor>(*contexts[0]);
    return *acceptor_holder;
  }

  void Log(int status, const HttpRequest& request, size_t out_bytes) const {
    if (logger) logger(status, request, out_bytes);
  }
  void Accept();
  void Refuse(tcp::socket& socket) const;
};

// One connection: wait for a request's first byte, read its header, decide (limits), read its
// body, call the handler, write the answer; again while keep-alive holds. Every step runs on the
// connection's strand, one at a time.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer::Impl* server, tcp::socket&& socket)
      : server_(server), stream_(std::move(socket)), buffer_(server->limits.max_header_bytes + kReadSlack) {
    beast::error_code ec;
    const tcp::endpoint ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string();
  }
  ~Session() {
    {
      std::lock_guard<std::mutex> lock(server_->mu);
      server_->sessions.erase(this);
    }
    server_->live.fetch_sub(1);
    server_->cv.notify_all();
  }

  void Start() {
    {
      std::lock_guard<std::mutex> lock(server_->mu);
      server_->sessions.emplace(this, weak_from_this());
    }
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->WaitForRequest(true); });
  }

  net::any_io_executor GetExecutor() { return stream_.get_executor(); }

  // On the strand: a server stop closes the connection when it is between requests; a request in
  // flight finishes and its answer closes the connection.
  void OnStop() {
    if (idle_) {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      stream_.close();
    }
  }

 private:
  const HttpLimits& limits() const { return server_->limits; }

  void WaitForRequest(bool first) {
    if (server_->stopping.load()) return Close();
    idle_ = true;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits().max_header_bytes));
    parser_->body_limit(limits().max_body_bytes);
    if (buffer_.size() > 0) return ReadHeader();  // a pipelined request is already here
    stream_.expires_after(Seconds(first ? limits().header_timeout_s : limits().keep_alive_timeout_s));
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->buffer_.commit(n);
                              if (ec) return self->Close();
                              self->ReadHeader();
                            });
  }

  void ReadHeader() {
    idle_ = false;
    stream_.expires_after(Seconds(limits().header_timeout_s));
    http::async_read_header(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->OnHeader(ec);
    });
  }

  void OnHeader(beast::error_code ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
      return Reject(431, fmt::format("the request header is larger than {} bytes", limits().max_header_bytes));
    if (ec == http::error::body_limit) return RejectTooLarge();
    if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset)
      return Close();  // a silent or vanished client gets no answer
    if (ec) return Reject(400, fmt::format("malformed HTTP request: {}", ec.message()));
    const auto& req = parser_->get();
    if (const auto len = parser_->content_length(); len && *len > limits().max_body_bytes)
      return RejectTooLarge();
    if (parser_->is_done()) return Handle();
    // 100-continue: the client waits for it before sending the body.
    const beast::string_view expect = req[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      continue_.emplace(http::status::continue_, req.version());
      stream_.expires_after(Seconds(limits().write_timeout_s));
      http::async_write(stream_, *continue_, [self = shared_from_this()](beast::error_code wec, size_t) {
        if (wec) return self->Close();
        self->ReadBody();
      });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    stream_.expires_after(Seconds(limits().body_timeout_s));
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec == http::error::body_limit) return self->RejectTooLarge();
      if (ec == http::error::buffer_overflow) {
        return self->Reject(400, fmt::format("a chunk-size line (with its extensions) is longer than {} bytes",
                                             kReadSlack));
      }
      // A body that did not arrive in time: the stream has closed the socket already (no answer
      // can be written, as for a header that did not arrive).
      if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
          ec == net::error::operation_aborted)
        return self->Close();
      if (ec) return self->Reject(400, fmt::format("malformed HTTP request body: {}", ec.message()));
      self->Handle();
    });
  }

  void RejectTooLarge() {
    Reject(413, fmt::format("the request body is larger than the payload limit of {} MB; split it into "
                            "smaller requests (SAGEMAKER_MAX_PAYLOAD_IN_MB raises the limit)",
                            limits().max_body_bytes >> 20));
  }

  // Answers a request the layer refused, then closes the connection (its body, if any, unread).
  void Reject(int status, const std::string& reason) {
    HttpResponse out;
    HttpFail(out, status, reason);
    HttpRequest in;
    in.remote = remote_;
    unsigned version = 11;
    if (parser_ && parser_->is_header_done()) {
      const auto& req = parser_->get();
      in.method = View(req.method_string());
      in.path = View(req.target());
      version = req.version();
    }
    server_->Log(status, in, out.body.size());
    Write(std::move(out), version, /*keep_alive=*/false, /*linger=*/true);
  }

  void Handle() {
    auto& req = parser_->get();
    const std::string_view target = View(req.target());
    HttpRequest in;
    in.method = View(req.method_string());
    in.path = target.substr(0, target.find('?'));
    in.content_type = View(req[http::field::content_type]);
    in.accept = View(req[http::field::accept]);
    in.custom_attributes = View(req["X-Amzn-SageMaker-Custom-Attributes"]);
    in.remote = remote_;
    in.body = req.body();
    in.has_length = req.count(http::field::content_length) > 0 || req.chunked();
    HttpResponse out;
    try {
      server_->handler(in, out);
    } catch (const std::exception& e) {
      spdlog::error("{} {}: internal error: {}", in.method, in.path, e.what());
      HttpFail(out, 500, "internal error while handling the request; the server log has the details");
    }
    server_->Log(out.status, in, out.body.size());
    const bool keep = req.keep_alive() && !server_->stopping.load();
    Write(std::move(out), req.version(), keep, /*linger=*/false);
  }

  void Write(HttpResponse out, unsigned version, bool keep_alive, bool linger) {
    // Answers wait in memory until their clients read them: past the budget, a 503 instead (a
    // client that sends large requests and never reads the answers could otherwise fill memory).
    const size_t size = out.body.size();
    if (server_->unsent.fetch_add(size) + size > limits().max_unsent_bytes && out.status < 400) {
      server_->unsent.fetch_sub(size);
      HttpFail(out, 503,
               fmt::format("the server holds {} MB of answers that their clients have not read yet, its "
                           "limit; retry shortly",
                           limits().max_unsent_bytes >> 20));
      server_->unsent.fetch_add(out.body.size());
      keep_alive = false;
    }
    unsent_ = out.body.size();
    res_ = {};
    res_.version(version);
    res_.result(static_cast<unsigned>(out.status));
    if (!out.content_type.empty()) res_.set(http::field::content_type, out.content_type);
    for (const auto& [k, v] : out.headers) res_.set(k, v);
    res_.body() = std::move(out.body);
    res_.keep_alive(keep_alive);
    res_.prepare_payload();
    stream_.expires_after(Seconds(limits().write_timeout_s));
    http::async_write(stream_, res_, [self = shared_from_this(), keep_alive, linger](beast::error_code ec, size_t) {
      self->server_->unsent.fetch_sub(self->unsent_);
      self->unsent_ = 0;
      if (ec) return self->Close();
      if (keep_alive) return self->WaitForRequest(false);
      if (linger) return self->Linger();
      self->Close();
    });
  }

  // After an early answer the client may still be sending the body: stop sending, read and drop
  // what arrives for a moment, then close, so that the kernel does not reset the connection (and
  // lose the answer) over unread bytes.
  void Linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    stream_.expires_after(std::chrono::seconds(2));
    DrainSome();
  }
  void DrainSome() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(64 << 10), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > (size_t{16} << 20)) return self->Close();
      self->DrainSome();
    });
  }

  void Close() {
    idle_ = false;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  // What the read buffer may hold beyond a whole header. A body passes through it into the
  // request (64 KB reads); the bound stops what the parser must see whole before it can consume
  // it from growing without end: a chunk-size line with an endless extension once made one
  // connection hold 900 MB.
  static constexpr size_t kReadSlack = 64 << 10;

  HttpServer::Impl* server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::empty_body>> continue_;
  http::response<http::string_body> res_;
  std::string remote_;
  size_t unsent_ = 0;  // this connection's share of Impl::unsent
  bool idle_ = false;
  size_t drained_ = 0;
};

void HttpServer::Impl::Refuse(tcp::socket& socket) const {
  const std::string body = HttpErrorBody(
      503, fmt::format("the server has {} connections open, its limit; retry shortly", cap));
  const std::string text = fmt::format(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
      "Connection: close\r\nRetry-After: 1\r\n\r\n{}",
      body.size(), body);
  beast::error_code ec;
  std::string remote;
  if (const tcp::endpoint ep = socket.remote_endpoint(ec); !ec) remote = ep.address().to_string();
  socket.non_blocking(true, ec);
  net::write(socket, net::buffer(text), ec);  // a fresh socket's send buffer takes it whole
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
  HttpRequest none;
  none.remote = remote;
  Log(503, none, body.size());
}

void HttpServer::Impl::Accept() {
  net::io_context& target = *contexts[next_context++ % contexts.size()];
  acceptor.async_accept(net::make_strand(target), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      if (live.load() >= cap) {
        Refuse(socket);
      } else {
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        live.fetch_add(1);
        std::make_shared<Session>(this, std::move(socket))->Start();
      }
    } else if (ec == net::error::no_descriptors) {
      // Out of descriptors despite the cap (other files): back off briefly instead of spinning.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Accept();
  });
}

HttpServer::HttpServer(HttpLimits limits, Handler handler, Logger logger)
    : impl_(std::make_shared<Impl>(limits, std::move(handler), std::move(logger))) {
  MLF_EXPECTS(limits.max_body_bytes >= 1, "the payload limit must be at least 1 byte");
  MLF_EXPECTS(limits.max_connections >= 1, "the connection limit must be at least 1");
}

HttpServer::~HttpServer() { Stop(); }

int HttpServer::Bind(const std::string& host, int port) {
  Impl& s = *impl_;
  s.cap = std::min(s.limits.max_connections, DescriptorBudget());
  beast::error_code ec;
  const net::ip::address addr = net::ip::make_address(host, ec);
  MLF_EXPECTS(!ec, "cannot listen on {}:{}: '{}' is not a numeric IP address", host, port, host);
  const tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  s.acceptor.open(ep.protocol(), ec);
  // SO_REUSEADDR (restart while old connections linger in TIME_WAIT) but not SO_REUSEPORT, under
  // which a second server would silently share a busy port.
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(ep, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  MLF_EXPECTS(!ec,
              "cannot listen on {}:{}: {} (is another server using the port? pass --port or set "
              "SAGEMAKER_BIND_TO_PORT)",
              host, port, ec.message());
  return s.acceptor.local_endpoint().port();
}

void HttpServer::Run(double grace_s) {
  Impl& s = *impl_;
  MLF_EXPECTS(s.acceptor.is_open(), "HttpServer::Run before Bind");
  if (s.stopping.load()) return;
  net::post(s.acceptor.get_executor(), [&s] { s.Accept(); });
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  for (auto& ctx : s.contexts) {
    guards.push_back(net::make_work_guard(*ctx));
    threads.emplace_back([c = ctx.get()] { c->run(); });
  }
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.cv.wait(lock, [&s] { return s.stopping.load(); });
  }
  // Stop: no new connections; connections between requests close; requests in flight finish.
  net::post(s.acceptor.get_executor(), [&s] {
    beast::error_code ec;
    s.acceptor.close(ec);
  });
  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    for (auto& [p, w] : s.sessions) {
      if (auto sp = w.lock()) open.push_back(std::move(sp));
    }
  }
  for (auto& sp : open) net::post(sp->GetExecutor(), [sp] { sp->OnStop(); });
  open.clear();
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.cv.wait_for(lock, Seconds(grace_s), [&s] { return s.live.load() == 0; });
  }
  for (auto& g : guards) g.reset();
  for (auto& ctx : s.contexts) ctx->stop();
  for (auto& t : threads) t.join();
}

void HttpServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping.store(true);
  }
  impl_->cv.notify_all();
}

int HttpServer::open_connections() const { return impl_->live.load(); }

}  // namespace mlforge::container
