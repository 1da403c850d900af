// mlforge._core: the nanobind module behind the Python package (DESIGN.md "Python"). Everything
// here is glue over the libraries the CLI links: hyperparameter tables, training on in-memory
// arrays or files (io::ChannelSource / io::MemoryMatrix -> the algorithm's Train), model artifacts
// as arrays, prediction through algos::Predictor, and recordIO writing/reading.
//
// Threads and the GIL: training and prediction run with the GIL released. Training runs on a
// worker thread while the calling (main) thread polls PyErr_CheckSignals every 100 ms; Ctrl-C sets
// the run's StopToken, the algorithm stops within a mini-batch (StopRequested) and
// KeyboardInterrupt is raised with no model written.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "algos/algorithms.h"
#include "algos/factorization_machines/model.h"
#include "algos/kmeans/model.h"
#include "algos/linear_learner/model.h"
#include "algos/pca/model.h"
#include "comm/communicator.h"
#include "container/inference_io.h"
#include "core/error.h"
#include "core/log.h"
#include "core/resources.h"
#include "io/archive.h"
#include "io/batch_stream.h"
#include "io/format.h"
#include "io/row_writer.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace mlforge::python {
namespace {

using FloatMatrix = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using FloatVector = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Int32Vector = nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Int64Vector = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// A numpy array that owns `v` (moved onto the heap; freed by the capsule).
template <typename T>
nb::object ToNumpy(std::vector<T>&& v, std::vector<size_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::cast(nb::ndarray<nb::numpy, T>(heap->data(), shape.size(), shape.data(), owner));
}

// ---------------------------------------------------------------- hyperparameter tables
nb::list Hyperparameters(const std::string& algorithm) {
  const algos::Algorithm& algo = algos::FindAlgorithm(algos::BuiltinAlgorithms(), algorithm);
  nb::list out;
  const HpTable table = algo.hyperparameters();
  for (const HpSpec& s : table.specs()) {
    nb::dict d;
    d["name"] = nb::str(s.name.c_str());
    d["type"] = nb::str(HpTypeName(s.type));
    d["default"] = s.has_default ? nb::object(nb::str(s.default_value.c_str())) : nb::none();
    d["required"] = nb::bool_(s.required);
    d["allow_auto"] = nb::bool_(s.allow_auto);
    d["min"] = s.min ? nb::object(nb::float_(*s.min)) : nb::none();
    d["max"] = s.max ? nb::object(nb::float_(*s.max)) : nb::none();
    d["min_exclusive"] = nb::bool_(s.min_exclusive);
    d["max_exclusive"] = nb::bool_(s.max_exclusive);
    nb::list choices;
    for (const auto& c : s.choices) choices.append(nb::str(c.c_str()));
    d["choices"] = choices;
    d["doc"] = nb::str(s.doc.c_str());
    d["valid"] = nb::str(s.Describe().c_str());
    d["range"] = nb::str(s.RangeText().c_str());
    out.append(d);
  }
  return out;
}

// Parses and validates `given` with the algorithm's table; the resolved configuration as JSON.
std::string ValidateHyperparameters(const std::string& algorithm,
                                    const std::map<std::string, std::string>& given) {
  const algos::Algorithm& algo = algos::FindAlgorithm(algos::BuiltinAlgorithms(), algorithm);
  return algo.hyperparameters().Parse(given).ToJson();
}

// ---------------------------------------------------------------- channels
// One training channel: arrays in memory (viewed, never copied whole) or files read by the
// streaming reader. Holds references to the arrays for as long as it lives. The arrays must have
// the exact dtype and layout (casts without conversion: a converted temporary would dangle).
struct Channel {
  std::shared_ptr<io::MemoryMatrix> memory;
  std::vector<std::string> paths;
  std::string content_type;
  std::vector<nb::object> keep;  // the arrays `memory` points into
};

// Sample weights: float32 (rows,) viewed like y; each finite and >= 0 (the reader checks, naming
// the row).
void AttachWeights(Channel& c, nb::object w_obj) {
  if (w_obj.is_none()) return;
  FloatVector w = nb::cast<FloatVector>(w_obj, false);
  MLF_EXPECTS(static_cast<int64_t>(w.shape(0)) == c.memory->rows, "sample_weight has {} entries but X has {} rows",
              w.shape(0), c.memory->rows);
  c.memory->weights = w.data();
  c.keep.push_back(w_obj);
}

Channel DenseChannel(nb::object x_obj, nb::object y_obj, nb::object w_obj) {
  FloatMatrix x = nb::cast<FloatMatrix>(x_obj, false);
  Channel c;
  c.memory = std::make_shared<io::MemoryMatrix>();
  c.memory->layout = Layout::kDense;
  c.memory->rows = static_cast<int64_t>(x.shape(0));
  c.memory->cols = static_cast<int64_t>(x.shape(1));
  c.memory->values = x.data();
  c.keep.push_back(x_obj);
  if (!y_obj.is_none()) {
    FloatVector y = nb::cast<FloatVector>(y_obj, false);
    MLF_EXPECTS(static_cast<int64_t>(y.shape(0)) == c.memory->rows, "y has {} entries but X has {} rows",
                y.shape(0), c.memory->rows);
    c.memory->labels = y.data();
    c.keep.push_back(y_obj);
  }
  AttachWeights(c, w_obj);
  return c;
}

Channel CsrChannel(nb::object data_obj, nb::object indices_obj, nb::object indptr_obj, int64_t cols,
                   nb::object y_obj, nb::object w_obj) {
  FloatVector data = nb::cast<FloatVector>(data_obj, false);
  Int32Vector indices = nb::cast<Int32Vector>(indices_obj, false);
  Channel c;
  c.memory = std::make_shared<io::MemoryMatrix>();
  io::MemoryMatrix& m = *c.memory;
  m.layout = Layout::kCsr;
  m.cols = cols;
  m.values = data.data();
  m.indices = indices.data();
  int64_t last = 0;
  if (Int64Vector p64; nb::try_cast(indptr_obj, p64, /*convert=*/false)) {
    MLF_EXPECTS(p64.shape(0) >= 1, "indptr is empty");
    m.rows = static_cast<int64_t>(p64.shape(0)) - 1;
    m.indptr64 = p64.data();
    last = m.indptr64[m.rows];
  } else {
    Int32Vector p32 = nb::cast<Int32Vector>(indptr_obj, false);
    MLF_EXPECTS(p32.shape(0) >= 1, "indptr is empty");
    m.rows = static_cast<int64_t>(p32.shape(0)) - 1;
    m.indptr32 = p32.data();
    last = m.indptr32[m.rows];
  }
  MLF_EXPECTS(m.indptr(0) == 0 && last <= static_cast<int64_t>(data.shape(0)) &&
                  last <= static_cast<int64_t>(indices.shape(0)),
              "CSR arrays disagree: indptr runs from {} to {} over {} values and {} indices", m.indptr(0),
              last, data.shape(0), indices.shape(0));
  c.keep = {data_obj, indices_obj, indptr_obj};
  if (!y_obj.is_none()) {
    FloatVector y = nb::cast<FloatVector>(y_obj, false);
    MLF_EXPECTS(static_cast<int64_t>(y.shape(0)) == m.rows, "y has {} entries but X has {} rows", y.shape(0),
                m.rows);
    m.labels = y.data();
    c.keep.push_back(y_obj);
  }
  AttachWeights(c, w_obj);
  return c;
}

Channel FileChannel(std::vector<std::string> paths, std::string content_type) {
  Channel c;
  c.paths = std::move(paths);
  c.content_type = std::move(content_type);
  return c;
}

// The feature width of a file channel: its first rows' (read through the streaming reader; the
// libsvm width is the channel's largest index).
int64_t PeekWidth(const Channel& ch) {
  MLF_EXPECTS(!ch.memory, "peek_width takes a file channel");
  io::ChannelSource src;
  src.paths = ch.paths;
  if (!ch.content_type.empty()) {
    int label_size = -1;
    src.format = io::FormatFromContentType(ch.content_type, &label_size);
    src.label_size = label_size;
  }
  nb::gil_scoped_release release;
  io::StreamOptions so;
  so.batch_size = 16;
  so.threads = 1;
  so.prefetch = 1;
  so.allow_non_finite = true;
  io::BatchStream stream(src, so);
  HostBatch b;
  MLF_EXPECTS(stream.Next(&b), "{}: no rows", ch.paths.empty() ? "" : ch.paths.front());
  return stream.cols();
}

// ---------------------------------------------------------------- training
// Runs `body` on a worker thread with the GIL released, polling for Ctrl-C on the calling thread.
void RunInterruptible(const std::function<void()>& body, std::atomic<bool>& stop) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
  bool interrupted = false;
  {
    nb::gil_scoped_release release;
    std::thread worker([&] {
      try {
        body();
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lk(mu);
      done = true;
      cv.notify_all();
    });
    std::unique_lock<std::mutex> lk(mu);
    while (!done) {
      cv.wait_for(lk, std::chrono::milliseconds(100));
      if (done || interrupted) continue;
      lk.unlock();
      {
        nb::gil_scoped_acquire acquire;
        if (PyErr_CheckSignals() != 0) {
          PyErr_Clear();  // raised again below, after the worker has stopped
          interrupted = true;
          stop = true;
        }
      }
      lk.lock();
    }
    lk.unlock();
    worker.join();
  }
  if (interrupted) {
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw nb::python_error();
  }
  if (error) std::rethrow_exception(error);
}

DeviceRequest ParseDevice(const std::string& device) { return ParseDeviceRequest(device, "device"); }

// Trains `algorithm` with the string hyperparameters `hps` (SageMaker's form) on `channels` and
// writes the model files into `model_dir` (which must exist). UserError -> ValueError.
void Train(const std::string& algorithm, const std::map<std::string, std::string>& hps,
           const std::map<std::string, Channel*>& channels, const std::string& model_dir,
           const std::string& device, int threads, uint64_t seed) {
  const algos::Algorithm& algo = algos::FindAlgorithm(algos::BuiltinAlgorithms(), algorithm);
  HpValues hp = algo.hyperparameters().Parse(hps);
  std::map<std::string, algos::TrainChannel> train_channels;
  for (const auto& [name, ch] : channels) {
    algos::TrainChannel tc;
    tc.name = name;
    if (ch->memory) {
      tc.source.memory = ch->memory;
      tc.source.format = io::DataFormat::kRecordIO;  // in-memory rows are never CSV
      ch->memory->name = name == "train" ? "X" : name + " X";
    } else {
      tc.source.paths = ch->paths;
      if (!ch->content_type.empty()) {
        tc.config.content_type = ch->content_type;
        int label_size = -1;
        tc.source.format = io::FormatFromContentType(ch->content_type, &label_size);
        tc.source.label_size = label_size;
      }
      for (const auto& p : ch->paths) {
        std::error_code ec;
        MLF_EXPECTS(std::filesystem::exists(p, ec), "channel '{}': {} does not exist", name, p);
      }
    }
    train_channels[name] = std::move(tc);
  }
  for (const auto& name : algo.required_channels) {
    MLF_EXPECTS(train_channels.count(name), "algorithm '{}' requires the '{}' channel", algo.name, name);
  }
  const DeviceRequest dev = ParseDevice(device);
  std::atomic<bool> stop{false};
  RunInterruptible(
      [&] {
        Resources res(dev, threads, seed, comm::MakeSingleProcess(), StopToken(&stop), false);
        algos::TrainContext ctx{res, hp, train_channels, model_dir};
        algo.train(ctx);
        res.stop().ThrowIfStopped();
      },
      stop);
}

// ---------------------------------------------------------------- models
nb::dict MetricsDict(const std::map<std::string, double>& metrics) {
  nb::dict d;
  for (const auto& [k, v] : metrics) d[k.c_str()] = v;
  return d;
}

// The arrays of a model artifact (directory, model.tar.gz or bare model_algo-1).
nb::dict LoadModel(const std::string& path) {
  const io::ModelSource source = io::ModelSource::Open(path);
  std::string algo = container::DetectAlgorithm(source);
  MLF_EXPECTS(!algo.empty(), "{}: cannot tell which algorithm this model belongs to", path);
  for (char& c : algo) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  nb::dict d;
  d["algorithm"] = algo;
  if (algo == "kmeans") {
    algos::kmeans::Model m = algos::kmeans::LoadModel(source);
    d["cluster_centers"] = ToNumpy(std::move(m.centers), {size_t(m.k), size_t(m.dim)});
    d["hyperparameters"] = m.hyperparameters_json;
    d["train_msd"] = m.train_msd;
    d["metrics"] = MetricsDict(m.metrics);
  } else if (algo == "linear-learner") {
    algos::linear_learner::Model m = algos::linear_learner::LoadModel(source);
    d["predictor_type"] = algos::linear_learner::PredictorTypeName(m.predictor_type);
    d["loss"] = m.loss_type;
    d["weights"] = ToNumpy(std::move(m.weights), {size_t(m.dim), size_t(m.outputs)});
    d["bias"] = ToNumpy(std::move(m.bias), {size_t(m.outputs)});
    d["threshold"] = m.threshold;
    d["hyperparameters"] = m.hyperparameters_json;
    d["metrics"] = MetricsDict(m.metrics);
  } else if (algo == "pca") {
    algos::pca::Model m = algos::pca::LoadModel(source);
    d["s"] = ToNumpy(std::move(m.s), {size_t(m.components)});
    d["v"] = ToNumpy(std::move(m.v), {size_t(m.dim), size_t(m.components)});
    d["mean"] = m.mean.empty() ? nb::none() : ToNumpy(std::move(m.mean), {size_t(m.dim)});
    d["mode"] = m.mode;
    d["explained_variance"] =
        ToNumpy(std::vector<double>(m.explained_variance), {m.explained_variance.size()});
    d["explained_variance_ratio"] =
        ToNumpy(std::vector<double>(m.explained_variance_ratio), {m.explained_variance_ratio.size()});
    d["rows"] = m.rows;
    d["hyperparameters"] = m.hyperparameters_json;
    d["metrics"] = MetricsDict(m.metrics);
  } else if (algo == "factorization-machines") {
    algos::factorization_machines::Model m = algos::factorization_machines::LoadModel(source);
    d["predictor_type"] = m.predictor_type == algos::factorization_machines::PredictorType::kRegressor
                              ? "regressor"
                              : "binary_classifier";
    const size_t dim = size_t(m.params.d), k = size_t(m.params.k);
    d["w0"] = m.params.w0;
    d["w"] = ToNumpy(std::move(m.params.w), {dim});
    d["v"] = ToNumpy(std::move(m.params.v), {dim, k});
    d["hyperparameters"] = m.hyperparameters_json;
    d["metrics"] = MetricsDict(m.metrics);
  } else {
    MLF_FAIL("{}: no Python model reader for algorithm '{}'", path, algo);
  }
  return d;
}

// A loaded model for prediction (ours or SageMaker's artifact).
class PyPredictor {
 public:
  explicit PyPredictor(const std::string& path, const std::string& algorithm) {
    const io::ModelSource source = io::ModelSource::Open(path);
    predictor_ = container::LoadPredictor(source, algorithm);
  }
  std::string algorithm() const { return predictor_->algorithm(); }
  int64_t feature_dim() const { return predictor_->feature_dim(); }
  std::string describe() const { return predictor_->Describe(); }

  // {column name: (rows, width) float32 array}. Rows are copied into one HostBatch per
  // `batch_rows` (the Predictor interface takes owning batches), outputs written straight out.
  nb::dict PredictDense(FloatMatrix x, const std::string& device, int threads,
                        const std::string& attributes) {
    const int64_t rows = static_cast<int64_t>(x.shape(0)), cols = static_cast<int64_t>(x.shape(1));
    MLF_EXPECTS(cols == predictor_->feature_dim(), "X has {} features, but the model takes {}", cols,
                predictor_->feature_dim());
    const float* base = x.data();
    return Run(rows, device, threads, attributes, [&](int64_t r0, int64_t r1, HostBatch* b) {
      b->layout = Layout::kDense;
      b->cols = cols;
      b->values.assign(base + r0 * cols, base + r1 * cols);
    });
  }

  nb::dict PredictCsr(FloatVector data, Int32Vector indices, Int64Vector indptr, int64_t cols,
                      const std::string& device, int threads, const std::string& attributes) {
    MLF_EXPECTS(cols == predictor_->feature_dim(), "X has {} features, but the model takes {}", cols,
                predictor_->feature_dim());
    MLF_EXPECTS(indptr.shape(0) >= 1, "indptr is empty");
    const int64_t rows = static_cast<int64_t>(indptr.shape(0)) - 1;
    const int64_t* ip = indptr.data();
    const int32_t* ix = indices.data();
    const float* v = data.data();
    return Run(rows, device, threads, attributes, [&](int64_t r0, int64_t r1, HostBatch* b) {
      b->layout = Layout::kCsr;
      b->cols = cols;
      const int64_t from = ip[r0], to = ip[r1];
      b->indptr.resize(static_cast<size_t>(r1 - r0 + 1));
      for (int64_t r = r0; r <= r1; ++r) b->indptr[static_cast<size_t>(r - r0)] = ip[r] - from;
      b->values.assign(v + from, v + to);
      b->indices.resize(static_cast<size_t>(to - from));
      for (int64_t k = from; k < to; ++k) {
        MLF_EXPECTS(ix[k] >= 0 && ix[k] < cols, "column index {} is outside [0, {})", ix[k], cols);
        b->indices[static_cast<size_t>(k - from)] = static_cast<uint32_t>(ix[k]);
      }
    });
  }

 private:
  template <typename Fill>
  nb::dict Run(int64_t rows, const std::string& device, int threads, const std::string& attributes,
               Fill fill) {
    const DeviceRequest dev = ParseDevice(device);
    std::vector<algos::OutputColumn> cols;
    {
      nb::gil_scoped_release release;
      Resources res(dev, threads, 0, comm::MakeSingleProcess(), StopToken::Never(), false);
      constexpr int64_t kBatch = 65536;
      HostBatch batch;
      for (int64_t r0 = 0; r0 < rows; r0 += kBatch) {
        const int64_t r1 = std::min(rows, r0 + kBatch);
        batch.Clear();
        fill(r0, r1, &batch);
        batch.rows = r1 - r0;
        algos::PredictionTable t = predictor_->PredictWithAttributes(batch, res, attributes);
        if (cols.empty()) {
          cols = std::move(t.columns);
          for (auto& c : cols) c.values.reserve(static_cast<size_t>(rows * c.width));
        } else {
          for (size_t i = 0; i < cols.size(); ++i) {
            cols[i].values.insert(cols[i].values.end(), t.columns[i].values.begin(),
                                  t.columns[i].values.end());
          }
        }
      }
    }
    nb::dict out;
    for (auto& c : cols) {
      const size_t width = static_cast<size_t>(c.width);
      const size_t n = width == 0 ? 0 : c.values.size() / width;
      out[c.name.c_str()] = ToNumpy(std::move(c.values), {n, width});
    }
    return out;
  }

  std::unique_ptr<algos::Predictor> predictor_;
};

// ---------------------------------------------------------------- recordIO files
// Writes rows (dense or CSR) with optional labels to `path` in the format its extension or
// `format` names (recordio, csv, libsvm), through the same writer as `mlforge data convert`.
void WriteRows(const std::string& path, const std::string& format, nb::object x_obj, nb::object y_obj,
               nb::object indices_obj, nb::object indptr_obj, int64_t cols) {
  io::WriterOptions wo;
  wo.format = format.empty() ? io::DataFormat::kAuto : io::ParseFormat(format);
  std::unique_ptr<io::RowWriter> w = io::MakeRowWriter(path, wo);
  const bool csr = !indptr_obj.is_none();
  const float* labels = nullptr;
  FloatVector y;
  if (!y_obj.is_none()) {
    y = nb::cast<FloatVector>(y_obj);
    labels = y.data();
  }
  constexpr int64_t kBatch = 4096;
  HostBatch b;
  if (!csr) {
    FloatMatrix x = nb::cast<FloatMatrix>(x_obj);
    const int64_t rows = static_cast<int64_t>(x.shape(0)), c = static_cast<int64_t>(x.shape(1));
    nb::gil_scoped_release release;
    for (int64_t r0 = 0; r0 < rows; r0 += kBatch) {
      const int64_t r1 = std::min(rows, r0 + kBatch);
      b.Clear();
      b.layout = Layout::kDense;
      b.rows = r1 - r0;
      b.cols = c;
      b.values.assign(x.data() + r0 * c, x.data() + r1 * c);
      if (labels) b.labels.assign(labels + r0, labels + r1);
      w->Write(b);
    }
    w->Close();
    return;
  }
  FloatVector data = nb::cast<FloatVector>(x_obj);
  Int32Vector indices = nb::cast<Int32Vector>(indices_obj);
  Int64Vector indptr = nb::cast<Int64Vector>(indptr_obj);
  const int64_t rows = static_cast<int64_t>(indptr.shape(0)) - 1;
  nb::gil_scoped_release release;
  for (int64_t r0 = 0; r0 < rows; r0 += kBatch) {
    const int64_t r1 = std::min(rows, r0 + kBatch);
    b.Clear();
    b.layout = Layout::kCsr;
    b.rows = r1 - r0;
    b.cols = cols;
    const int64_t from = indptr.data()[r0], to = indptr.data()[r1];
    for (int64_t r = r0; r <= r1; ++r) b.indptr.push_back(indptr.data()[r] - from);
    b.values.assign(data.data() + from, data.data() + to);
    for (int64_t k = from; k < to; ++k) {
      MLF_EXPECTS(indices.data()[k] >= 0 && indices.data()[k] < cols, "column index {} is outside [0, {})",
                  indices.data()[k], cols);
      b.indices.push_back(static_cast<uint32_t>(indices.data()[k]));
    }
    if (labels) b.labels.assign(labels + r0, labels + r1);
    w->Write(b);
  }
  w->Close();
}

// Reads a data file (recordIO, CSV, libsvm) through the streaming reader into arrays:
// {"layout": "dense"|"csr", "values", "indices", "indptr", "cols", "labels" (or None)}.
nb::dict ReadRows(const std::vector<std::string>& paths, const std::string& content_type) {
  io::ChannelSource src;
  src.paths = paths;
  if (!content_type.empty()) {
    int label_size = -1;
    src.format = io::FormatFromContentType(content_type, &label_size);
    src.label_size = label_size;
  }
  std::vector<float> values, labels;
  std::vector<int64_t> indptr{0};
  std::vector<int32_t> indices;
  int64_t cols = -1, rows = 0;
  bool sparse = false, labeled = false;
  {
    nb::gil_scoped_release release;
    io::StreamOptions so;
    so.batch_size = 65536;
    so.threads = 2;
    so.allow_non_finite = true;
    io::BatchStream stream(src, so);
    HostBatch b;
    std::vector<HostBatch> batches;
    while (stream.Next(&b)) {
      sparse |= b.layout == Layout::kCsr;
      batches.push_back(std::move(b));
      b = HostBatch{};
    }
    cols = stream.cols();
    for (HostBatch& hb : batches) {
      labeled |= hb.has_labels();
      if (!sparse) {
        values.insert(values.end(), hb.values.begin(), hb.values.end());
      } else if (hb.layout == Layout::kCsr) {
        const int64_t base = indptr.back();
        for (int64_t r = 1; r <= hb.rows; ++r) indptr.push_back(base + hb.indptr[r] - hb.indptr[0]);
        values.insert(values.end(), hb.values.begin() + hb.indptr[0], hb.values.begin() + hb.indptr[hb.rows]);
        for (int64_t k = hb.indptr[0]; k < hb.indptr[hb.rows]; ++k)
          indices.push_back(static_cast<int32_t>(hb.indices[static_cast<size_t>(k)]));
      } else {
        for (int64_t r = 0; r < hb.rows; ++r) {
          for (int64_t j = 0; j < hb.cols; ++j) {
            indices.push_back(static_cast<int32_t>(j));
            values.push_back(hb.values[static_cast<size_t>(r * hb.cols + j)]);
          }
          indptr.push_back(static_cast<int64_t>(values.size()));
        }
      }
      labels.insert(labels.end(), hb.labels.begin(), hb.labels.end());
      rows += hb.rows;
    }
  }
  nb::dict d;
  d["layout"] = sparse ? "csr" : "dense";
  d["cols"] = cols < 0 ? 0 : cols;
  d["rows"] = rows;
  if (sparse) {
    const size_t nnz = values.size();
    d["values"] = ToNumpy(std::move(values), {nnz});
    d["indices"] = ToNumpy(std::move(indices), {nnz});
    d["indptr"] = ToNumpy(std::move(indptr), {size_t(rows) + 1});
  } else {
    d["values"] = ToNumpy(std::move(values), {size_t(rows), size_t(cols < 0 ? 0 : cols)});
  }
  d["labels"] = labeled ? ToNumpy(std::move(labels), {size_t(rows)}) : nb::none();
  return d;
}

}  // namespace
}  // namespace mlforge::python

NB_MODULE(_core, m) {
  using namespace mlforge;
  using namespace mlforge::python;
  m.doc() = "mlforge's C++ core: hyperparameter tables, training, models, prediction, recordIO";

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const UserError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const StopRequested& e) {
      PyErr_SetString(PyExc_KeyboardInterrupt, e.what());
    } catch (const InternalError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  m.def("algorithms", [] {
    std::vector<std::string> names;
    for (const auto& a : algos::BuiltinAlgorithms()) names.push_back(a.name);
    return names;
  });
  m.def("hyperparameters", &Hyperparameters, "algorithm"_a,
        "The algorithm's hyperparameter table: a list of dicts (name, type, default, ranges, doc).");
  m.def("validate_hyperparameters", &ValidateHyperparameters, "algorithm"_a, "given"_a,
        "Parses SageMaker-style string hyperparameters; ValueError naming every bad one. Returns the "
        "configuration as JSON.");
  m.def(
      "set_log_level", [](const std::string& level) { log::Init(level); }, "level"_a);
  m.def("build_info", [] {
    BuildInfo b = GetBuildInfo();
    GpuReport g = DetectGpus();
    nb::dict d;
    d["version"] = b.version;
    d["cuda"] = b.cuda;
    d["cuda_archs"] = b.cuda_archs;
    d["compiler"] = b.compiler;
    d["gpu_available"] = g.available;
    d["gpu_reason"] = g.reason;
    return d;
  });

  nb::class_<Channel>(m, "Channel")
      .def_static(
          "dense", &DenseChannel, "X"_a, "y"_a.none(), "sample_weight"_a.none() = nb::none(),
          "Rows of a C-contiguous float32 (n, d) array (viewed, not copied), labels float32 (n,) or None, "
          "row weights float32 (n,) or None.")
      .def_static(
          "csr", &CsrChannel, "data"_a, "indices"_a, "indptr"_a, "n_features"_a, "y"_a.none(),
          "sample_weight"_a.none() = nb::none(),
          "Rows of CSR arrays (float32 data, int32 indices, int32 or int64 indptr), viewed, not copied; "
          "row weights float32 (n,) or None.")
      .def_static("files", &FileChannel, "paths"_a, "content_type"_a = "",
                  "Files or directories streamed by the C++ reader (recordIO, CSV, libsvm).");

  m.def("peek_width", &PeekWidth, "channel"_a, "Feature width of a file channel (its first rows).");
  m.def("train", &Train, "algorithm"_a, "hyperparameters"_a, "channels"_a, "model_dir"_a, "device"_a = "auto",
        "threads"_a = 0, "seed"_a = 0,
        "Trains with the GIL released; Ctrl-C stops within a mini-batch (KeyboardInterrupt). "
        "Writes the model files into model_dir.");
  m.def("load_model", &LoadModel, "path"_a, "A model artifact's arrays as a dict.");
  m.def("detect_algorithm",
        [](const std::string& path) { return container::DetectAlgorithm(io::ModelSource::Open(path)); });

  nb::class_<PyPredictor>(m, "Predictor")
      .def(nb::init<const std::string&, const std::string&>(), "path"_a, "algorithm"_a = "")
      .def_prop_ro("algorithm", &PyPredictor::algorithm)
      .def_prop_ro("feature_dim", &PyPredictor::feature_dim)
      .def("describe", &PyPredictor::describe)
      .def("predict_dense", &PyPredictor::PredictDense, "X"_a, "device"_a = "cpu", "threads"_a = 0,
           "attributes"_a = "")
      .def("predict_csr", &PyPredictor::PredictCsr, "data"_a, "indices"_a, "indptr"_a, "n_features"_a,
           "device"_a = "cpu", "threads"_a = 0, "attributes"_a = "");

  m.def("write_rows", &WriteRows, "path"_a, "format"_a, "X"_a, "y"_a.none(), "indices"_a.none(),
        "indptr"_a.none(), "n_features"_a);
  m.def("read_rows", &ReadRows, "paths"_a, "content_type"_a = "");
}
