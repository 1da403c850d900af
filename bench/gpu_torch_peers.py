"""PyTorch peers and ceilings for the GPU micro-benchmarks, timed with CUDA events (median of --reps
after a warm-up), on the shapes of bench/linear_learner_bench.cc and bench/kmeans_bench.cc:

  copy      device-to-device copy of 4 GiB: HBM bandwidth counting bytes read + written
  sgemm     float32 matmul (TF32 off, as cuBLAS_COMPUTE_32F) of the k-means shape n x d x k
  ll_step   the linear learner's logistic step written the plain PyTorch way for m models:
            S = X W + b, loss = sum BCE-with-logits, R = sigmoid(S) - y, gW = X^T R, gb = sum R
            (what LinearLossGradGpu computes), n = 1M, d = 128, m = 1 and 32
  pca       PCA's scatter pass as bench/pca_bench.cc's BM_ScatterGpu runs it: float32 mini-batches
            from host memory, each uploaded and added to X^T X and the column sums in float64
            (X^T X of the shifted rows), n = 1M x d = 128 (batches of 10,000 and 100,000) and
            200,000 x 1024 (10,000)

    python3 bench/gpu_torch_peers.py [--reps 20]
Prints `name shape median_ms min_ms derived` lines. Needs torch with CUDA; exit 77 otherwise.
"""
import argparse
import statistics
import sys

from kmeans_torch import cuda_torch


def timed(torch, fn, reps):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    torch = cuda_torch()
    if torch is None:
        return 77
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    print("# name shape median_ms min_ms derived")
    g = torch.Generator(device="cuda").manual_seed(0)

    n = 1 << 30  # floats: 4 GiB
    src = torch.randn(n, device="cuda", generator=g)
    dst = torch.empty_like(src)
    med, mn = timed(torch, lambda: dst.copy_(src), args.reps)
    print(f"copy 4GiB {med:.3f} {mn:.3f} {2 * 4 * n / med / 1e6:.0f}GB/s", flush=True)
    del src, dst

    for rows, d, k in [(10_000_000, 100, 1000), (1_000_000, 100, 1000)]:
        x = torch.randn((rows, d), device="cuda", generator=g)
        c = torch.randn((k, d), device="cuda", generator=g)
        out = torch.empty((rows, k), device="cuda")
        med, mn = timed(torch, lambda: torch.mm(x, c.t(), out=out), args.reps)
        print(f"sgemm {rows}x{d}x{k} {med:.3f} {mn:.3f} {2 * rows * d * k / med / 1e9:.1f}TFLOP/s", flush=True)
        del x, c, out
        torch.cuda.empty_cache()

    rows, d = 1_000_000, 128
    x = torch.randn((rows, d), device="cuda", generator=g)
    y = (torch.rand((rows, 1), device="cuda", generator=g) < 0.5).float()
    for m in (1, 32):
        w = 0.1 * torch.randn((d, m), device="cuda", generator=g)
        b = torch.randn((m,), device="cuda", generator=g)

        def step():
            s = torch.addmm(b, x, w)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(s, y.expand(-1, m), reduction="none").sum(0)
            r = torch.sigmoid(s) - y
            return loss, x.t() @ r, r.sum(0)

        med, mn = timed(torch, step, args.reps)
        print(f"ll_step n={rows},d={d},m={m} {med:.3f} {mn:.3f} {rows * d * 4 / med / 1e6:.0f}GB/s_of_X", flush=True)
    del x, y

    for rows, d, batch in [(1_000_000, 128, 10_000), (1_000_000, 128, 100_000), (200_000, 1024, 10_000)]:
        host = torch.randn((rows, d), generator=torch.Generator().manual_seed(1)).pin_memory()
        shift = torch.full((d,), 0.1, device="cuda", dtype=torch.float64)

        def scatter():
            gram = torch.zeros((d, d), device="cuda", dtype=torch.float64)
            colsum = torch.zeros((d,), device="cuda", dtype=torch.float64)
            for i in range(0, rows, batch):
                xb = host[i:i + batch].to("cuda", non_blocking=True).double() - shift
                gram.addmm_(xb.t(), xb)
                colsum += xb.sum(0)
            return gram, colsum

        med, mn = timed(torch, scatter, max(3, args.reps // 4))
        print(f"pca_scatter n={rows},d={d},batch={batch} {med:.3f} {mn:.3f} "
              f"{2 * rows * d * d / med / 1e9:.1f}GFLOP/s", flush=True)
        del host
    return 0


if __name__ == "__main__":
    sys.exit(main())
