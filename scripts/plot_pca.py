#!/usr/bin/env python3
"""Scatter plots of genotype PCs coloured by population: PC1/PC2 and PC3/PC4 side by side.

  plot_pca.py --eigenvec PREFIX.eigenvec --labels samples.tsv [--label-column super_pop]
              [--eigenval PREFIX.eigenval] --out OUT

reads plink2's .eigenvec layout (`#IID PC1 ... PCk`, or `#FID IID PC1 ...`, tab-separated, as
`mlforge genotype pca` and plink2 --pca write it) and a tab-separated labels file with a header that
names a sample column (`sample`, `IID`, or else the first column) and the label column; writes OUT.png
and OUT.svg. Axis titles carry each PC's share of the listed eigenvalues when --eigenval is given.
Samples without a label are drawn grey as "unlabelled". Needs matplotlib (scripts/pyenv.sh installs
it into the project's venv); exit status 2 with a message on bad input.
"""
import argparse
import sys


def read_eigenvec(path):
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        if not header or not header[0].startswith("#"):
            raise SystemExit(f"plot_pca.py: {path}: expected a header starting with #IID or #FID")
        first_pc = 2 if header[0] == "#FID" else 1
        ids, rows = [], []
        for no, line in enumerate(f, start=2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != len(header):
                raise SystemExit(f"plot_pca.py: {path}: line {no} has {len(parts)} columns, the header {len(header)}")
            ids.append(parts[first_pc - 1])
            rows.append([float(x) for x in parts[first_pc:]])
    return header[first_pc:], ids, rows


def read_labels(path, column):
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        if column not in header:
            raise SystemExit(f"plot_pca.py: {path}: no column '{column}' in the header ({', '.join(header)})")
        sample_col = next((header.index(c) for c in ("sample", "IID", "#IID") if c in header), 0)
        label_col = header.index(column)
        labels = {}
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) > max(sample_col, label_col):
                labels[parts[sample_col]] = parts[label_col]
    return labels


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eigenvec", required=True)
    ap.add_argument("--eigenval")
    ap.add_argument("--labels", required=True)
    ap.add_argument("--label-column", default="super_pop")
    ap.add_argument("--title", default="Genotype PCA")
    ap.add_argument("--out", required=True, help="output path without extension (.png and .svg are written)")
    args = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"plot_pca.py: matplotlib is not importable ({e}); run it with the python of scripts/pyenv.sh",
              file=sys.stderr)
        sys.exit(2)
    pcs, ids, rows = read_eigenvec(args.eigenvec)
    if len(pcs) < 2:
        raise SystemExit(f"plot_pca.py: {args.eigenvec} has {len(pcs)} PC column(s); at least 2 are needed")
    labels = read_labels(args.labels, args.label_column)
    share = None
    if args.eigenval:
        vals = [float(x) for x in open(args.eigenval).read().split()]
        total = sum(vals)
        share = [v / total for v in vals] if total > 0 else None
    groups = {}
    for i, sid in enumerate(ids):
        groups.setdefault(labels.get(sid, "unlabelled"), []).append(i)
    pairs = [(0, 1)] + ([(2, 3)] if len(pcs) >= 4 else [])
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.5 * len(pairs), 5.5), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    names = sorted(g for g in groups if g != "unlabelled") + (["unlabelled"] if "unlabelled" in groups else [])
    for ax, (a, b) in zip(axes[0], pairs):
        for ci, name in enumerate(names):
            idx = groups[name]
            color = "lightgrey" if name == "unlabelled" else cmap(ci % cmap.N)
            ax.scatter([rows[i][a] for i in idx], [rows[i][b] for i in idx], s=9, alpha=0.75, color=color,
                       label=f"{name} ({len(idx)})", edgecolors="none")

        def axis(j):
            return pcs[j] + (f" ({100 * share[j]:.1f}% of the {len(share)} listed)" if share and j < len(share) else "")
        ax.set_xlabel(axis(a))
        ax.set_ylabel(axis(b))
        ax.set_title(f"{pcs[a]} / {pcs[b]}")
        ax.grid(True, linewidth=0.3)
    axes[0][-1].legend(title=args.label_column, fontsize=8, markerscale=2, loc="best")
    fig.suptitle(f"{args.title}: {len(ids)} samples")
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(f"{args.out}.{ext}", dpi=130)
    print(f"wrote {args.out}.png and {args.out}.svg ({len(ids)} samples, {len(names)} groups)")


if __name__ == "__main__":
    main()
