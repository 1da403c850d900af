#!/usr/bin/env python3
"""mlforge genotype pca against plink2 --pca (ctest: genotype_pca_vs_plink2, label python).

plink2 (Debian's package, installed by scripts/setup.sh) is run by this test on the same genotypes:

a. The 1000 Genomes panel in <shared-data>/1000genomes (22 autosome VCFs, merged with bcftools
   concat for plink2, which takes one --vcf; mlforge reads the 22 files): plink2 --max-alleles 2
   --snps-only just-acgt --pca 10 (biallelic SNVs, mlforge's default rule) against `mlforge genotype
   pca --pcs 10`: the same 1126 sample IDs in the same order; every eigenvalue within 1e-4 relative;
   |correlation| >= 0.9999 for every PC whose eigengap is clear (both neighbours >= 1% away);
   --approx: the top 4 PCs |correlation| >= 0.999 with plink2's exact ones and eigenvalues within
   1e-3; `mlforge genotype project` of the panel onto its own result reproduces PREFIX.eigenvec
   (1e-5); scripts/plot_pca.py draws the PC1/PC2 and PC3/PC4 plot (PNG and SVG, legend with the
   super-populations). Skipped (with the reason) when the shared data is absent.
b. A synthetic cohort written here (numpy, seeded): 300 samples in 3 populations x 3000 biallelic
   SNVs with 2% missing calls ('./.'), some monomorphic variants, plus multi-allelic and indel records
   that both tools skip: eigenvalues within 1e-4 and clear PCs |correlation| >= 0.9999, for both
   treatments of missing calls: mlforge's default (mean imputation, M counting every variant) against
   plink2 --pca meanimpute, and `--missing pairwise` against plink2 --pca's default (each pair divided
   by the variants both samples have called).
c. The command line's errors: samples that differ between two files, and an empty VCF, exit with
   status 2 and a message naming the file.

Exit status: 0 pass, 1 fail, 77 skip (no plink2, or no numpy).
"""
import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError as e:
    print(f"SKIP: numpy not importable ({e})")
    sys.exit(77)

FAILURES = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        FAILURES.append(msg)


def run(cmd, expect=0):
    print("+ " + " ".join(cmd[:8]) + (" ..." if len(cmd) > 8 else ""), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if expect is not None and p.returncode != expect:
        print(p.stdout[-3000:] + p.stderr[-3000:])
        raise SystemExit(f"FAIL: exit status {p.returncode} (expected {expect}): {' '.join(cmd[:8])}")
    return p


def read_eigenvec(path):
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        ids, rows = [], []
        for line in f:
            parts = line.rstrip("\n").split("\t")
            ids.append(parts[0])
            rows.append([float(x) for x in parts[1:]])
    return header, ids, np.array(rows)


def read_eigenval(path):
    return np.array([float(x) for x in open(path).read().split()])


def abs_corr(a, b):
    return abs(np.corrcoef(a, b)[0, 1])


def clear_gap(vals, k, rel=0.01):
    """PC k (0-based) has a clear eigengap: both neighbours (where known) are >= rel away."""
    gaps = []
    if k > 0:
        gaps.append(vals[k - 1] - vals[k])
    if k + 1 < len(vals):
        gaps.append(vals[k] - vals[k + 1])
    else:
        return False  # the next eigenvalue is unknown
    return min(gaps) >= rel * vals[k]


def compare(label, plink_prefix, ml_prefix, value_rel=1e-4, min_corr=0.9999, pcs=None):
    ph, pids, pv = read_eigenvec(plink_prefix + ".eigenvec")
    mh, mids, mv = read_eigenvec(ml_prefix + ".eigenvec")
    check(mh == ph[:len(mh)], f"{label}: header {mh[:3]}... equals plink2's {ph[:3]}...")
    check(mids == pids, f"{label}: the same {len(pids)} sample IDs in the same order")
    plam = read_eigenval(plink_prefix + ".eigenval")
    mlam = read_eigenval(ml_prefix + ".eigenval")
    k = len(plam) if pcs is None else pcs
    rel = np.abs(mlam[:k] - plam[:k]) / plam[:k]
    # plink2 prints 6 significant digits: its own rounding is up to 5e-6 relative.
    check(rel.max() <= value_rel, f"{label}: eigenvalues within {value_rel:g} relative (max {rel.max():.2e}); "
          f"plink2 {np.round(plam[:k], 4).tolist()}")
    for j in range(k):
        c = abs_corr(mv[:, j], pv[:, j])
        if pcs is None and not clear_gap(plam, j):
            print(f"     {label}: PC{j + 1} |corr| {c:.6f} (eigengap not clear: not asserted)")
            continue
        check(c >= min_corr, f"{label}: PC{j + 1} |correlation| {c:.7f} >= {min_corr}")
    return mv


def part_a(args, tmp):
    d = os.path.join(args.shared_data, "1000genomes") if args.shared_data else ""
    vcfs = [os.path.join(d, f"1KG_phase3_subset_chr{c}.vcf.gz") for c in range(1, 23)]
    if not d or not all(os.path.exists(v) for v in vcfs):
        print(f"SKIP part a: no 1000 Genomes panel under '{d}'")
        return
    if not shutil.which("bcftools"):
        print("SKIP part a: bcftools not installed (scripts/setup.sh installs it)")
        return
    merged = os.path.join(tmp, "panel.vcf.gz")
    run(["bcftools", "concat", "-Oz", "-o", merged] + vcfs)
    pl = os.path.join(tmp, "plink_panel")
    run(["plink2", "--vcf", merged, "--max-alleles", "2", "--snps-only", "just-acgt", "--pca", "10",
         "--threads", str(args.threads), "--out", pl])
    ml = os.path.join(tmp, "ml_panel")
    run([args.mlforge, "genotype", "pca", "--vcf"] + vcfs + ["--pcs", "10", "--out", ml, "--threads", str(args.threads)])
    mv = compare("panel exact", pl, ml)
    ap = os.path.join(tmp, "ml_panel_approx")
    run([args.mlforge, "genotype", "pca", "--vcf", merged, "--pcs", "4", "--approx", "--out", ap,
         "--threads", str(args.threads)])
    compare("panel --approx", pl, ap, value_rel=1e-3, min_corr=0.999, pcs=4)
    pj = os.path.join(tmp, "ml_panel_projected")
    run([args.mlforge, "genotype", "project", "--vcf"] + vcfs + ["--model", ml, "--out", pj])
    _, _, pv = read_eigenvec(pj + ".eigenvec")
    err = np.abs(pv - mv).max()
    check(err <= 1e-5, f"panel: projecting the panel onto its own PCs reproduces them (max |diff| {err:.2e})")
    # The demo's scatter plots (scripts/plot_pca.py, matplotlib from the same venv).
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "plot_pca.py")
    plot = os.path.join(tmp, "plot")
    run([sys.executable, script, "--eigenvec", ml + ".eigenvec", "--eigenval", ml + ".eigenval", "--labels",
         os.path.join(d, "samples.tsv"), "--out", plot])
    png = open(plot + ".png", "rb").read()
    svg = open(plot + ".svg").read()
    check(png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000, f"plot: PNG written ({len(png)} bytes)")
    check("<svg" in svg and "EUR (190)" in svg and "PC3 / PC4" in svg,
          "plot: SVG with both panels and the population legend")


def write_synthetic(path, n=300, m=3000, pops=3, missing=0.02, seed=7):
    rng = np.random.default_rng(seed)
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=1>", "##contig=<ID=2>",
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"] +
                       [f"I{i:04d}" for i in range(n)])]
    pop = np.arange(n) % pops
    pos = 1000
    for j in range(m):
        pos += 100
        chrom = "1" if j < m // 2 else "2"
        if j % 50 == 3:  # records both tools skip
            calls = "\t".join(["0/1"] * n)
            lines.append(f"{chrom}\t{pos}\t.\tA\tC,G\t.\tPASS\t.\tGT\t{calls}")
            pos += 10
            lines.append(f"{chrom}\t{pos}\t.\tAT\tA\t.\tPASS\t.\tGT\t{calls}")
            pos += 10
        if j % 97 == 11:
            a = np.zeros((n, 2), dtype=int)
        else:
            p0 = rng.uniform(0.05, 0.95)
            f = 0.08
            pp = rng.beta(p0 * (1 - f) / f, (1 - p0) * (1 - f) / f, size=pops)
            a = (rng.random((n, 2)) < pp[pop][:, None]).astype(int)
        miss = rng.random(n) < missing
        calls = [("./." if miss[i] else f"{a[i, 0]}/{a[i, 1]}") for i in range(n)]
        lines.append(f"{chrom}\t{pos}\tsnp{j}\tC\tT\t.\tPASS\t.\tGT\t" + "\t".join(calls))
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")


def part_b(args, tmp):
    v = os.path.join(tmp, "synthetic.vcf.gz")
    write_synthetic(v)
    # mlforge's default (mean imputation) is plink2's 'meanimpute' modifier; --missing pairwise is
    # plink2's default (per-pair denominators). The two differ by ~4% in eigenvalues here.
    for modifier, missing in ((["meanimpute"], "mean"), ([], "pairwise")):
        pl = os.path.join(tmp, "plink_syn_" + missing)
        run(["plink2", "--vcf", v, "--max-alleles", "2", "--snps-only", "just-acgt", "--pca", "6"] + modifier +
            ["--threads", str(args.threads), "--out", pl])
        ml = os.path.join(tmp, "ml_syn_" + missing)
        p = run([args.mlforge, "genotype", "pca", "--vcf", v, "--pcs", "6", "--missing", missing, "--out", ml,
                 "--threads", str(args.threads)])
        check("imputed" in p.stdout and "multi-allelic 60" in p.stdout,
              "synthetic: missing calls imputed and skipped records counted in the report")
        compare(f"synthetic with 2% missing, --missing {missing} vs plink2 --pca {' '.join(modifier) or '(default)'}",
                pl, ml)


def part_c(args, tmp):
    hdr = ("##fileformat=VCFv4.2\n##contig=<ID=1>\n##FORMAT=<ID=GT,Number=1,Type=String,Description=\"GT\">\n"
           "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{}\n")
    a = os.path.join(tmp, "a.vcf")
    b = os.path.join(tmp, "b.vcf")
    e = os.path.join(tmp, "empty.vcf")
    open(a, "w").write(hdr.format("X1\tX2\tX3") + "1\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t1/1\t0/0\n")
    open(b, "w").write(hdr.format("X1\tX3\tX2") + "1\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t1/1\t0/0\n")
    open(e, "w").write(hdr.format("X1\tX2\tX3"))
    out = os.path.join(tmp, "err")
    p = run([args.mlforge, "genotype", "pca", "--vcf", a, b, "--pcs", "1", "--out", out], expect=2)
    check("b.vcf" in p.stderr and "same order" in p.stderr, f"sample mismatch: exit 2, {p.stderr.strip()[:150]}")
    p = run([args.mlforge, "genotype", "pca", "--vcf", e, "--pcs", "1", "--out", out], expect=2)
    check("no variant" in p.stderr, f"empty VCF: exit 2, {p.stderr.strip()[:150]}")
    check(not os.path.exists(out + ".eigenvec"), "no output after an error")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlforge", required=True)
    ap.add_argument("--shared-data", default=os.environ.get("MLFORGE_SHARED_DATA", ""))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("MLFORGE_TEST_THREADS", "2")))
    args = ap.parse_args()
    if not shutil.which("plink2"):
        print("SKIP: plink2 is not installed (scripts/setup.sh installs Debian's plink2)")
        sys.exit(77)
    with tempfile.TemporaryDirectory(prefix="mlforge-plink2-") as tmp:
        part_a(args, tmp)
        part_b(args, tmp)
        part_c(args, tmp)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
