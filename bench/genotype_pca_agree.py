#!/usr/bin/env python3
"""Prints whether two genotype PCA results agree: eigenvalues (max relative difference) and the
|correlation| of each PC, for the benchmark log (bench/genotype_pca_vs_plink2.sh).

  genotype_pca_agree.py LABEL PLINK_PREFIX MLFORGE_PREFIX PCS
"""
import sys

import numpy as np


def load(prefix, k):
    with open(prefix + ".eigenvec") as f:
        f.readline()
        ids, rows = [], []
        for line in f:
            p = line.rstrip("\n").split("\t")
            ids.append(p[0])
            rows.append([float(x) for x in p[1:1 + k]])
    vals = np.array([float(x) for x in open(prefix + ".eigenval").read().split()][:k])
    return ids, np.array(rows), vals


label, a, b, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ia, va, la = load(a, k)
ib, vb, lb = load(b, k)
if ia != ib:
    print(f"  {label}: DIFFERENT sample order")
    sys.exit(1)
rel = np.abs(lb - la) / la
corr = [abs(np.corrcoef(va[:, j], vb[:, j])[0, 1]) for j in range(k)]
print(f"  {label}: eigenvalues max rel diff {rel.max():.2e}; |corr| per PC " + " ".join(f"{c:.5f}" for c in corr))
