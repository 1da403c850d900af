#include "tests/testutil.h"

#include "comm/tcp_store.h"

#include <unistd.h>

#include <htslib/hts.h>
#include <htslib/vcf.h>
#include <sys/wait.h>

#include <cstdlib>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "algos/algorithms.h"
#include "comm/local_group.h"
#include "core/error.h"
#include "core/resources.h"

namespace fs = std::filesystem;

namespace mlforge::test {

container::TrainOptions TrainOptionsForTests(DeviceRequest device, int threads,
                                             const std::string& log_level) {
  static std::atomic<bool> never{false};
  container::TrainOptions o;
  o.stop = StopToken(&never);
  o.device = device;
  o.threads = threads;
  o.log_level = log_level;
  return o;
}

std::string SharedData(const std::string& rel) {
  std::error_code ec;
  fs::path root = fs::weakly_canonical(fs::path(MLFORGE_SHARED_DATA), ec);
  if (ec || !fs::is_directory(root)) return "";
  return rel.empty() ? root.string() : (root / rel).string();
}

TempDir::TempDir() {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path p = fs::temp_directory_path() / ("mlforge-test-" + std::to_string(rd()));
    if (fs::create_directory(p)) {
      path_ = p.string();
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void WriteFile(const std::string& path, const std::string& content) {
  fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  std::ofstream f(path, std::ios::binary);
  f.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void RecordIOFrame(uint32_t cflag, std::string_view data, std::string* out) {
  const uint32_t words[2] = {0xCED7230Au, cflag << 29 | static_cast<uint32_t>(data.size())};
  for (uint32_t w : words) {
    for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((w >> (8 * i)) & 0xff));
  }
  out->append(data.data(), data.size());
  out->append((4 - data.size() % 4) % 4, '\0');
}

std::vector<uint32_t> DmlcFrame(std::string_view data, std::string* out) {
  static const std::string kMagic("\x0a\x23\xd7\xce", 4);
  std::vector<uint32_t> flags;
  size_t begin = 0;
  for (size_t i = 0; i + 4 <= data.size(); i += 4) {
    if (data.compare(i, 4, kMagic) == 0) {
      flags.push_back(flags.empty() ? 1 : 2);
      RecordIOFrame(flags.back(), data.substr(begin, i - begin), out);
      begin = i + 4;
    }
  }
  flags.push_back(flags.empty() ? 0 : 3);
  RecordIOFrame(flags.back(), data.substr(begin), out);
  return flags;
}

LocalTrainRun TrainLocalForTests(container::LocalTrainArgs args, int threads) {
  args.failure_file = args.model_dir + ".failure";
  LocalTrainRun run;
  std::error_code ec;
  fs::remove(args.failure_file, ec);
  run.rc = container::TrainLocal(args, algos::BuiltinAlgorithms(),
                                 TrainOptionsForTests(DeviceRequest::kCpu, threads));
  if (fs::exists(args.failure_file)) run.failure = ReadFile(args.failure_file);
  return run;
}

std::vector<int> TrainRanksForTests(int world, const container::LocalTrainArgs& base,
                                    const std::vector<std::string>& train_paths,
                                    const std::string& model_root, DeviceRequest device) {
  return TrainRanksForTests(world, base, train_paths, model_root,
                            std::vector<DeviceRequest>(static_cast<size_t>(world), device));
}

std::vector<int> TrainRanksForTests(int world, const container::LocalTrainArgs& base,
                                    const std::vector<std::string>& train_paths, const std::string& model_root,
                                    const std::vector<DeviceRequest>& devices) {
  MLF_ASSERT(devices.size() == static_cast<size_t>(world));
  auto group = comm::MakeLocalGroup(world, std::chrono::seconds(60));
  std::vector<int> rcs(static_cast<size_t>(world), -1);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      container::LocalTrainArgs args = base;
      args.channels["train"] = {train_paths.size() == 1 ? train_paths[0]
                                                        : train_paths[static_cast<size_t>(r)]};
      args.model_dir = model_root + "/rank" + std::to_string(r);
      args.resources.hosts.clear();
      for (int h = 0; h < world; ++h) args.resources.hosts.push_back("algo-" + std::to_string(h + 1));
      args.resources.current_host = "algo-" + std::to_string(r + 1);
      container::TrainOptions o = TrainOptionsForTests(devices[static_cast<size_t>(r)], 1);
      o.make_comm = [&group, r](const container::ResourceConfig&) {
        return std::move(group[static_cast<size_t>(r)]);
      };
      rcs[static_cast<size_t>(r)] = container::TrainLocal(args, algos::BuiltinAlgorithms(), o);
    });
  }
  for (auto& t : threads) t.join();
  return rcs;
}

bool GpuAvailable(std::string* reason) {
  GpuReport r = DetectGpus();
  if (!r.available) *reason = r.reason;
  return r.available;
}

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

int FreeTcpPort() { return comm::FreeLoopbackPort(); }

CliResult RunCli(const TempDir& dir, const std::vector<std::string>& args) {
  std::string cmd = "cd " + ShellQuote(dir.path()) + " && " + ShellQuote(kMlforgeBinary);
  for (const auto& a : args) cmd += " " + ShellQuote(a);
  cmd += " </dev/null >" + ShellQuote(dir / ".stdout") + " 2>" + ShellQuote(dir / ".stderr");
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(dir / ".stdout");
  r.err = ReadFile(dir / ".stderr");
  return r;
}

void WriteBcfFromVcf(const std::string& vcf_path, const std::string& bcf_path) {
  htsFile* in = hts_open(vcf_path.c_str(), "r");
  ASSERT_NE(in, nullptr) << vcf_path;
  bcf_hdr_t* hdr = bcf_hdr_read(in);
  htsFile* out = hts_open(bcf_path.c_str(), "wb");
  ASSERT_NE(out, nullptr) << bcf_path;
  EXPECT_EQ(bcf_hdr_write(out, hdr), 0);
  bcf1_t* rec = bcf_init();
  while (bcf_read(in, hdr, rec) == 0) EXPECT_EQ(bcf_write(out, hdr, rec), 0);
  bcf_destroy(rec);
  bcf_hdr_destroy(hdr);
  hts_close(out);
  hts_close(in);
}

}  // namespace mlforge::test
