#include "algos/genotype_pca/genotype_pca.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <Eigen/Dense>
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "core/build_config.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/resources.h"
#include "core/spill_file.h"
#include "io/vcf_scanner.h"
#include "kernels/grm_accumulate.h"
#include "kernels/omp_threads.h"
#include "kernels/sym_eigen.h"

#include "kernels/openblas.h"

namespace mlforge::algos::genotype_pca {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

using kernels::GenotypeBlockView;
using kernels::kGrmBlockVariants;
using kernels::PackedBytes;
using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMajorD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

int64_t PeakRssBytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

// ---------------------------------------------------------------------------------------------
// The 2-bit genotype store of one input file: variant-major rows of PackedBytes(n) bytes, in RAM
// while the process-wide total stays within the budget, else appended to an unlinked temp file.

class PackedStore {
 public:
  PackedStore(int64_t row_bytes, std::atomic<int64_t>* ram_used, int64_t budget, std::string temp_dir)
      : row_bytes_(row_bytes), ram_used_(ram_used), budget_(budget), temp_dir_(std::move(temp_dir)) {}
  ~PackedStore() {
    if (ram_bytes_ > 0) ram_used_->fetch_sub(ram_bytes_);
  }
  PackedStore(const PackedStore&) = delete;
  PackedStore& operator=(const PackedStore&) = delete;

  void Append(const uint8_t* row) {
    if (!spill_ && ram_used_->fetch_add(row_bytes_) + row_bytes_ > budget_) {
      ram_used_->fetch_sub(row_bytes_);
      Spill();
    }
    if (!spill_) ram_bytes_ += row_bytes_;
    data_.insert(data_.end(), row, row + row_bytes_);
    if (spill_ && static_cast<int64_t>(data_.size()) >= (int64_t{8} << 20)) FlushToFile();
    ++rows_;
  }
  void Finish() {
    if (spill_) {
      FlushToFile();
      std::vector<uint8_t>().swap(data_);
    }
  }
  int64_t rows() const { return rows_; }
  bool spilled() const { return spill_ != nullptr; }

  // Rows [r0, r0 + count): a pointer into RAM, or `buf` filled from the spill file.
  const uint8_t* Rows(int64_t r0, int64_t count, std::vector<uint8_t>* buf) const {
    MLF_ASSERT(r0 >= 0 && r0 + count <= rows_);
    if (!spill_) return data_.data() + r0 * row_bytes_;
    buf->resize(static_cast<size_t>(count * row_bytes_));
    spill_->Read(buf->data(), count * row_bytes_, r0 * row_bytes_);
    return buf->data();
  }

 private:
  void Spill() {
    spill_ = std::make_unique<SpillFile>(
        temp_dir_, "the 2-bit genotype store",
        fmt::format("it exceeds the memory budget ({} bytes), so pass a writable --temp-dir or raise --memory-mb",
                    budget_));
    // What is in RAM goes to the file first; from now on data_ is a write buffer.
    ram_used_->fetch_sub(ram_bytes_);
    ram_bytes_ = 0;
    FlushToFile();
  }
  void FlushToFile() {
    spill_->Append(data_.data(), static_cast<int64_t>(data_.size()));
    data_.clear();
  }

  int64_t row_bytes_;
  std::atomic<int64_t>* ram_used_;
  int64_t budget_;
  std::string temp_dir_;
  std::vector<uint8_t> data_;
  int64_t ram_bytes_ = 0;
  int64_t rows_ = 0;
  std::unique_ptr<SpillFile> spill_;
};

// One input file, decoded.
struct Segment {
  std::unique_ptr<io::VcfFileScanner> scanner;
  std::unique_ptr<PackedStore> store;
  std::vector<float> center, scale;
  std::vector<VariantRecord> records;  // only when loadings are wanted
  io::VcfStats stats;
  int64_t monomorphic = 0;
};

// kMissingDosage (255) & 3 == 3 == kGenotypeMissingCode, and 0, 1, 2 stay themselves.
static_assert((io::kMissingDosage & 3) == kernels::kGenotypeMissingCode);
void Pack(const uint8_t* d, int64_t n, uint8_t* out) {
  const int64_t full = n / 4;
  for (int64_t i = 0; i < full; ++i) {
    const uint8_t* q = d + 4 * i;
    out[i] = static_cast<uint8_t>((q[0] & 3) | (q[1] & 3) << 2 | (q[2] & 3) << 4 | (q[3] & 3) << 6);
  }
  if (full * 4 < n) {
    unsigned b = 0xFF;  // padding = missing
    for (int64_t s = full * 4; s < n; ++s) {
      const int shift = static_cast<int>(2 * (s % 4));
      b = (b & ~(3u << shift)) | ((d[s] & 3u) << shift);
    }
    out[full] = static_cast<uint8_t>(b);
  }
}

void DecodeSegment(Segment* seg, bool keep_records) {
  io::VcfFileScanner& f = *seg->scanner;
  const int64_t n = f.samples();
  seg->stats.files = 1;
  std::vector<uint8_t> row(static_cast<size_t>(PackedBytes(n)));
  io::ScannedVariant v;
  while (f.Next(&v)) {
    io::CountFate(v, &seg->stats);
    if (v.fate != io::VariantFate::kKept) continue;
    Pack(v.dosage, n, row.data());
    seg->store->Append(row.data());
    const double p = v.af;
    seg->center.push_back(static_cast<float>(2.0 * p));
    const bool mono = p <= 0.0 || p >= 1.0;
    seg->monomorphic += mono;
    seg->scale.push_back(mono ? 0.0f : static_cast<float>(1.0 / std::sqrt(2.0 * p * (1.0 - p))));
    if (keep_records) {
      seg->records.push_back(VariantRecord{std::string(v.chrom), v.pos, std::string(v.id), std::string(v.ref),
                                           std::string(v.alt), p});
    }
  }
  seg->store->Finish();
}

// Runs fn(i) for i in [0, count) on up to `threads` threads; rethrows the exception of the
// lowest index that failed.
template <typename Fn>
void ParallelFor(int64_t count, int threads, Fn fn) {
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, count)));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(count));
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  auto worker = [&] {
    for (int64_t i; (i = next.fetch_add(1)) < count;) {
      if (failed.load()) break;
      try {
        fn(i);
      } catch (...) {
        errors[static_cast<size_t>(i)] = std::current_exception();
        failed.store(true);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < nt; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Calls fn(view) for every block of up to kGrmBlockVariants variants of every segment, in order.
template <typename Fn>
void ForEachBlock(const std::vector<Segment>& segs, int64_t n, Fn fn) {
  std::vector<uint8_t> buf;
  for (const Segment& seg : segs) {
    const int64_t rows = seg.store->rows();
    for (int64_t r0 = 0; r0 < rows; r0 += kGrmBlockVariants) {
      const int64_t cnt = std::min(kGrmBlockVariants, rows - r0);
      GenotypeBlockView b{seg.store->Rows(r0, cnt, &buf), cnt, n, seg.center.data() + r0, seg.scale.data() + r0};
      fn(b);
    }
  }
}

// Orthonormal basis of Y's columns (thin Householder QR), n x l row-major.
RowMajorD Orthonormalize(const RowMajorD& y) {
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(y);
  return qr.householderQ() * Eigen::MatrixXd::Identity(y.rows(), y.cols());
}

// C (m x n, row-major) = op(A) op(B) + beta C, all row-major float32: op(A) is m x k (A stored k x m
// when trans_a), op(B) k x n (B stored n x k when trans_b). OpenBLAS when the build has it.
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, const float* b, float beta,
          float* c, int threads) {
#if MLFORGE_HAVE_LAPACK
  openblas_set_num_threads(kernels::ResolveThreads(threads));
  cblas_sgemm(kernels::cblas::kRowMajor, trans_a ? kernels::cblas::kTrans : kernels::cblas::kNoTrans,
              trans_b ? kernels::cblas::kTrans : kernels::cblas::kNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, a, static_cast<int>(trans_a ? m : k), b, static_cast<int>(trans_b ? k : n),
              beta, c, static_cast<int>(n));
#else
  (void)threads;
  Eigen::Map<RowMajorF> C(c, m, n);
  if (beta == 0.0f) C.setZero();
  if (trans_a) {
    Eigen::Map<const RowMajorF> A(a, k, m);
    if (trans_b) {
      C.noalias() += A.transpose() * Eigen::Map<const RowMajorF>(b, n, k).transpose();
    } else {
      C.noalias() += A.transpose() * Eigen::Map<const RowMajorF>(b, k, n);
    }
  } else {
    Eigen::Map<const RowMajorF> A(a, m, k);
    if (trans_b) {
      C.noalias() += A * Eigen::Map<const RowMajorF>(b, n, k).transpose();
    } else {
      C.noalias() += A * Eigen::Map<const RowMajorF>(b, k, n);
    }
  }
#endif
}

// Eigenvector signs: the entry of largest magnitude is positive (plink2 has no documented rule;
// this one makes runs comparable and does not depend on the method).
void NormaliseSigns(std::vector<double>* vec, int64_t n, int64_t k) {
  for (int64_t c = 0; c < k; ++c) {
    double best = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double x = (*vec)[static_cast<size_t>(i * k + c)];
      if (std::abs(x) > std::abs(best)) best = x;
    }
    if (best < 0)
      for (int64_t i = 0; i < n; ++i) (*vec)[static_cast<size_t>(i * k + c)] *= -1;
  }
}

std::string Num(double x) { return fmt::format("{:.9g}", x); }

}  // namespace

void ValidateOptions(const Options& o) {
  MLF_EXPECTS(o.pcs >= 1 && o.pcs <= 10000, "--pcs = {} is out of range: expected 1 <= pcs < samples (and <= 10000)",
              o.pcs);
  MLF_EXPECTS(o.approx_iterations >= 1 && o.approx_iterations <= 1000,
              "--approx-iterations = {} is out of range: expected [1, 1000]", o.approx_iterations);
  MLF_EXPECTS(o.approx_oversample >= 0 && o.approx_oversample <= 1000,
              "--approx-oversample = {} is out of range: expected [0, 1000]", o.approx_oversample);
  MLF_EXPECTS(o.memory_budget_bytes >= 0, "--memory-mb must be >= 0");
  MLF_EXPECTS(!(o.approx && o.missing == Missing::kPairwise),
              "--missing pairwise needs the exact method (the pairwise denominators are an n x n matrix); drop "
              "--approx or use --missing mean");
  io::ValidateVcfOptions(o.vcf);
}

Missing ParseMissing(const std::string& s) {
  if (s == "mean") return Missing::kMean;
  if (s == "pairwise") return Missing::kPairwise;
  MLF_FAIL("--missing '{}' is not a choice: use mean (plink2 --pca meanimpute) or pairwise (plink2 --pca's "
           "default)",
           s);
}

Result Run(const std::vector<std::string>& vcf, const Options& opt, Resources& res) {
  ValidateOptions(opt);
  MLF_EXPECTS(!vcf.empty(), "no VCF/BCF input given; pass one or more files with --vcf");
  const auto t_all = Clock::now();
  Result out;
  out.approx = opt.approx;
  out.missing_pairwise = opt.missing == Missing::kPairwise;

  // Headers first (sequentially, cheap): the sample lists must agree before any decoding.
  auto t = Clock::now();
  const int threads = kernels::ResolveThreads(res.threads());
  const int files = static_cast<int>(vcf.size());
  const int hts_threads = files < threads ? std::max(0, threads / files - 1) : 0;
  std::vector<Segment> segs(vcf.size());
  std::atomic<int64_t> ram_used{0};
  // Only the headers here: a scanner may hold its whole inflated file, so each is opened by the
  // worker that decodes it and closed right after (memory: one file per thread).
  out.sample_ids = io::VcfSampleIds(vcf[0]);
  for (size_t i = 1; i < vcf.size(); ++i) io::CheckSameSamples(vcf[0], out.sample_ids, vcf[i], io::VcfSampleIds(vcf[i]));
  const int64_t n = static_cast<int64_t>(out.sample_ids.size());
  MLF_EXPECTS(n > 0,
              "'{}' has no sample columns (a sites-only VCF); PCA needs genotypes (FORMAT GT and one column per "
              "sample)",
              vcf[0]);
  out.samples = n;
  MLF_EXPECTS(n >= 2, "'{}' has {} sample(s); PCA needs at least 2 samples", vcf[0], n);
  MLF_EXPECTS(opt.pcs < n, "--pcs = {} but the input has {} samples: ask for fewer components than samples",
              opt.pcs, n);
  for (auto& s : segs) {
    s.store = std::make_unique<PackedStore>(PackedBytes(n), &ram_used, opt.memory_budget_bytes, opt.temp_dir);
  }
  ParallelFor(static_cast<int64_t>(segs.size()), threads, [&](int64_t i) {
    Segment& seg = segs[static_cast<size_t>(i)];
    seg.scanner = std::make_unique<io::VcfFileScanner>(vcf[static_cast<size_t>(i)], opt.vcf, hts_threads);
    // The file may have changed since its header was read.
    io::CheckSameSamples(vcf[0], out.sample_ids, vcf[static_cast<size_t>(i)], seg.scanner->sample_ids());
    DecodeSegment(&seg, opt.loadings);
    seg.scanner.reset();
  });
  int64_t m = 0;
  out.stats.samples = n;
  for (auto& s : segs) {
    out.stats.Add(s.stats);
    m += s.store->rows();
    out.monomorphic += s.monomorphic;
    out.spilled = out.spilled || s.store->spilled();
  }
  out.variants = m;
  out.store_bytes = m * PackedBytes(n);
  out.stats.spilled = out.spilled;
  out.seconds.decode = Since(t);
  MLF_EXPECTS(m > 0, "no variant of {} input file(s) passed the filters, so there is nothing to analyse:\n{}\nrelax "
              "--maf / --max-missing, or keep indels",
              vcf.size(), out.stats.Report());
  MLF_EXPECTS(m > out.monomorphic,
              "all {} kept variants are monomorphic in these {} samples (every call the same), so they carry no "
              "information; check the inputs",
              m, n);
  if (out.stats.imputed_cells > 0) {
    spdlog::info("genotype pca: {} missing calls mean-imputed (standardised to 0), never filled with 0 or REF",
                 out.stats.imputed_cells);
  }
  const int64_t k = opt.pcs;
  const double inv_m = 1.0 / static_cast<double>(m);

  // Eigenpairs: U (n x k, row-major) and lambda, descending.
  std::vector<double> lambda(static_cast<size_t>(k));
  std::vector<double> u(static_cast<size_t>(n * k));
  if (!opt.approx) {
    t = Clock::now();
    kernels::GrmAccumulator acc(res, n);
    out.device = DeviceName(acc.device());
    ForEachBlock(segs, n, [&](const GenotypeBlockView& b) {
      opt.vcf.stop.ThrowIfStopped();
      acc.Add(b);
    });
    std::vector<double> grm = acc.Result();
    if (opt.missing == Missing::kPairwise && out.stats.imputed_cells > 0) {
      // M_ij = sum_v called_iv called_jv: the same accumulation over indicator blocks (code 1 for a
      // call, 3 = "missing" for none, center 0, scale 1), exact in float32 per flush.
      kernels::GrmAccumulator counts(res, n);
      std::array<uint8_t, 256> lut{};
      for (int b = 0; b < 256; ++b) {
        unsigned o = 0;
        for (int q = 0; q < 4; ++q) o |= (((b >> (2 * q)) & 3) == 3 ? 3u : 1u) << (2 * q);
        lut[static_cast<size_t>(b)] = static_cast<uint8_t>(o);
      }
      std::vector<uint8_t> ind;
      std::vector<float> zeros, ones;
      ForEachBlock(segs, n, [&](const GenotypeBlockView& b) {
        opt.vcf.stop.ThrowIfStopped();
        const size_t bytes = static_cast<size_t>(b.variants * PackedBytes(n));
        ind.resize(bytes);
        for (size_t i = 0; i < bytes; ++i) ind[i] = lut[b.packed[i]];
        zeros.assign(static_cast<size_t>(b.variants), 0.0f);
        ones.assign(static_cast<size_t>(b.variants), 1.0f);
        counts.Add(GenotypeBlockView{ind.data(), b.variants, n, zeros.data(), ones.data()});
      });
      std::vector<double> mij = counts.Result();
      for (size_t i = 0; i < grm.size(); ++i) grm[i] = mij[i] > 0 ? grm[i] / mij[i] : 0.0;
    } else {
      for (double& x : grm) x *= inv_m;
    }
    out.seconds.grm = Since(t);
    t = Clock::now();
    kernels::SymEigenResult eig = kernels::SymmetricEigen(res, grm.data(), n, k);
    out.seconds.eigen = Since(t);
    // Ascending -> descending.
    for (int64_t c = 0; c < k; ++c) {
      const int64_t src = k - 1 - c;
      lambda[static_cast<size_t>(c)] = eig.values[static_cast<size_t>(src)];
      for (int64_t i = 0; i < n; ++i)
        u[static_cast<size_t>(i * k + c)] = eig.vectors[static_cast<size_t>(i * k + src)];
    }
  } else {
    // Randomized subspace iteration on K = Z^T Z / M (Z: M x n variant-major), never forming K:
    // each pass computes Y = K Q = sum_b Z_b^T (Z_b Q) block by block; Q <- orth(Y). A last pass
    // gives S = Q^T K Q = sum_b (Z_b Q)^T (Z_b Q), whose top k eigenpairs (Rayleigh-Ritz) give
    // lambda and U = Q V.
    t = Clock::now();
    out.device = "cpu";
    if (res.device() == Device::kGpu) {
      spdlog::info("genotype pca --approx: the subspace iterations run on the CPU (only the exact method's "
                   "relationship matrix and eigensolve have GPU code)");
    }
    const int64_t l = std::min<int64_t>(n, k + std::max<int64_t>(opt.approx_oversample, 0));
    std::mt19937_64 rng(opt.seed ^ 0x6765'6e6f'7479'7065ULL);
    std::normal_distribution<double> nd;
    RowMajorD q(n, l);
    for (int64_t i = 0; i < n * l; ++i) q.data()[i] = nd(rng);
    q = Orthonormalize(q);
    std::vector<float> z, tb, yf(static_cast<size_t>(n * l)), sf(static_cast<size_t>(l * l));
    RowMajorD s_ritz(l, l);
    for (int it = 0; it <= opt.approx_iterations; ++it) {
      const bool last = it == opt.approx_iterations;
      RowMajorF qf = q.cast<float>();
      RowMajorD y = RowMajorD::Zero(n, l);
      s_ritz.setZero();
      ForEachBlock(segs, n, [&](const GenotypeBlockView& b) {
        opt.vcf.stop.ThrowIfStopped();
        const int64_t nb = b.variants;
        z.resize(static_cast<size_t>(nb * n));
        tb.resize(static_cast<size_t>(nb * l));
        kernels::ExpandGenotypeBlock(b, z.data(), 1);  // one thread: see GrmAccumulator::Add
        // T = Z_b Q (B x l); then Y += Z_b^T T (n x l) or S += T^T T (l x l), in float32 per block
        // and added into float64.
        Gemm(false, false, nb, l, n, z.data(), qf.data(), 0.0f, tb.data(), res.threads());
        if (last) {
          Gemm(true, false, l, l, nb, tb.data(), tb.data(), 0.0f, sf.data(), res.threads());
          for (int64_t i = 0; i < l * l; ++i) s_ritz.data()[i] += sf[static_cast<size_t>(i)];
        } else {
          Gemm(true, false, n, l, nb, z.data(), tb.data(), 0.0f, yf.data(), res.threads());
          for (int64_t i = 0; i < n * l; ++i) y.data()[i] += yf[static_cast<size_t>(i)];
        }
      });
      if (!last) q = Orthonormalize(y * inv_m);
    }
    out.seconds.grm = Since(t);
    t = Clock::now();
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(s_ritz * inv_m);
    MLF_EXPECTS(es.info() == Eigen::Success, "genotype pca --approx: the {} x {} Rayleigh-Ritz eigensolve failed", l, l);
    for (int64_t c = 0; c < k; ++c) {
      const int64_t src = l - 1 - c;
      lambda[static_cast<size_t>(c)] = es.eigenvalues()(src);
      Eigen::VectorXd col = q * es.eigenvectors().col(src);
      for (int64_t i = 0; i < n; ++i) u[static_cast<size_t>(i * k + c)] = col(i);
    }
    out.seconds.eigen = Since(t);
  }
  NormaliseSigns(&u, n, k);
  out.eigenvalues = lambda;
  out.eigenvectors = u;

  // Variant weights W = Z^T U diag(lambda)^-1/2, one more pass.
  if (opt.loadings) {
    t = Clock::now();
    for (auto& s : segs) {
      out.variant_records.insert(out.variant_records.end(), std::make_move_iterator(s.records.begin()),
                                 std::make_move_iterator(s.records.end()));
    }
    out.loadings.assign(static_cast<size_t>(m * k), 0.0);
    RowMajorF uf(n, k);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < k; ++c) {
        const double lam = lambda[static_cast<size_t>(c)];
        uf(i, c) = static_cast<float>(lam > 0 ? u[static_cast<size_t>(i * k + c)] / std::sqrt(lam) : 0.0);
      }
    std::vector<float> z, w;
    int64_t row = 0;
    ForEachBlock(segs, n, [&](const GenotypeBlockView& b) {
      z.resize(static_cast<size_t>(b.variants * n));
      w.resize(static_cast<size_t>(b.variants * k));
      kernels::ExpandGenotypeBlock(b, z.data(), 1);
      Gemm(false, false, b.variants, k, n, z.data(), uf.data(), 0.0f, w.data(), res.threads());
      for (int64_t i = 0; i < b.variants * k; ++i) out.loadings[static_cast<size_t>(row * k + i)] = w[static_cast<size_t>(i)];
      row += b.variants;
    });
    out.seconds.loadings = Since(t);
  }
  out.seconds.total = Since(t_all);
  out.peak_rss_bytes = PeakRssBytes();
  return out;
}

void Write(const Result& r, const std::string& prefix) {
  MLF_EXPECTS(!prefix.empty(), "no output prefix given; pass --out PREFIX");
  const int64_t n = r.samples, k = static_cast<int64_t>(r.eigenvalues.size());
  std::string vec = "#IID";
  for (int64_t c = 0; c < k; ++c) vec += fmt::format("\tPC{}", c + 1);
  vec += '\n';
  for (int64_t i = 0; i < n; ++i) {
    vec += r.sample_ids[static_cast<size_t>(i)];
    for (int64_t c = 0; c < k; ++c) {
      vec += '\t';
      vec += Num(r.eigenvectors[static_cast<size_t>(i * k + c)]);
    }
    vec += '\n';
  }
  std::string val;
  for (double x : r.eigenvalues) val += Num(x) + "\n";
  if (!r.loadings.empty()) {
    std::string ld = fmt::format("## mlforge genotype pca variant weights: M={} samples={} pcs={}\n", r.variants,
                                 r.samples, k);
    ld += "#CHROM\tPOS\tID\tREF\tALT\tALT_FREQ";
    for (int64_t c = 0; c < k; ++c) ld += fmt::format("\tPC{}", c + 1);
    ld += '\n';
    for (int64_t j = 0; j < r.variants; ++j) {
      const VariantRecord& v = r.variant_records[static_cast<size_t>(j)];
      ld += fmt::format("{}\t{}\t{}\t{}\t{}\t{}", v.chrom, v.pos, v.id, v.ref, v.alt, Num(v.alt_freq));
      for (int64_t c = 0; c < k; ++c) {
        ld += '\t';
        ld += Num(r.loadings[static_cast<size_t>(j * k + c)]);
      }
      ld += '\n';
    }
    WriteFileAtomic(prefix + ".loadings.tsv", ld);
  }
  nlohmann::json j = {{"samples", r.samples},
                      {"variants", r.variants},
                      {"monomorphic_variants", r.monomorphic},
                      {"pcs", k},
                      {"missing", r.missing_pairwise ? "pairwise" : "mean"},
                      {"method", r.approx ? "approx (randomized subspace iteration)" : "exact (GRM eigendecomposition)"},
                      {"device", r.device},
                      {"eigenvalues", r.eigenvalues},
                      {"vcf", r.stats.ToJson()},
                      {"genotype_store_bytes", r.store_bytes},
                      {"genotype_store_spilled", r.spilled},
                      {"peak_rss_bytes", r.peak_rss_bytes},
                      {"seconds",
                       {{"decode", r.seconds.decode},
                        {"grm", r.seconds.grm},
                        {"eigen", r.seconds.eigen},
                        {"loadings", r.seconds.loadings},
                        {"total", r.seconds.total}}}};
  WriteFileAtomic(prefix + ".genotype_pca.json", j.dump(1) + "\n");
  WriteFileAtomic(prefix + ".eigenval", val);
  WriteFileAtomic(prefix + ".eigenvec", vec);
}

// ---------------------------------------------------------------------------------------------
// Projection.

namespace {

std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> f;
  size_t start = 0;
  for (;;) {
    size_t tab = line.find('\t', start);
    f.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  return f;
}

double ParseNumber(const std::string& s, const std::string& path, int64_t line_no, const char* what) {
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(s.c_str(), &end);
  MLF_EXPECTS(!s.empty() && end == s.c_str() + s.size() && errno == 0 && std::isfinite(x),
              "'{}': line {}: {} '{}' is not a finite number; the file is corrupt, rerun `mlforge genotype pca`",
              path, line_no, what, s);
  return x;
}

std::string Key(std::string_view chrom, int64_t pos, std::string_view ref, std::string_view alt) {
  return fmt::format("{}:{}:{}:{}", chrom, pos, ref, alt);
}

}  // namespace

ProjectResult Project(const std::string& prefix, const std::vector<std::string>& vcf, const ProjectOptions& options) {
  MLF_EXPECTS(!vcf.empty(), "no VCF/BCF input given; pass the new samples' files with --vcf");
  // The model: eigenvalues and variant weights.
  const std::string val_path = prefix + ".eigenval", ld_path = prefix + ".loadings.tsv";
  std::vector<double> lambda;
  {
    std::ifstream in(val_path);
    MLF_EXPECTS(in.good(), "cannot read '{}': pass --model PREFIX of a `mlforge genotype pca --out PREFIX` run", val_path);
    std::string line;
    int64_t no = 0;
    while (std::getline(in, line)) {
      ++no;
      if (!line.empty()) lambda.push_back(ParseNumber(line, val_path, no, "eigenvalue"));
    }
  }
  const int64_t k = static_cast<int64_t>(lambda.size());
  MLF_EXPECTS(k >= 1, "'{}' holds no eigenvalue", val_path);
  for (double x : lambda) MLF_EXPECTS(x > 0, "'{}': eigenvalue {} is not positive; cannot project on it", val_path, x);
  std::ifstream in(ld_path);
  MLF_EXPECTS(in.good(),
              "cannot read '{}': projection needs the variant weights that `mlforge genotype pca` writes (not "
              "written with --no-loadings)",
              ld_path);
  std::unordered_map<std::string, int64_t> index;
  std::vector<double> center, scale, w;
  std::string line;
  int64_t no = 0, m_header = -1;
  while (std::getline(in, line)) {
    ++no;
    if (line.rfind("##", 0) == 0) {
      const size_t at = line.find("M=");
      if (at != std::string::npos) m_header = std::atoll(line.c_str() + at + 2);
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f = SplitTabs(line);
    MLF_EXPECTS(static_cast<int64_t>(f.size()) == 6 + k,
                "'{}': line {} has {} columns, expected {} (CHROM POS ID REF ALT ALT_FREQ and one per eigenvalue in "
                "'{}')",
                ld_path, no, f.size(), 6 + k, val_path);
    const double pos_value = ParseNumber(f[1], ld_path, no, "POS");
    MLF_EXPECTS(pos_value >= 1 && pos_value <= 1e15 && pos_value == std::floor(pos_value),
                "'{}': line {}: POS '{}' is not a position (a whole number >= 1)", ld_path, no, f[1]);
    const int64_t pos = static_cast<int64_t>(pos_value);
    const double p = ParseNumber(f[5], ld_path, no, "ALT_FREQ");
    MLF_EXPECTS(p >= 0 && p <= 1, "'{}': line {}: ALT_FREQ {} is outside [0, 1]", ld_path, no, p);
    const int64_t j = static_cast<int64_t>(center.size());
    index.emplace(Key(f[0], pos, f[3], f[4]), j);
    center.push_back(2 * p);
    scale.push_back(p > 0 && p < 1 ? 1.0 / std::sqrt(2 * p * (1 - p)) : 0.0);
    for (int64_t c = 0; c < k; ++c) w.push_back(ParseNumber(f[6 + static_cast<size_t>(c)], ld_path, no, "weight"));
  }
  const int64_t m = static_cast<int64_t>(center.size());
  MLF_EXPECTS(m > 0, "'{}' holds no variant", ld_path);
  MLF_EXPECTS(m_header < 0 || m_header == m, "'{}' says M={} but holds {} variants: the file is truncated", ld_path,
              m_header, m);

  ProjectResult out;
  out.pcs = k;
  out.model_variants = m;
  io::VcfOptions vo = options.vcf;
  vo.min_maf = 0;
  vo.max_missing = 1;
  std::vector<char> seen(static_cast<size_t>(m), 0);
  for (size_t fi = 0; fi < vcf.size(); ++fi) {
    io::VcfFileScanner f(vcf[fi], vo, vo.threads);
    if (fi == 0) {
      out.sample_ids = f.sample_ids();
      out.samples = f.samples();
      out.scores.assign(static_cast<size_t>(out.samples * k), 0.0);
    } else {
      io::CheckSameSamples(vcf[0], out.sample_ids, f.path(), f.sample_ids());
    }
    const int64_t n = out.samples;
    io::ScannedVariant v;
    while (f.Next(&v)) {
      if (v.fate != io::VariantFate::kKept) continue;
      bool flip = false;
      auto it = index.find(Key(v.chrom, v.pos, v.ref, v.alt));
      if (it == index.end()) {
        it = index.find(Key(v.chrom, v.pos, v.alt, v.ref));
        flip = it != index.end();
      }
      if (it == index.end() || seen[static_cast<size_t>(it->second)]) {
        ++out.unmatched_input;
        continue;
      }
      const int64_t j = it->second;
      seen[static_cast<size_t>(j)] = 1;
      ++out.matched;
      out.flipped += flip;
      out.imputed_cells += v.missing;
      const double c0 = center[static_cast<size_t>(j)], s0 = scale[static_cast<size_t>(j)];
      if (s0 == 0) continue;
      const double* wj = w.data() + j * k;
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t d = v.dosage[i];
        if (d == io::kMissingDosage) continue;  // mean-imputed: z = 0
        const double g = flip ? 2.0 - d : static_cast<double>(d);
        const double z = (g - c0) * s0;
        double* si = out.scores.data() + i * k;
        for (int64_t c = 0; c < k; ++c) si[c] += z * wj[c];
      }
    }
  }
  for (int64_t i = 0; i < out.samples; ++i)
    for (int64_t c = 0; c < k; ++c)
      out.scores[static_cast<size_t>(i * k + c)] /= static_cast<double>(m) * std::sqrt(lambda[static_cast<size_t>(c)]);
  MLF_EXPECTS(out.matched > 0,
              "none of the {} variants of the model '{}' is in the inputs (matched on CHROM, POS, REF and ALT); use "
              "files on the same reference build and chromosome names",
              m, ld_path);
  if (out.matched < m) {
    spdlog::warn("genotype project: {} of the model's {} variants are missing from the inputs and count as mean "
                 "(z = 0); scores shrink towards 0 accordingly",
                 m - out.matched, m);
  }
  return out;
}

void WriteProjection(const ProjectResult& r, const std::string& prefix) {
  MLF_EXPECTS(!prefix.empty(), "no output prefix given; pass --out PREFIX");
  std::string vec = "#IID";
  for (int64_t c = 0; c < r.pcs; ++c) vec += fmt::format("\tPC{}", c + 1);
  vec += '\n';
  for (int64_t i = 0; i < r.samples; ++i) {
    vec += r.sample_ids[static_cast<size_t>(i)];
    for (int64_t c = 0; c < r.pcs; ++c) vec += "\t" + Num(r.scores[static_cast<size_t>(i * r.pcs + c)]);
    vec += '\n';
  }
  WriteFileAtomic(prefix + ".eigenvec", vec);
}

}  // namespace mlforge::algos::genotype_pca
