"""PyTorch peer of mlforge's factorization machines for bench/fm_vs_torch.sh: the same model, loss,
optimizer, initialisation and mini-batches, trained on the same recordIO file, timed without the
data loading (every mini-batch is a tensor on the device before the clock starts).

Model (SPEC.md 4.4, kernels/fm_step.h), for a row with non-zeros x_i:
    yhat = w0 + sum_i w_i x_i + 1/2 [ ||sum_i v_i x_i||^2 - sum_i x_i^2 ||v_i||^2 ]
Loss: (yhat - y)^2 / 2 (regressor) or BCE with logits (binary_classifier), averaged over the batch
(mlforge's rescale_grad = 1 / batch rows). Optimizer: SageMaker's default Adam with MXNet's lazy
row-sparse update: torch.optim.SparseAdam on w and v (only the rows a batch touches move; the step
count is global, as in mlforge) and Adam on w0, with the per-group learning rates and L2 weight
decays of SageMaker's defaults (bias 0.1 / 0.01, linear 0.001 / 0.001, factors 0.0001 / 0.00001).
SparseAdam has no weight decay, so wd * w of the touched rows is added to the coalesced gradient
before the step (what MXNet's lazy Adam does); --no-wd drops it on both sides of a comparison.

Three formulations (--impl): `bag` uses nn.EmbeddingBag(sparse=True, mode="sum") with the values
as per_sample_weights for sum_i w_i x_i and sum_i v_i x_i (plus a gather of v for the squared
term); `embed` gathers v and w once per non-zero (F.embedding, sparse gradients) and sums per row
(a reshape when every row of the batch has the same number of non-zeros, as one-hot fields do,
else index_add_); both step with SparseAdam. `manual` gathers the same way but as autograd leaves
and applies the lazy update itself (torch.unique, index_add_ of the gradient rows, index_select /
index_copy_ of the touched rows of w, v and the moments), with MXNet's exact Adam formula: it
avoids SparseAdam's coalesce and sparse_mask, which dominate its step on CPU. `all` runs the
three (bench/fm_vs_torch.sh reports the faster of bag / embed, and manual). Prints one RESULT line
per (impl, device):

    python bench/fm_torch.py --train FILE --num-factors 16 --epochs 2 --threads 2 --device cpu
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import mlforge_files  # noqa: E402
import numpy as np  # noqa: E402


def read_csr(path, limit_rows=0):
    t0 = time.perf_counter()
    indptr, indices, values, labels, cols = mlforge_files.read_recordio_csr(path)
    if labels is None:
        raise SystemExit(f"{path}: the records carry no labels")
    rows = len(indptr) - 1
    if limit_rows:
        rows = min(rows, limit_rows)
    return (indptr, indices, values, labels, cols, rows), time.perf_counter() - t0


def make_batches(torch, csr, batch_size, device):
    """The mini-batches of the file's rows in order, as tensors on `device`."""
    indptr, indices, values, labels, cols, rows = csr
    batches = []
    for lo in range(0, rows, batch_size):
        hi = min(rows, lo + batch_size)
        a, b = int(indptr[lo]), int(indptr[hi])
        counts = indptr[lo + 1:hi + 1] - indptr[lo:hi]
        fixed = int(counts[0]) if (counts == counts[0]).all() and counts[0] > 0 else 0
        t = lambda x, dt: torch.as_tensor(x, dtype=dt).to(device)  # noqa: E731
        batches.append({
            "idx": t(indices[a:b], torch.int64),
            "offsets": t(indptr[lo:hi] - a, torch.int64),
            "vals": t(values[a:b], torch.float32),
            "row": t(np.repeat(np.arange(hi - lo), counts), torch.int64),
            "y": t(labels[lo:hi], torch.float32),
            "n": hi - lo,
            "fixed": fixed,  # non-zeros of every row, or 0 when they differ
        })
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batches


class FM:
    """The parameters, the forward pass of either formulation and the optimizers."""

    def __init__(self, torch, d, k, impl, device, args, seed):
        nn = torch.nn
        g = torch.Generator().manual_seed(seed)
        self.torch, self.impl, self.k = torch, impl, k
        # SageMaker's default initialisation: normal with sigma 0.01 (bias, linear), 0.001 (factors).
        self.w0 = nn.Parameter((torch.randn(1, generator=g) * 0.01).to(device))
        self.w = nn.EmbeddingBag(d, 1, mode="sum", sparse=True).to(device)
        self.v = nn.EmbeddingBag(d, k, mode="sum", sparse=True).to(device)
        with torch.no_grad():
            self.w.weight.copy_(torch.randn(d, 1, generator=g) * 0.01)
            self.v.weight.copy_(torch.randn(d, k, generator=g) * 0.001)
        self.wd_linear = 0.0 if args.no_wd else args.linear_wd
        self.wd_factors = 0.0 if args.no_wd else args.factors_wd
        bias_wd = 0.0 if args.no_wd else args.bias_wd
        groups = [{"params": [self.w.weight], "lr": args.linear_lr}, {"params": [self.v.weight], "lr": args.factors_lr}]
        self.optimizer, self.t = args.optimizer, 0
        self.lr_linear, self.lr_factors = args.linear_lr, args.factors_lr
        if impl == "manual":  # plain tensors and hand-written lazy updates (see manual_update)
            self.w.weight.requires_grad_(False)
            self.v.weight.requires_grad_(False)
            self.state = {name: (torch.zeros_like(p), torch.zeros_like(p))
                          for name, p in (("w", self.w.weight), ("v", self.v.weight))}
        if args.optimizer == "adam":
            self.dense_opt = torch.optim.Adam([self.w0], lr=args.bias_lr, betas=(0.9, 0.999), eps=1e-8,
                                              weight_decay=bias_wd)
            self.sparse_opt = torch.optim.SparseAdam(groups, betas=(0.9, 0.999), eps=1e-8)
        else:  # plain SGD; sparse gradients update only the touched rows
            self.dense_opt = torch.optim.SGD([self.w0], lr=args.bias_lr, weight_decay=bias_wd)
            self.sparse_opt = torch.optim.SGD(groups, lr=args.linear_lr)
        if impl == "manual":
            self.sparse_opt = None
        self.binary = args.predictor_type == "binary_classifier"

    def forward(self, b):
        torch = self.torch
        F = torch.nn.functional
        n, idx, vals = b["n"], b["idx"], b["vals"]
        if self.impl == "manual":
            # Gathered rows as autograd leaves: backward gives one gradient row per non-zero.
            self.xw_rows = self.w.weight.index_select(0, idx).requires_grad_()
            self.xv_rows = self.v.weight.index_select(0, idx).requires_grad_()
            xv = self.xv_rows * vals.unsqueeze(1)
            xw = self.xw_rows.squeeze(1) * vals
            p = b["fixed"]
            if p:
                s, sq, lin = xv.view(n, p, self.k).sum(1), (xv * xv).view(n, p * self.k).sum(1), xw.view(n, p).sum(1)
            else:
                s = torch.zeros(n, self.k, device=xv.device).index_add_(0, b["row"], xv)
                sq = torch.zeros(n, device=xv.device).index_add_(0, b["row"], (xv * xv).sum(1))
                lin = torch.zeros(n, device=xv.device).index_add_(0, b["row"], xw)
        elif self.impl == "bag":
            lin = self.w(idx, b["offsets"], per_sample_weights=vals).squeeze(1)
            s = self.v(idx, b["offsets"], per_sample_weights=vals)
            vv = F.embedding(idx, self.v.weight, sparse=True)
            q = (vv * vv).sum(1) * (vals * vals)
            sq = q.view(n, b["fixed"]).sum(1) if b["fixed"] else torch.zeros(n, device=q.device).index_add_(0, b["row"], q)
        else:
            xv = F.embedding(idx, self.v.weight, sparse=True) * vals.unsqueeze(1)
            xw = F.embedding(idx, self.w.weight, sparse=True).squeeze(1) * vals
            if b["fixed"]:
                p = b["fixed"]
                s = xv.view(n, p, self.k).sum(1)
                sq = (xv * xv).view(n, p * self.k).sum(1)
                lin = xw.view(n, p).sum(1)
            else:
                s = torch.zeros(n, self.k, device=xv.device).index_add_(0, b["row"], xv)
                sq = torch.zeros(n, device=xv.device).index_add_(0, b["row"], (xv * xv).sum(1))
                lin = torch.zeros(n, device=xv.device).index_add_(0, b["row"], xw)
        return self.w0 + lin + 0.5 * ((s * s).sum(1) - sq)

    def step(self, b):
        torch = self.torch
        F = torch.nn.functional
        yhat = self.forward(b)
        if self.binary:
            loss = F.binary_cross_entropy_with_logits(yhat, b["y"])
        else:
            loss = 0.5 * torch.mean((yhat - b["y"]) ** 2)
        self.dense_opt.zero_grad(set_to_none=True)
        if self.sparse_opt is not None:
            self.sparse_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.t += 1
        if self.impl == "manual":
            self.manual_update(b["idx"])
            self.dense_opt.step()
            return loss.detach()
        for param, wd in ((self.w.weight, self.wd_linear), (self.v.weight, self.wd_factors)):
            if wd > 0:  # lazy L2: only the touched rows, as MXNet's row-sparse Adam
                g = param.grad.coalesce()
                rows = g.indices()
                param.grad = torch.sparse_coo_tensor(rows, g.values() + wd * param.detach()[rows[0]], g.shape,
                                                     is_coalesced=True)
        self.sparse_opt.step()
        self.dense_opt.step()
        return loss.detach()


    def manual_update(self, idx):
        """Sums the per-non-zero gradients per touched row and applies MXNet's lazy update (the
        formula of kernels/fm_step.h) to those rows only, with index_select / index_copy_."""
        torch = self.torch
        rows, inverse = torch.unique(idx, return_inverse=True)
        for name, param, leaf, lr, wd in (("w", self.w.weight, self.xw_rows, self.lr_linear, self.wd_linear),
                                          ("v", self.v.weight, self.xv_rows, self.lr_factors, self.wd_factors)):
            g = torch.zeros(rows.numel(), param.shape[1], device=param.device).index_add_(0, inverse, leaf.grad)
            cur = param.index_select(0, rows)
            if wd > 0:
                g += wd * cur
            if self.optimizer == "sgd":
                param.index_copy_(0, rows, cur - lr * g)
                continue
            m_all, u_all = self.state[name]
            m = m_all.index_select(0, rows).mul_(0.9).add_(g, alpha=0.1)
            u = u_all.index_select(0, rows).mul_(0.999).addcmul_(g, g, value=0.001)
            step = lr * (1 - 0.999 ** self.t) ** 0.5 / (1 - 0.9 ** self.t)
            param.index_copy_(0, rows, cur - step * m / (u.sqrt() + 1e-8))
            m_all.index_copy_(0, rows, m)
            u_all.index_copy_(0, rows, u)


def run(torch, args, impl, device, csr, batches, load_s):
    cols, rows = csr[4], csr[5]
    nnz = int(csr[0][rows])
    d = args.feature_dim or cols
    if d < cols:
        raise SystemExit(f"--feature-dim {d} is below the file's width {cols}")
    fm = FM(torch, d, args.num_factors, impl, device, args, args.seed)
    epoch_s, epoch_loss = [], []
    for _ in range(args.epochs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        total = torch.zeros((), device=device)
        for b in batches:
            total += fm.step(b) * b["n"]
        loss = float(total)  # also waits for the device
        epoch_s.append(time.perf_counter() - t0)
        epoch_loss.append(loss / rows)
    train_s = sum(epoch_s)
    # Progressive loss of each epoch (before each step's update), as mlforge's `train mse` lines.
    metric, scale = ("train_logloss", 1.0) if fm.binary else ("train_mse", 2.0)
    per_epoch = ",".join(f"{rows / s:.0f}" for s in epoch_s)
    print(f"RESULT peer=torch impl={impl} device={device.type} optimizer={args.optimizer} threads={torch.get_num_threads()} "
          f"k={args.num_factors} rows={rows} nnz={nnz} cols={d} epochs={args.epochs} "
          f"batch={args.mini_batch_size} load_s={load_s:.2f} train_s={train_s:.3f} "
          f"examples_per_s={rows * args.epochs / train_s:.0f} best_epoch_examples_per_s={rows / min(epoch_s):.0f} "
          f"epoch_examples_per_s={per_epoch} {metric}={scale * epoch_loss[-1]:.6f} first_epoch_{metric}={scale * epoch_loss[0]:.6f}",
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True, help="recordIO-protobuf file with labels (sparse or dense rows)")
    ap.add_argument("--feature-dim", type=int, default=0, help="d (default: the file's width)")
    ap.add_argument("--num-factors", type=int, default=16)
    ap.add_argument("--predictor-type", choices=["regressor", "binary_classifier"], default="regressor")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--mini-batch-size", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--device", choices=["cpu", "cuda", "both"], default="cpu")
    ap.add_argument("--impl", choices=["bag", "embed", "manual", "all"], default="all")
    ap.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                    help="adam: SparseAdam + Adam (SageMaker's default); sgd: SGD on the sparse gradients")
    ap.add_argument("--limit-rows", type=int, default=0, help="train on the first N rows only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bias-lr", type=float, default=0.1)
    ap.add_argument("--linear-lr", type=float, default=0.001)
    ap.add_argument("--factors-lr", type=float, default=0.0001)
    ap.add_argument("--bias-wd", type=float, default=0.01)
    ap.add_argument("--linear-wd", type=float, default=0.001)
    ap.add_argument("--factors-wd", type=float, default=0.00001)
    ap.add_argument("--no-wd", action="store_true", help="no weight decay anywhere (plain SparseAdam)")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("SKIP: torch is not installed (bash scripts/pyenv.sh torch)", file=sys.stderr)
        return 77
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, cuda available "
          f"{torch.cuda.is_available()}", flush=True)
    devices = ["cpu", "cuda"] if args.device == "both" else [args.device]
    impls = ["bag", "embed", "manual"] if args.impl == "all" else [args.impl]
    csr, read_s = read_csr(args.train, args.limit_rows)
    status = 0
    for dev in devices:
        if dev == "cuda" and not torch.cuda.is_available():
            print("SKIP: torch sees no CUDA device", flush=True)
            status = status or (77 if args.device == "cuda" else 0)
            continue
        if dev == "cuda":
            print(f"# {torch.cuda.get_device_name(0)}", flush=True)
        t0 = time.perf_counter()
        batches = make_batches(torch, csr, args.mini_batch_size, torch.device(dev))
        load_s = read_s + time.perf_counter() - t0
        for impl in impls:
            run(torch, args, impl, torch.device(dev), csr, batches, load_s)
            if dev == "cuda":
                torch.cuda.empty_cache()
        del batches
    return status


if __name__ == "__main__":
    sys.exit(main())
