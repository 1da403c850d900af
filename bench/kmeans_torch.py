"""Peer for the GPU k-means benchmark: one Lloyd iteration written the straightforward PyTorch way
(torch.cdist + argmin + index_add_), timed with CUDA events on the same shapes as
bench/kmeans_bench.cc's BM_AssignGpu / BM_SgemmFloor. Needs a CUDA GPU and torch (pip install torch
into a venv on the GPU machine). Prints one line per shape: n d k median_ms over --reps runs.

    python bench/kmeans_torch.py [--rows 10000000] [--reps 10]
"""
import argparse
import statistics
import sys


def cuda_torch():
    """torch with a visible CUDA GPU, or None after saying why on stderr (callers exit 77, the
    ctest skip code). Shared with bench/gpu_torch_peers.py."""
    try:
        import torch
    except ImportError:
        print("torch is not installed: pip install torch", file=sys.stderr)
        return None
    if not torch.cuda.is_available():
        print("no CUDA GPU visible to torch", file=sys.stderr)
        return None
    return torch


def lloyd_iteration(torch, x, c):
    # Chunked so the n x k distance matrix of a 10M-row input fits in GPU memory.
    k, d = c.shape
    sums = torch.zeros((k, d), device=x.device, dtype=torch.float32)
    counts = torch.zeros((k,), device=x.device, dtype=torch.float32)
    chunk = max(1, (1 << 28) // max(k, 1))  # ~1 GiB of float32 distances per chunk
    for start in range(0, x.shape[0], chunk):
        xb = x[start:start + chunk]
        labels = torch.cdist(xb, c).argmin(dim=1)
        sums.index_add_(0, labels, xb)
        counts.index_add_(0, labels, torch.ones_like(labels, dtype=torch.float32))
    return sums / counts.clamp(min=1).unsqueeze(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    torch = cuda_torch()
    if torch is None:
        return 77
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name(0)}, rows {args.rows}")
    print("# n d k median_ms min_ms")
    for d, k in [(100, 1000), (16, 20), (16, 1000), (32, 200)]:
        g = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randn((args.rows, d), device="cuda", generator=g)
        c = x[:k].clone()
        lloyd_iteration(torch, x, c)  # warm-up
        times = []
        for _ in range(args.reps):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            lloyd_iteration(torch, x, c)
            stop.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(stop))
        print(f"{args.rows} {d} {k} {statistics.median(times):.3f} {min(times):.3f}", flush=True)
        del x, c
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
