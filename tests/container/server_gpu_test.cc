// The server with --device gpu against the same server on the CPU: one k-means model, the same
// dense and sparse requests, the same closest clusters (except exact float32 near-ties) and
// distances within 1e-4 relative; concurrent GPU workers each with their own stream. Skips with the
// reason when no GPU is usable.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "algos/kmeans/model.h"
#include "container/server.h"
#include "tests/testutil.h"

namespace mlforge::container {
namespace {

using nlohmann::json;

// Serves `model` on a free loopback port on `device` until destroyed.
class Served {
 public:
  Served(const std::string& model, DeviceRequest device, int workers) {
    ServeOptions o;
    o.model_path = model;
    o.host = "127.0.0.1";
    o.port = 0;
    o.device = device;
    o.workers = workers;
    server_ = std::make_unique<Server>(o);
    run_ = std::async(std::launch::async, [this] { return server_->Run(); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while ((server_->BoundPort() == 0 || !server_->Ready()) && std::chrono::steady_clock::now() < deadline &&
           run_.wait_for(std::chrono::milliseconds(5)) != std::future_status::ready) {
    }
  }
  ~Served() {
    server_->Stop();
    run_.wait();
  }
  json Post(const std::string& body) const {
    httplib::Client c("127.0.0.1", server_->BoundPort());
    c.set_read_timeout(60, 0);
    auto r = c.Post("/invocations", body, "application/json");
    EXPECT_TRUE(r);
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body)["predictions"];
  }

 private:
  std::unique_ptr<Server> server_;
  std::future<int> run_;
};

TEST(ServerGpu, MatchesTheCpuServer) {
  MLF_REQUIRE_GPU();
  test::TempDir dir;
  const int64_t k = 64, d = 40, n = 3000;
  algos::kmeans::Model m;
  m.k = k;
  m.dim = d;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> g(0.0f, 2.0f);
  std::uniform_real_distribution<float> u(0, 1);
  for (int64_t i = 0; i < k * d; ++i) m.centers.push_back(g(rng));
  std::filesystem::create_directories(dir / "model");
  algos::kmeans::SaveModel(m, dir / "model");

  json dense = json::array(), sparse = json::array();
  for (int64_t i = 0; i < n; ++i) {
    json row = json::array(), keys = json::array(), values = json::array();
    for (int64_t j = 0; j < d; ++j) {
      const float v = u(rng) < 0.5f ? 0.0f : g(rng);
      row.push_back(v);
      if (v != 0) {
        keys.push_back(j);
        values.push_back(v);
      }
    }
    dense.push_back({{"features", row}});
    sparse.push_back({{"data", {{"features", {{"keys", keys}, {"shape", {d}}, {"values", values}}}}}});
  }
  Served cpu(dir / "model", DeviceRequest::kCpu, 2);
  Served gpu(dir / "model", DeviceRequest::kGpu, 4);
  for (const json& inst : {dense, sparse}) {
    const std::string body = json{{"instances", inst}}.dump();
    const json want = cpu.Post(body);
    // Several GPU workers at once, each on its own stream.
    std::vector<std::future<json>> got;
    for (int t = 0; t < 4; ++t) got.push_back(std::async(std::launch::async, [&] { return gpu.Post(body); }));
    for (auto& f : got) {
      const json g_answer = f.get();
      ASSERT_EQ(g_answer.size(), want.size());
      int differing = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        const double wd = want[i]["distance_to_cluster"], gd = g_answer[i]["distance_to_cluster"];
        EXPECT_NEAR(gd, wd, 1e-4 * (1 + wd)) << "row " << i;
        if (want[i]["closest_cluster"] != g_answer[i]["closest_cluster"])
          ++differing;  // float32 near-ties only
      }
      EXPECT_LE(differing, 2) << "closest clusters differ beyond near-ties";
    }
  }
}

}  // namespace
}  // namespace mlforge::container
