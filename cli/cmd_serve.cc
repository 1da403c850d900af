// `mlforge serve --model PATH` (local serving) and the server behind `mlforge container serve`
// (cmd_container.cc): the SageMaker inference contract of container/server.h.
#include <malloc.h>

#include <memory>
#include <string>

#include "cli/cli.h"
#include "container/config.h"
#include "container/server.h"
#include "core/error.h"
#include "core/resources.h"
#include "core/stop.h"

namespace mlforge::cli {

int RunServer(container::ServeOptions options) {
  // A process-wide allocator setting, so it belongs to the serving process, not the server class:
  // request and response buffers of a few hundred kB to a few MB come and go with every request;
  // keep them in the heap instead of mmap/munmap (and trimming) per request, which otherwise
  // spends a fifth of a busy server's time in page faults. Memory stays at the working set's
  // high-water mark (a few payloads per worker).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  options.stop = StopToken::FromSignals();
  container::Server server(std::move(options));
  return server.Run();
}

namespace {

struct ServeArgs {
  std::string model, algorithm, host = "0.0.0.0", device = "auto";
  int port = -1;  // -1: $SAGEMAKER_BIND_TO_PORT, else 8080
  int workers = 0;
  int max_payload_mb = 0;  // 0: $SAGEMAKER_MAX_PAYLOAD_IN_MB, else 6
  container::HttpLimits http;  // the HTTP layer's connection limits and deadlines
};

int RunServe(const ServeArgs& args, const GlobalOptions& global) {
  container::ServeOptions o;
  o.model_path = args.model;
  o.algorithm = args.algorithm;
  o.host = args.host;
  o.device = ParseDeviceRequest(args.device);
  o.workers = global.threads > 0 ? global.threads : 0;
  container::ApplyServeEnvironment(&o);  // the command line wins over the environment
  if (args.port >= 0) o.port = args.port;
  if (args.workers > 0) o.workers = args.workers;
  if (args.max_payload_mb > 0) o.max_payload_bytes = static_cast<size_t>(args.max_payload_mb) << 20;
  o.http = args.http;
  return RunServer(std::move(o));
}

}  // namespace

void RegisterServe(CLI::App& app, const GlobalOptions& global, Registry& registry) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* serve =
      app.add_subcommand("serve",
                         "Serve a model over HTTP as a SageMaker endpoint: GET /ping, POST /invocations, GET "
                         "/execution-parameters");
  serve->add_option("--model", a->model, "A model directory, a model.tar.gz or a bare model_algo-1")
      ->required();
  serve
      ->add_option("--port", a->port,
                   "TCP port; 0 picks a free one (default: $SAGEMAKER_BIND_TO_PORT, else 8080)")
      ->check(CLI::Range(0, 65535));
  serve->add_option("--host", a->host, "Address to bind")->capture_default_str();
  serve->add_option("--algorithm", a->algorithm, "Override the detected algorithm (kmeans, linear-learner)");
  serve
      ->add_option(
          "--workers", a->workers,
          "Concurrent predictions (default: $SAGEMAKER_MAX_CONCURRENT_TRANSFORMS, else --threads, else "
          "the hardware threads)")
      ->check(CLI::Range(1, 1024));
  serve
      ->add_option(
          "--max-payload-mb", a->max_payload_mb,
          "Largest request body in MB; larger ones get 413 (default: $SAGEMAKER_MAX_PAYLOAD_IN_MB, else 6)")
      ->check(CLI::Range(1, 100));
  serve
      ->add_option("--max-connections", a->http.max_connections,
                   "Open connections at most; past it a new one gets 503 (also capped by the open-file limit)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  serve
      ->add_option("--header-timeout", a->http.header_timeout_s,
                   "Seconds a request header may take to arrive; a slower client is disconnected")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 3600.0));
  serve
      ->add_option("--body-timeout", a->http.body_timeout_s,
                   "Seconds a request body may take to arrive after its header; a slower client is disconnected")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 3600.0));
  serve
      ->add_option("--keep-alive-timeout", a->http.keep_alive_timeout_s,
                   "Seconds an open connection may stay silent between requests")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 3600.0));
  serve->add_option("--device", a->device, "Where predictions run: auto, cpu or gpu")
      ->check(CLI::IsMember({"auto", "cpu", "gpu"}, CLI::ignore_case))
      ->capture_default_str();
  registry.Add(serve, [a, &global] { return RunServe(*a, global); });
}

}  // namespace mlforge::cli
