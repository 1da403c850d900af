#include "container/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>
#include <vector>

#include "algos/predictor.h"
#include "comm/communicator.h"
#include "container/http_server.h"
#include "container/inference_io.h"
#include "core/error.h"
#include "io/archive.h"

namespace mlforge::container {
namespace {

using Clock = std::chrono::steady_clock;

// Latencies of /invocations in log-spaced buckets (8 per decade from 1 us to 1000 s): lock-free
// recording from every worker, approximate percentiles (within one bucket, ~33%) for the summary.
class LatencyHistogram {
 public:
  static constexpr int kPerDecade = 8;
  static constexpr int kBuckets = 9 * kPerDecade + 1;

  void Record(double seconds) {
    const double us = std::max(seconds * 1e6, 1.0);
    const int b = std::min(kBuckets - 1, static_cast<int>(std::log10(us) * kPerDecade));
    counts_[static_cast<size_t>(b)].fetch_add(1, std::memory_order_relaxed);
  }
  // Snapshot of the counts (and reset when `reset`).
  std::array<uint64_t, kBuckets> Take(bool reset) {
    std::array<uint64_t, kBuckets> out{};
    for (size_t i = 0; i < out.size(); ++i) {
      out[i] = reset ? counts_[i].exchange(0, std::memory_order_relaxed)
                     : counts_[i].load(std::memory_order_relaxed);
    }
    return out;
  }
  // The upper edge of the bucket holding quantile q, in milliseconds; 0 when empty.
  static double QuantileMs(const std::array<uint64_t, kBuckets>& c, double q) {
    uint64_t total = 0;
    for (uint64_t v : c) total += v;
    if (total == 0) return 0;
    const auto want = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
    uint64_t seen = 0;
    for (int b = 0; b < kBuckets; ++b) {
      seen += c[static_cast<size_t>(b)];
      if (seen >= want) return std::pow(10.0, static_cast<double>(b + 1) / kPerDecade) / 1000.0;
    }
    return std::pow(10.0, 9.0) / 1000.0;
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
};

// Request counts by status class, since the last summary and in all.
struct Counters {
  std::atomic<uint64_t> ok{0}, client{0}, server{0}, rows{0};
  void Count(int status) {
    (status >= 500 ? server : status >= 400 ? client : ok).fetch_add(1, std::memory_order_relaxed);
  }
};

// One Resources per prediction slot; a request holds a slot while it predicts.
class ResourcePool {
 public:
  ResourcePool(int workers, DeviceRequest device) {
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int threads = std::max(1, hw / std::max(1, workers));
    for (int i = 0; i < workers; ++i) {
      slots_.push_back(std::make_unique<Resources>(device, threads, 0, comm::MakeSingleProcess(),
                                                   StopToken::Never(),
                                                   /*log_choice=*/i == 0));
      free_.push_back(slots_.back().get());
    }
  }
  class Lease {
   public:
    Lease(ResourcePool* pool, Resources* res) : pool_(pool), res_(res) {}
    ~Lease() { pool_->Release(res_); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Resources& operator*() const { return *res_; }

   private:
    ResourcePool* pool_;
    Resources* res_;
  };
  Lease Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty(); });
    Resources* r = free_.back();
    free_.pop_back();
    return Lease(this, r);
  }

 private:
  void Release(Resources* r) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      free_.push_back(r);
    }
    cv_.notify_one();
  }
  std::vector<std::unique_ptr<Resources>> slots_;
  std::vector<Resources*> free_;
  std::mutex mu_;
  std::condition_variable cv_;
};

int ParseEnvInt(const char* name, int lo, int hi) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return -1;
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  MLF_EXPECTS(errno == 0 && end != v && *end == '\0' && x >= lo && x <= hi,
              "environment variable {}='{}': expected an integer in [{}, {}]", name, v, lo, hi);
  return static_cast<int>(x);
}

}  // namespace

void ApplyServeEnvironment(ServeOptions* o) {
  if (int port = ParseEnvInt("SAGEMAKER_BIND_TO_PORT", 0, 65535); port >= 0)
    o->port = port;  // 0: any free port
  if (int mb = ParseEnvInt("SAGEMAKER_MAX_PAYLOAD_IN_MB", 1, 100); mb > 0)
    o->max_payload_bytes = size_t(mb) << 20;
  if (int n = ParseEnvInt("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", 1, 1024); n > 0) o->workers = n;
  if (const char* a = std::getenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"); a != nullptr && *a != '\0') {
    ParseAccept(a);  // a typo fails at start, naming the variable below
    o->default_accept = a;
  }
}

struct Server::Impl {
  ServeOptions opt;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<algos::Predictor> predictor;  // set once by the loader, then read-only
  std::unique_ptr<ResourcePool> pool;
  std::atomic<bool> ready{false};
  std::string load_error;  // written by the loader before it stops the server
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;
  LatencyHistogram latency;
  Counters window, total;
  Clock::time_point window_start = Clock::now();

  void Count(int status) {
    window.Count(status);
    total.Count(status);
  }

  // The access summary of the window since the last one; a periodic one only when there were
  // requests, the final one always.
  void Summary(bool final) {
    const auto now = Clock::now();
    const double secs = std::chrono::duration<double>(now - window_start).count();
    window_start = now;
    const uint64_t ok = window.ok.exchange(0), client = window.client.exchange(0),
                   server = window.server.exchange(0), rows = window.rows.exchange(0);
    const auto hist = latency.Take(true);
    const uint64_t n = ok + client + server;
    if (n == 0 && !final) return;
    spdlog::info(
        "serve {}: {} request(s) in {:.1f} s ({:.0f}/s): {} ok, {} client error(s), {} server error(s); "
        "{} row(s) predicted; /invocations latency p50 <= {:.3g} ms, p99 <= {:.3g} ms",
        final ? "final" : "summary", n, secs, secs > 0 ? static_cast<double>(n) / secs : 0.0, ok, client,
        server, rows, LatencyHistogram::QuantileMs(hist, 0.5), LatencyHistogram::QuantileMs(hist, 0.99));
  }

  void Invocations(const HttpRequest& req, HttpResponse& res) {
    const auto t0 = Clock::now();
    if (!ready.load()) {
      HttpFail(res, 503, "the model is still loading; retry when GET /ping answers 200");
      return;
    }
    const algos::Predictor& p = *predictor;
    const std::string content_type(req.content_type);
    RequestType type;
    try {
      MLF_EXPECTS(!content_type.empty(),
                  "missing Content-Type header; send one of text/csv, application/json, "
                  "application/jsonlines, application/x-recordio-protobuf");
      type = ParseContentType(content_type);
      CheckRequestType(type, p, "content type '" + content_type + "'");
    } catch (const UserError& e) {
      HttpFail(res, 415, e.what());
      return;
    }
    std::string accept(req.accept);
    if (!opt.default_accept.empty()) {
      const std::string trimmed = accept.substr(0, accept.find(';'));
      if (trimmed.find_first_not_of(" \t") == std::string::npos || trimmed == "*/*")
        accept = opt.default_accept;
    }
    ResponseFormat format;
    try {
      format = ParseAccept(accept, p.csv_response());
    } catch (const UserError& e) {
      HttpFail(res, 406, e.what());
      return;
    }
    if (req.body.empty() && !req.has_length) {
      HttpFail(res, 400,
           "POST /invocations: the request has no Content-Length (and is not chunked); send the rows as "
           "the body with its length");
      return;
    }
    if (req.body.empty()) {
      HttpFail(res, 400,
           "the request body is empty; send at least one row (" +
               std::string(RequestFormatName(type.format)) + ")");
      return;
    }
    HostBatch batch;
    try {
      RequestContext ctx;
      ctx.source = "request";
      ctx.expected_cols = p.feature_dim();
      batch = DecodeRequest(type, req.body, ctx);
    } catch (const UserError& e) {
      HttpFail(res, 400, e.what());
      return;
    }
    algos::PredictionTable table;
    {
      ResourcePool::Lease lease = pool->Acquire();
      // UserError -> 400, others -> 500 (exception handler)
      table = p.PredictWithAttributes(batch, *lease, std::string(req.custom_attributes));
    }
    ResponseEncoder encoder(format, p.json_list_key());
    std::string body;
    encoder.Append(table, &body);
    encoder.Finish(&body);
    res.status = 200;
    res.body = std::move(body);
    res.content_type = ResponseFormatName(format);
    window.rows.fetch_add(static_cast<uint64_t>(batch.rows), std::memory_order_relaxed);
    latency.Record(std::chrono::duration<double>(Clock::now() - t0).count());
  }

  void Load() {
    try {
      const auto t0 = Clock::now();
      if (opt.load) {
        predictor = opt.load();
      } else {
        predictor = LoadPredictor(io::ModelSource::Open(opt.model_path), opt.algorithm);
      }
      MLF_ASSERT(predictor != nullptr);
      pool = std::make_unique<ResourcePool>(opt.workers, opt.device);
      ready.store(true);
      spdlog::info("serving {} from {} ({:.0f} ms to load): {} prediction worker(s), payload limit {} MB",
                   predictor->Describe(), opt.model_path,
                   std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), opt.workers,
                   opt.max_payload_bytes >> 20);
    } catch (const std::exception& e) {
      load_error = fmt::format("cannot load the model {}: {}", opt.model_path, e.what());
      spdlog::error("{}", load_error);
      RequestStop();
    }
  }

  void RequestStop() {
    {
      std::lock_guard<std::mutex> lock(stop_mu);
      stopping = true;
    }
    stop_cv.notify_all();
  }

  // Routes one request; a UserError escaping a handler is the request's fault (400), anything else
  // ours (500: logged with its reason, the client gets no internals, the server keeps serving).
  void Handle(const HttpRequest& req, HttpResponse& res) {
    try {
      Route(req, res);
    } catch (const UserError& e) {
      HttpFail(res, 400, e.what());
    } catch (const std::exception& e) {
      spdlog::error("{} {}: internal error: {}", req.method, req.path, e.what());
      HttpFail(res, 500, "internal error while handling the request; the server log has the details");
    } catch (...) {
      spdlog::error("{} {}: internal error (unknown exception)", req.method, req.path);
      HttpFail(res, 500, "internal error while handling the request; the server log has the details");
    }
  }

  void Route(const HttpRequest& req, HttpResponse& res) {
    const char* allowed = nullptr;
    if (req.path == "/ping") {
      allowed = "GET";
      if (req.method == "GET") {
        if (ready.load()) {
          res.status = 200;
        } else {
          HttpFail(res, 503, "the model is still loading");
        }
        return;
      }
    } else if (req.path == "/invocations") {
      allowed = "POST";
      if (req.method == "POST") return Invocations(req, res);
    } else if (req.path == "/execution-parameters") {
      allowed = "GET";
      if (req.method == "GET") {
        const nlohmann::json j = {{"MaxConcurrentTransforms", opt.workers},
                                  {"BatchStrategy", "MULTI_RECORD"},
                                  {"MaxPayloadInMB", static_cast<int64_t>(opt.max_payload_bytes >> 20)}};
        res.body = j.dump();
        res.content_type = "application/json";
        return;
      }
    }
    if (allowed == nullptr) {
      HttpFail(res, 404,
           fmt::format("{} {}: no such endpoint; this server answers GET /ping, POST /invocations and GET "
                       "/execution-parameters",
                       req.method, req.path));
      return;
    }
    res.headers.emplace_back("Allow", allowed);
    HttpFail(res, 405, fmt::format("{} {}: method not allowed; use {}", req.method, req.path, allowed));
  }

  void Configure() {
    HttpLimits limits = opt.http;
    limits.max_body_bytes = opt.max_payload_bytes;
    limits.io_threads = opt.http_threads;
    http = std::make_unique<HttpServer>(
        limits, [this](const HttpRequest& req, HttpResponse& res) { Handle(req, res); },
        [this](int status, const HttpRequest& req, size_t out_bytes) {
          Count(status);
          spdlog::debug("{} {} {} -> {} ({} byte(s) in, {} out)", req.remote, req.method, req.path, status,
                        req.body.size(), out_bytes);
        });
  }
};

Server::Server(ServeOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.opt = std::move(options);
  if (s.opt.workers <= 0) s.opt.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (s.opt.http_threads <= 0) s.opt.http_threads = s.opt.workers;
  const HttpLimits& h = s.opt.http;
  MLF_EXPECTS(h.max_connections >= 1, "the connection limit must be at least 1");
  MLF_EXPECTS(h.header_timeout_s > 0 && h.body_timeout_s > 0 && h.keep_alive_timeout_s > 0,
              "the HTTP timeouts must be positive");
  MLF_EXPECTS(!s.opt.model_path.empty() || s.opt.load,
              "no model given: pass --model PATH (a directory, model.tar.gz or model_algo-1)");
  MLF_EXPECTS(s.opt.max_payload_bytes >= 1, "the payload limit must be at least 1 byte");
  s.Configure();
}

Server::~Server() { Stop(); }

bool Server::Ready() const { return impl_->ready.load(); }

void Server::Stop() { impl_->RequestStop(); }

int Server::Run() {
  Impl& s = *impl_;
  const int port = s.http->Bind(s.opt.host, s.opt.port);
  bound_port_.store(port);
  spdlog::info("listening on {}:{} ({} I/O thread(s), at most {} connections); loading {}", s.opt.host, port,
               s.opt.http_threads, s.opt.http.max_connections, s.opt.model_path);

  std::thread loader([&s] { s.Load(); });
  // The watcher: stop requests (Stop(), SIGTERM through the token, a failed load) and the periodic
  // access summary.
  std::thread watcher([&s] {
    auto next_summary = Clock::now() + std::chrono::seconds(std::max(1, s.opt.summary_seconds));
    std::unique_lock<std::mutex> lock(s.stop_mu);
    while (!s.stopping) {
      s.stop_cv.wait_for(lock, std::chrono::milliseconds(100));
      if (s.opt.stop.stop_requested()) s.stopping = true;
      if (Clock::now() >= next_summary) {
        lock.unlock();
        s.Summary(false);
        lock.lock();
        next_summary = Clock::now() + std::chrono::seconds(std::max(1, s.opt.summary_seconds));
      }
    }
    lock.unlock();
    spdlog::info("stopping: no new connections; finishing requests in flight");
    s.http->Stop();
  });
  s.http->Run();
  s.RequestStop();
  watcher.join();
  loader.join();
  s.Summary(true);
  const uint64_t ok = s.total.ok.load(), client = s.total.client.load(), server = s.total.server.load();
  spdlog::info("server stopped after {} request(s) ({} ok, {} client error(s), {} server error(s))",
               ok + client + server, ok, client, server);
  if (!s.load_error.empty()) throw UserError(s.load_error);
  return 0;
}

}  // namespace mlforge::container
