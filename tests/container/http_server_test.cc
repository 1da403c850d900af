// The endpoint's HTTP layer (container/http_server.h) against hostile and slow clients, over raw
// loopback sockets: idle and half-sent requests never delay /ping, every limit answers with its
// status and reason, keep-alive, pipelining, chunked bodies and 100-continue work, and a stop
// closes idle connections while the request in flight finishes.
#include "container/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace mlforge::container {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// A server on 127.0.0.1:<free port> on its own thread: GET /ping answers 200, POST /echo echoes
// the body, POST /slow sleeps 300 ms first.
class Fixture {
 public:
  explicit Fixture(HttpLimits limits) {
    server_ = std::make_unique<HttpServer>(limits, [](const HttpRequest& req, HttpResponse& res) {
      if (req.path == "/slow") std::this_thread::sleep_for(std::chrono::milliseconds(300));
      if (req.path == "/ping") {
        res.status = 200;
      } else if (req.path == "/big") {
        res.body = std::string(32 << 20, 'b');
      } else {
        res.content_type = "text/plain";
        res.body = std::string(req.body);
      }
    });
    port_ = server_->Bind("127.0.0.1", 0);
    run_ = std::async(std::launch::async, [this] { server_->Run(5); });
  }
  ~Fixture() {
    server_->Stop();
    run_.wait();
  }
  int port() const { return port_; }
  HttpServer& server() { return *server_; }
  std::future<void>& run() { return run_; }

 private:
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  std::future<void> run_;
};

// A raw client connection.
class Conn {
 public:
  explicit Conn(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  bool ok() const { return ok_; }
  bool Send(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      const ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  // Reads until `count` complete responses (by Content-Length) arrived, the peer closed, or
  // `timeout_s` passed. Returns what arrived.
  std::string Read(int count = 1, double timeout_s = 10) {
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(timeout_s));
    for (;;) {
      if (Complete(count)) break;
      const double left = Ms(deadline - Clock::now());
      if (left <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left) + 1) <= 0) break;
      char buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      in_.append(buf, static_cast<size_t>(n));
    }
    std::string out;
    out.swap(in_);
    return out;
  }
  // Reads until what arrived contains `marker` (kept for the next Read); false after timeout_s.
  bool WaitFor(const std::string& marker, double timeout_s) {
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(timeout_s));
    while (in_.find(marker) == std::string::npos) {
      const double left = Ms(deadline - Clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left) + 1) <= 0) return false;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return false;
      in_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  // True once the server closed the connection (within timeout_s).
  bool ClosedByPeer(double timeout_s) {
    if (closed_) return true;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout_s * 1000)) <= 0) return false;
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) in_.append(buf, static_cast<size_t>(n));
    return n <= 0 || ClosedByPeer(timeout_s);
  }

 private:
  bool Complete(int count) const {
    size_t pos = 0;
    for (int i = 0; i < count; ++i) {
      const size_t end = in_.find("\r\n\r\n", pos);
      if (end == std::string::npos) return false;
      const std::string head = in_.substr(pos, end - pos);
      size_t len = 0;
      const size_t cl = head.find("Content-Length: ");
      if (cl != std::string::npos) len = std::stoul(head.substr(cl + 16));
      if (head.rfind("HTTP/1.1 100", 0) == 0) {
        pos = end + 4;
        --i;
        continue;
      }
      if (in_.size() < end + 4 + len) return false;
      pos = end + 4 + len;
    }
    return true;
  }
  int fd_ = -1;
  bool ok_ = false;
  bool closed_ = false;
  std::string in_;
};

int Status(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return -1;
  return std::stoi(response.substr(9, 3));
}

const std::string kPing = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";

// The time of one GET /ping over a fresh connection, in ms (-1 when it failed).
double PingMs(int port) {
  const auto t0 = Clock::now();
  Conn c(port);
  if (!c.ok() || !c.Send(kPing)) return -1;
  const std::string r = c.Read(1, 5);
  if (Status(r) != 200) return -1;
  return Ms(Clock::now() - t0);
}

HttpLimits Limits() {
  HttpLimits l;
  l.max_body_bytes = 1000;
  l.io_threads = 2;
  return l;
}

// 1,000 connections that are idle, stopped inside their header, or stopped inside their body
// (the attacks that made /ping time out behind cpp-httplib's thread per connection): /ping on a
// fresh connection still answers at once, every time.
TEST(HttpServer, IdleAndSlowConnectionsNeverDelayPing) {
  Fixture f(Limits());
  std::vector<std::unique_ptr<Conn>> hogs;
  for (int i = 0; i < 1000; ++i) {
    auto c = std::make_unique<Conn>(f.port());
    ASSERT_TRUE(c->ok()) << i;
    if (i % 3 == 1) c->Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Le");
    if (i % 3 == 2) c->Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nab");
    hogs.push_back(std::move(c));
  }
  std::vector<double> ms;
  for (int i = 0; i < 200; ++i) {
    const double t = PingMs(f.port());
    ASSERT_GE(t, 0) << "ping " << i << " failed";
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  // SageMaker's health check gives /ping 2 s (SPEC.md 3): the bound that matters, far above what a
  // ping takes here (under a millisecond) and far below what blocked pings took before (> 10 s).
  // The latency itself is measured by bench/serve_hostile.sh, not asserted.
  EXPECT_LT(ms.back(), 2000.0) << "p50 " << ms[ms.size() / 2] << " ms, p99 " << ms[ms.size() * 99 / 100];
  EXPECT_GE(f.server().open_connections(), 1000);
}

// A header that stops arriving is dropped at header_timeout, a body at body_timeout; a kept-alive
// connection that stays silent at keep_alive_timeout.
TEST(HttpServer, DeadlinesForHeadersBodiesAndIdleConnections) {
  HttpLimits l = Limits();
  l.header_timeout_s = 0.5;
  l.body_timeout_s = 0.5;
  l.keep_alive_timeout_s = 0.7;
  Fixture f(l);
  {
    Conn c(f.port());
    const auto t0 = Clock::now();
    c.Send("GET /ping HTTP/1.1\r\nHo");
    EXPECT_TRUE(c.ClosedByPeer(5));
    EXPECT_LT(Ms(Clock::now() - t0), 3000);
  }
  {
    Conn c(f.port());  // nothing at all
    EXPECT_TRUE(c.ClosedByPeer(5));
  }
  {
    Conn c(f.port());
    const auto t0 = Clock::now();
    c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab");
    EXPECT_TRUE(c.ClosedByPeer(5));
    EXPECT_GT(Ms(Clock::now() - t0), 400);
    EXPECT_LT(Ms(Clock::now() - t0), 3000);
  }
  {
    Conn c(f.port());
    c.Send(kPing);
    EXPECT_EQ(Status(c.Read()), 200);
    const auto t0 = Clock::now();
    EXPECT_TRUE(c.ClosedByPeer(5));
    EXPECT_GT(Ms(Clock::now() - t0), 400);  // the keep-alive time, not the header time
  }
  EXPECT_LT(PingMs(f.port()), 1000);
}

// Over-limit requests get their status with a JSON reason: a body announced over the limit is
// answered before it is sent; a chunked one is cut off; a huge header is 431; garbage is 400.
TEST(HttpServer, LimitsAnswerWithTheirStatus) {
  Fixture f(Limits());
  {
    Conn c(f.port());
    // Only the header: the 413 must come without the body being sent.
    c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n");
    const std::string r = c.Read(1, 5);
    EXPECT_EQ(Status(r), 413) << r;
    EXPECT_NE(r.find("payload limit"), std::string::npos) << r;
    EXPECT_NE(r.find("Content-Type: application/json"), std::string::npos) << r;
    EXPECT_NE(r.find("Connection: close"), std::string::npos) << r;
  }
  {
    Conn c(f.port());
    std::string req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) req += "1f4\r\n" + std::string(500, 'a') + "\r\n";
    req += "0\r\n\r\n";
    c.Send(req);
    EXPECT_EQ(Status(c.Read(1, 5)), 413);
  }
  {
    // A chunk-size line whose extension never ends: refused once it passes the read buffer's
    // bound (this once made one connection hold 900 MB).
    Conn c(f.port());
    c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;" + std::string(200000, 'e'));
    const std::string r = c.Read(1, 5);
    EXPECT_EQ(Status(r), 400) << r;
    EXPECT_NE(r.find("chunk-size line"), std::string::npos) << r;
  }
  {
    Conn c(f.port());
    c.Send("GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'b') + "\r\n\r\n");
    const std::string r = c.Read(1, 5);
    EXPECT_EQ(Status(r), 431) << r;
  }
  {
    Conn c(f.port());
    c.Send("NOT HTTP AT ALL\r\n\r\n");
    const std::string r = c.Read(1, 5);
    EXPECT_EQ(Status(r), 400) << r;
    EXPECT_NE(r.find("malformed HTTP request"), std::string::npos) << r;
  }
  {
    Conn c(f.port());
    c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n");
    EXPECT_EQ(Status(c.Read(1, 5)), 400);
  }
  EXPECT_GE(PingMs(f.port()), 0);
}

// Past max_connections a new connection gets 503 at once (and the others keep working); once
// connections close, new ones are served again.
TEST(HttpServer, ConnectionCapAnswers503) {
  HttpLimits l = Limits();
  l.max_connections = 20;
  Fixture f(l);
  std::vector<std::unique_ptr<Conn>> held;
  for (int i = 0; i < 20; ++i) {
    held.push_back(std::make_unique<Conn>(f.port()));
    held.back()->Send(kPing);
    ASSERT_EQ(Status(held.back()->Read()), 200);
  }
  Conn extra(f.port());
  const std::string r = extra.Read(1, 5);
  EXPECT_EQ(Status(r), 503) << r;
  EXPECT_NE(r.find("limit"), std::string::npos) << r;
  // The held connections still answer (keep-alive).
  held[3]->Send(kPing);
  EXPECT_EQ(Status(held[3]->Read()), 200);
  held.clear();
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (f.server().open_connections() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GE(PingMs(f.port()), 0);
}

// Answers that their clients do not read stay in memory until written: past max_unsent_bytes
// the next answer is a 503, and once the first client reads, answers flow again. (32 MB answers:
// more than loopback's socket buffers take, so the first one stays unsent while it is not read.)
TEST(HttpServer, UnreadAnswersAreBoundedIn503s) {
  HttpLimits l = Limits();
  l.max_unsent_bytes = size_t{40} << 20;
  Fixture f(l);
  Conn hoarder(f.port());
  hoarder.Send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
  // Its answer is being written (the status line arrived); the client reads no further, for now.
  ASSERT_TRUE(hoarder.WaitFor("HTTP/1.1 200", 10));
  {
    Conn c(f.port());
    c.Send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::string r = c.Read(1, 10);
    EXPECT_EQ(Status(r), 503) << r.substr(0, 300);
    EXPECT_NE(r.find("have not read yet"), std::string::npos) << r.substr(0, 300);
  }
  const std::string got = hoarder.Read(1, 20);
  EXPECT_EQ(Status(got), 200);
  EXPECT_GE(got.size(), size_t{32} << 20);
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  std::string again;
  while (Clock::now() < deadline) {
    Conn c(f.port());
    c.Send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    again = c.Read(1, 20);
    if (Status(again) == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(Status(again), 200);
}

// Keep-alive, pipelining (two requests in one write), chunked bodies and 100-continue.
TEST(HttpServer, KeepAlivePipeliningChunkedAndContinue) {
  Fixture f(Limits());
  Conn c(f.port());
  c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloPOST /echo HTTP/1.1\r\nHost: x\r\n"
         "Content-Length: 3\r\n\r\nabc");
  const std::string two = c.Read(2, 5);
  EXPECT_EQ(Status(two), 200) << two;
  EXPECT_NE(two.find("\r\n\r\nhello"), std::string::npos) << two;
  EXPECT_NE(two.find("\r\n\r\nabc"), std::string::npos) << two;
  c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  const std::string chunked = c.Read(1, 5);
  EXPECT_EQ(Status(chunked), 200) << chunked;
  EXPECT_NE(chunked.find("\r\n\r\nabcde"), std::string::npos) << chunked;
  c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  // The interim answer arrives before the body is sent.
  EXPECT_TRUE(c.WaitFor("HTTP/1.1 100 Continue\r\n\r\n", 5));
  c.Send("wxyz");
  const std::string after = c.Read(1, 5);
  EXPECT_NE(after.find("\r\n\r\nwxyz"), std::string::npos) << after;
  // HTTP/1.0 without keep-alive: answered, then closed.
  Conn old(f.port());
  old.Send("GET /ping HTTP/1.0\r\n\r\n");
  EXPECT_EQ(Status(old.Read()), 200);
  EXPECT_TRUE(old.ClosedByPeer(5));
}

// Stop: idle connections are closed at once, the request in flight gets its answer, Run returns.
TEST(HttpServer, StopClosesIdleConnectionsAndFinishesRequestsInFlight) {
  auto f = std::make_unique<Fixture>(Limits());
  Conn idle(f->port());
  idle.Send(kPing);
  ASSERT_EQ(Status(idle.Read()), 200);
  Conn busy(f->port());
  busy.Send("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t0 = Clock::now();
  f->server().Stop();
  const std::string r = busy.Read(1, 5);
  EXPECT_EQ(Status(r), 200) << r;
  EXPECT_NE(r.find("Connection: close"), std::string::npos) << r;
  EXPECT_TRUE(idle.ClosedByPeer(5));
  ASSERT_EQ(f->run().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_LT(Ms(Clock::now() - t0), 3000);
  Conn late(f->port());
  EXPECT_FALSE(late.ok() && late.Send(kPing) && Status(late.Read(1, 1)) == 200);
}

}  // namespace
}  // namespace mlforge::container
