// `mlforge genotype pca | project`: principal components of samples from VCF/BCF genotypes with
// plink2's definition and file layout (algos/genotype_pca/genotype_pca.h), and projection of new
// samples onto a saved result.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "algos/genotype_pca/genotype_pca.h"
#include "cli/cli.h"
#include "comm/communicator.h"
#include "core/error.h"
#include "core/resources.h"
#include "core/stop.h"

namespace mlforge::cli {
namespace {

namespace gp = algos::genotype_pca;

struct PcaArgs {
  std::vector<std::string> vcf;
  std::string out;
  gp::Options opt;
  double memory_mb = 1024;
  bool no_loadings = false;
  std::string device = "auto";
  std::string missing = "mean";
};

struct ProjectArgs {
  std::vector<std::string> vcf;
  std::string model;
  std::string out;
  bool half_missing_as_missing = false;
};

int RunPca(PcaArgs& a, const GlobalOptions& global) {
  MLF_EXPECTS(!a.out.empty(), "genotype pca: pass --out PREFIX (PREFIX.eigenvec and PREFIX.eigenval are written)");
  MLF_EXPECTS(a.memory_mb >= 0, "--memory-mb = {} must be >= 0", a.memory_mb);
  a.opt.memory_budget_bytes = static_cast<int64_t>(a.memory_mb * 1024 * 1024);
  a.opt.loadings = !a.no_loadings;
  a.opt.missing = gp::ParseMissing(a.missing);
  a.opt.vcf.stop = StopToken::FromSignals();
  a.opt.vcf.threads = 0;
  Resources res(ParseDeviceRequest(a.device), global.threads, a.opt.seed, comm::MakeSingleProcess(),
                StopToken::FromSignals());
  gp::Result r = gp::Run(a.vcf, a.opt, res);
  gp::Write(r, a.out);
  std::printf("%s\n", r.stats.Report().c_str());
  std::printf("genotype pca (%s, %s): %lld samples x %lld variants (%lld monomorphic, counted in M as plink2 does)\n",
              r.approx ? "approx" : "exact", r.device.c_str(), static_cast<long long>(r.samples),
              static_cast<long long>(r.variants), static_cast<long long>(r.monomorphic));
  std::printf("eigenvalues:");
  for (double x : r.eigenvalues) std::printf(" %.6g", x);
  std::printf("\ntime: decode %.3f s, %s %.3f s, eigen %.3f s, loadings %.3f s, total %.3f s; peak memory %.1f MB%s\n",
              r.seconds.decode, r.approx ? "subspace iterations" : "GRM", r.seconds.grm, r.seconds.eigen,
              r.seconds.loadings, r.seconds.total, static_cast<double>(r.peak_rss_bytes) / (1 << 20), r.spilled ? " (genotypes spilled to a temp file)" : "");
  std::printf("wrote %s.eigenvec, %s.eigenval%s, %s.genotype_pca.json\n", a.out.c_str(), a.out.c_str(),
              r.loadings.empty() ? "" : (", " + a.out + ".loadings.tsv").c_str(), a.out.c_str());
  return kExitOk;
}

int RunProject(const ProjectArgs& a) {
  MLF_EXPECTS(!a.model.empty(), "genotype project: pass --model PREFIX (the --out of `mlforge genotype pca`)");
  MLF_EXPECTS(!a.out.empty(), "genotype project: pass --out PREFIX (PREFIX.eigenvec is written)");
  gp::ProjectOptions o;
  o.vcf.half_missing_as_missing = a.half_missing_as_missing;
  o.vcf.stop = StopToken::FromSignals();
  gp::ProjectResult r = gp::Project(a.model, a.vcf, o);
  gp::WriteProjection(r, a.out);
  std::printf("genotype project: %lld samples onto %lld PCs; %lld of %lld model variants matched (%lld with REF/ALT "
              "swapped), %lld missing calls mean-imputed, %lld input variants not in the model\n",
              static_cast<long long>(r.samples), static_cast<long long>(r.pcs), static_cast<long long>(r.matched),
              static_cast<long long>(r.model_variants), static_cast<long long>(r.flipped),
              static_cast<long long>(r.imputed_cells), static_cast<long long>(r.unmatched_input));
  std::printf("wrote %s.eigenvec\n", a.out.c_str());
  return kExitOk;
}

}  // namespace

void RegisterGenotype(CLI::App& app, const GlobalOptions& global, Registry& registry) {
  CLI::App* g = app.add_subcommand("genotype", "Population structure from VCF/BCF: PCA as plink2 --pca, projection");
  g->require_subcommand(1);

  auto pa = std::make_shared<PcaArgs>();
  CLI::App* pca = g->add_subcommand(
      "pca", "Top principal components of the samples (plink2 --pca definition and files: PREFIX.eigenvec, "
             "PREFIX.eigenval), plus variant weights for `genotype project`");
  pca->add_option("--vcf", pa->vcf, "VCF/BCF files (several = chromosomes of the same samples, in order)")
      ->required();
  pca->add_option("--out", pa->out, "output prefix")->required();
  pca->add_option("--pcs", pa->opt.pcs, "number of principal components")->capture_default_str();
  pca->add_flag("--approx", pa->opt.approx,
                "randomized method: no samples x samples matrix, memory O(samples x (pcs + oversample)), several "
                "passes over the genotypes (for cohorts too large for the exact method)");
  pca->add_option("--approx-iterations", pa->opt.approx_iterations, "--approx: power iterations")
      ->capture_default_str();
  pca->add_option("--approx-oversample", pa->opt.approx_oversample, "--approx: extra subspace columns")
      ->capture_default_str();
  pca->add_option("--maf", pa->opt.vcf.min_maf, "keep variants with minor allele frequency >= this (plink2 --maf)")
      ->capture_default_str();
  pca->add_option("--max-missing", pa->opt.vcf.max_missing,
                  "keep variants with a missing-call fraction <= this (plink2 --geno)")
      ->capture_default_str();
  pca->add_option("--missing", pa->missing,
                  "missing calls: mean (mean-imputed, plink2 --pca meanimpute) or pairwise (each pair of samples "
                  "divided by the variants both have called: plink2 --pca's default)")
      ->capture_default_str();
  pca->add_flag("--keep-indels", pa->opt.vcf.keep_indels, "also use biallelic indels (default: SNVs only)");
  pca->add_flag("--half-missing-as-missing", pa->opt.vcf.half_missing_as_missing,
                "treat half-missing calls (0/.) as missing instead of haploid");
  pca->add_flag("--no-loadings", pa->no_loadings, "skip the variant weights (PREFIX.loadings.tsv)");
  pca->add_option("--memory-mb", pa->memory_mb,
                  "RAM for the 2-bit genotype store (samples x variants / 4 bytes); beyond it the store goes to a "
                  "temporary file")
      ->capture_default_str();
  pca->add_option("--temp-dir", pa->opt.temp_dir, "where the genotype store spills (default: the system's)");
  pca->add_option("--device", pa->device, "auto, cpu or gpu")->capture_default_str();
  pca->add_option("--seed", pa->opt.seed, "--approx: seed of the random start")->capture_default_str();
  registry.Add(pca, [pa, &global] { return RunPca(*pa, global); });

  auto ja = std::make_shared<ProjectArgs>();
  CLI::App* proj = g->add_subcommand(
      "project", "Project new samples onto the PCs of a `genotype pca` result (its allele frequencies and variant "
                 "weights); writes PREFIX.eigenvec");
  proj->add_option("--vcf", ja->vcf, "VCF/BCF files of the new samples")->required();
  proj->add_option("--model", ja->model, "the --out PREFIX of `mlforge genotype pca`")->required();
  proj->add_option("--out", ja->out, "output prefix")->required();
  proj->add_flag("--half-missing-as-missing", ja->half_missing_as_missing,
                 "treat half-missing calls (0/.) as missing instead of haploid");
  registry.Add(proj, [ja] { return RunProject(*ja); });
}

}  // namespace mlforge::cli
