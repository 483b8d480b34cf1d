"""The OSRM subspace per layer (docs/osrm.md): the paper's objective and the contrastive extension.

Paper (objective None; the config's ``osrm.objective: null``): A_t = argmin ||A H_{¬t}^T||_F^2 s.t.
A A^T = I_r. With G = H^T H (d_in x d_in), ||A H^T||_F^2 = tr(A G A^T), so by Ky Fan the optimum is the r
eigenvectors of G with the smallest eigenvalues, as rows of A.

Contrast (objective 'contrast', this project's extension): A_t's rows span the top-r generalised
eigenvectors of S_t v = mu (S_¬t + eps I) v, with S_j = G_j / n_j (every task weighs the same) and
eps = rho tr(S_¬t) / d_in. With B = S_¬t + eps I they maximise the ratio trace tr((A B A^T)^{-1} A S_t A^T),
whose maximum is the sum of the r largest mu (invariant to A -> M A, so the orthonormalised rows attain
it); they do not maximise the trace ratio tr(A S_t A^T) / tr(A B A^T), whose optimum for r > 1 needs an
iteration (docs/osrm.md, "The contrastive objective").

Everything is solved in float64. Degenerate eigenvalues (e.g. the null space of a rank-deficient G)
leave the basis inside that eigenspace arbitrary; LAPACK's choice is not stable across builds. We fix it
basis-independently: with Q (d x m) spanning the eigenvalue cluster that contains position r, the c
missing rows are orth(Q Q^T Z) for a seeded Gaussian Z (d x c) — the projector Q Q^T is unique, so the
result does not depend on which basis LAPACK returned. Orthonormalisation is QR with a positive-diagonal
R. The eigenvectors strictly before the cluster get the sign that makes their largest-|.| entry positive.
The r-th row always goes through the seeded pick, even when its eigenvalue is not tied (m = 1): then
the pick is that eigenvector with a seeded sign. Kept so that existing subspaces stay byte-identical.
"""

from __future__ import annotations

from typing import Iterable, Protocol

import torch

from osrm_core import regime
from osrm_core.errors import OsrmError


class FeatureSource(Protocol):
    """What the solver reads of one task's feature cache (stages/io/feature_store.py's FeatureCache)."""

    def rows(self, module: str) -> torch.Tensor: ...  # k x d_in float32 sample-mean rows
    def gram(self, module: str) -> torch.Tensor: ...  # d_in x d_in float64 token Gram
    def count(self, module: str) -> int: ...  # token count


def task_gram(cache: FeatureSource, module: str, estimator: str) -> tuple[torch.Tensor, int]:
    """The task's contribution G_j (d_in x d_in) to G = H^T H under an estimator, and its row count n_j."""
    if estimator == "token":
        return cache.gram(module), cache.count(module)
    rows = cache.rows(module)
    if estimator == "sample-mean":
        return sample_gram(rows), rows.shape[0]
    return task_mean_gram(rows), 1


def gram_total(grams: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum_j G_j (d_in x d_in, float64), summed in the dict's order (the order fixes the float64 bits)."""
    total = torch.zeros_like(next(iter(grams.values())), dtype=torch.float64)
    for g in grams.values():
        total += g.double()
    return total


def leave_one_out(grams: dict[str, torch.Tensor], counts: dict[str, int], task: str,
                  total: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """G_{¬t} = sum_j G_j - G_t (d_in x d_in, float64) and n_{¬t}; pass total = gram_total(grams) to share it."""
    if task not in grams:
        raise OsrmError(f"task '{task}' has no features among {sorted(grams)}")
    total = gram_total(grams) if total is None else total
    return total - grams[task].double(), sum(counts.values()) - counts[task]


def sample_gram(rows: torch.Tensor) -> torch.Tensor:
    """R^T R for rows R (n x d_in) -> (d_in x d_in) float64."""
    r = rows.double()
    return r.T @ r


def task_mean_gram(rows: torch.Tensor) -> torch.Tensor:
    """m m^T for the task mean m of rows R (n x d_in): the task contributes one row (released code)."""
    m = rows.double().mean(0, keepdim=True)
    return m.T @ m


def _fix_signs(vecs: torch.Tensor) -> torch.Tensor:
    """Columns of vecs (d x c) with their largest-|.| entry made positive."""
    idx = vecs.abs().argmax(0)
    sign = torch.sign(vecs[idx, torch.arange(vecs.shape[1])])
    sign[sign == 0] = 1
    return vecs * sign


def _orth(m: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns spanning m (d x c), QR with positive diag(R) for uniqueness."""
    q, r = torch.linalg.qr(m)
    s = torch.sign(torch.diagonal(r))
    s[s == 0] = 1
    return q * s


def smallest_subspace(gram: torch.Tensor, rank: int, seed: int = 42, rel_tol: float = 1e-9):
    """Rows spanning the `rank` smallest eigen-directions of a symmetric gram (d x d).

    Returns (A: rank x d float64 with A A^T = I, eigvals: rank float64 ascending, degenerate: int =
    how many rows were chosen inside a degenerate cluster, 0 when the rank-th eigenvalue is not tied).
    """
    d = gram.shape[0]
    if not 1 <= rank < d:
        raise OsrmError(f"lora.rank={rank} must be between 1 and d_in-1={d - 1} — lower lora.rank")
    g = gram.double()
    g = 0.5 * (g + g.T)
    vals, vecs = torch.linalg.eigh(g)
    tol = rel_tol * max(float(vals.abs().max()), 1e-300)
    boundary = vals[rank - 1]
    cluster = (vals - boundary).abs() <= tol
    below = int((~cluster[:rank]).sum())  # strictly-smaller eigenvalues outside the cluster
    fixed = _fix_signs(vecs[:, :below])
    c = rank - below  # >= 1: position rank-1 is always in its own cluster
    q = vecs[:, cluster]
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(d, c, generator=gen, dtype=torch.float64)
    pick = _orth(q @ (q.T @ z))
    a = torch.cat([fixed, pick], dim=1).T.contiguous()
    degenerate = c if int(cluster.sum()) > 1 else 0
    return a, (a @ g @ a.T).diagonal().clone(), degenerate


def contrast_subspace(s_own: torch.Tensor, s_other: torch.Tensor, rank: int, ridge: float, seed: int = 42):
    """Rows spanning the top-`rank` generalised eigenvectors of S_own v = mu (S_other + eps I) v (d x d each).

    They maximise the ratio trace tr((A B A^T)^{-1} A S_own A^T), B = S_other + eps I, at sum(mu) — not the
    trace ratio tr(A S_own A^T) / tr(A B A^T) (module docstring).

    eps = ridge * tr(S_other) / d. Whitened with the Cholesky factor L of B = S_other + eps I:
    C = L^{-1} S_own L^{-T}, top eigenvectors u of C (ties picked as in smallest_subspace), v = L^{-T} u.
    Returns (A: rank x d float64, rows = orth(v) with the largest-|.|-positive sign rule and QR with a
    positive diagonal, mu: rank float64 descending, degenerate: int, eps: float).
    """
    d = s_other.shape[0]
    eps = ridge * float(torch.trace(s_other.double())) / d
    if not eps > 0:
        raise OsrmError("osrm.objective=contrast: the other tasks' features are all zero at a layer — "
                        "rerun `osrm extract-features` and check the cache")
    b = s_other.double() + eps * torch.eye(d, dtype=torch.float64)
    low = torch.linalg.cholesky(0.5 * (b + b.T))
    x = torch.linalg.solve_triangular(low, s_own.double(), upper=False)  # L^{-1} S_own
    c = torch.linalg.solve_triangular(low, x.T, upper=False)  # L^{-1} S_own L^{-T} (S_own symmetric)
    u, neg_mu, degenerate = smallest_subspace(-c, rank, seed)  # top of C = bottom of -C
    v = torch.linalg.solve_triangular(low.T, u.T, upper=True)  # d x rank generalised eigenvectors
    return _orth(_fix_signs(v)).T.contiguous(), -neg_mu, degenerate, eps


def objective(a: torch.Tensor, gram: torch.Tensor) -> float:
    """||A H^T||_F^2 = tr(A G A^T) for A (r x d) and G = H^T H (d x d)."""
    a = a.double()
    return float(torch.einsum("ij,jk,ik->", a, gram.double(), a))


def energy_ratio(q: torch.Tensor, s: torch.Tensor) -> float:
    """tr(Q S Q^T) / tr(S) * d / r for Q (r x d, orthonormal rows): the span's energy share vs a random one (= 1)."""
    tr = float(torch.trace(s.double()))
    r, d = q.shape
    return objective(q, s) / tr * d / r if tr > 0 else 0.0


def random_orthonormal(rank: int, d: int, seed: int) -> torch.Tensor:
    """A seeded random A (rank x d, float64) with orthonormal rows: the no-OSRM baseline."""
    gen = torch.Generator().manual_seed(seed)
    return _orth(torch.randn(d, rank, generator=gen, dtype=torch.float64)).T.contiguous()


def polar(a: torch.Tensor) -> torch.Tensor:
    """Nearest matrix with orthonormal rows (Procrustes): U V^T from the SVD A = U S V^T."""
    u, _, vh = torch.linalg.svd(a.double(), full_matrices=False)
    return (u @ vh).to(a.dtype)


def normalised_distance(a_end: torch.Tensor, a_start: torch.Tensor) -> float:
    """||A_end - A_0||_F / ||A_0||_F (the paper's Figure 3)."""
    return float((a_end.double() - a_start.double()).norm() / a_start.double().norm().clamp_min(1e-300))


def _report(a: torch.Tensor, gram: torch.Tensor, eigvals: torch.Tensor, degenerate: int, seed: int) -> dict:
    """Report row of A (r x d, float64) against G_¬t (d x d): the objective ||A H^T||_F^2 (= sum of the chosen
    eigenvalues), the same for a random orthonormal A, their ratio, how many rows were picked inside a degenerate
    eigenspace, the chosen eigenvalues (ascending) and tr(G_¬t)."""
    obj = objective(a, gram)
    rand = objective(random_orthonormal(a.shape[0], gram.shape[0], seed), gram)
    return {
        "objective": obj,
        "random_objective": rand,
        "ratio_to_random": obj / rand if rand > 0 else 0.0,
        "degenerate_rows": degenerate,
        "eigenvalues": [float(v) for v in eigvals],
        "trace": float(torch.trace(gram.double())),
    }


class _Layer:
    """One layer's per-task statistics, summed once: G_j, n_j, S_j = G_j / n_j and both totals (d x d float64)."""

    def __init__(self, caches: dict[str, FeatureSource], module: str, estimator: str):
        self.grams, self.counts = {}, {}
        for t, cache in caches.items():
            self.grams[t], self.counts[t] = task_gram(cache, module, estimator)
        self.total = gram_total(self.grams)
        self.moments = {t: g.double() / max(self.counts[t], 1) for t, g in self.grams.items()}
        self.moment_total = gram_total(self.moments)

    def moments_of(self, task: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(S_t, S_¬t): S_¬t is the MEAN of the other tasks' S_j (the sum gives the same subspace, see solve_subspaces)."""
        return self.moments[task], (self.moment_total - self.moments[task]) / (len(self.moments) - 1)


def _solve_target(layer: _Layer, task: str, estimator: str, rank: int, seed: int, objective: str | None,
                  ridge: float) -> tuple[torch.Tensor, dict]:
    """A_t (rank x d, float64, orthonormal rows) at one layer under `objective` (None or 'contrast'), its report row."""
    g, n = leave_one_out(layer.grams, layer.counts, task, layer.total)
    if estimator == "sample-mean" and n < rank:
        raise OsrmError(f"osrm.k: only {n} feature rows from other tasks, fewer than lora.rank={rank} — raise osrm.k")
    s_own, s_other = layer.moments_of(task)
    if objective == "contrast":
        if layer.counts[task] < rank:
            raise OsrmError(f"osrm.k: task '{task}' has only {layer.counts[task]} feature rows, fewer than "
                            f"lora.rank={rank}, too few for {rank} contrast directions — raise osrm.k")
        a, mu, degenerate, eps = contrast_subspace(s_own, s_other, rank, ridge, seed)
        row = _report(a, g, mu, degenerate, seed) | {"ridge": eps}
    else:
        a, eigvals, degenerate = smallest_subspace(g, rank, seed)
        row = _report(a, g, eigvals, degenerate, seed)
    row["rows"] = n
    row["own_energy_ratio"] = energy_ratio(a, s_own)
    row["other_energy_ratio"] = energy_ratio(a, s_other)
    row["regime"] = regime.layer_regime(a, g, n)  # null space of G_¬t, captured energy (docs/regimes.md)
    return a, row


def solve_subspaces(caches: dict[str, FeatureSource], modules: Iterable[str], targets: list[str], estimator: str,
                    rank: int, seed: int, objective: str | None = None,
                    ridge: float = 1e-2) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, dict[str, dict]]]:
    """A_t (rank x d_in, float32) and a report row for every target task and module.

    estimator: 'sample-mean', 'task-mean' or 'token' (task_gram); objective: None (the paper's) or 'contrast'
    with ridge rho (contrast_subspace); the pipeline's osrm section holds all three.

    caches: every task of the suite (their order fixes the float64 summation order); modules: any
    iterable of module names (e.g. wrapped in a progress bar), read once each. Per module each task's
    G_j (task_gram) is formed once and sum_j G_j and sum_j S_j are summed once; G_¬t = sum - G_t.
    For contrast, S_¬t is the mean of the other tasks' S_j, not their sum: the two differ by the
    factor T-1, and eps = rho tr(S_¬t)/d follows it, so the subspace is the same; the mean keeps the
    reported mu comparable between suites with different task counts.
    seed: the run's seed (the deterministic pick inside degenerate eigenspaces).
    Returns (tensors[task][module], report[task][module]).
    """
    if len(caches) < 2:
        raise OsrmError("tasks: OSRM needs at least 2 tasks (the subspace avoids the OTHER tasks' features) — add tasks")
    missing = sorted(set(targets) - set(caches))
    if missing:
        raise OsrmError(f"task '{missing[0]}' has no features among {sorted(caches)}")
    tensors, report = {t: {} for t in targets}, {t: {} for t in targets}
    for module in modules:
        layer = _Layer(caches, module, estimator)
        for t in targets:
            a, report[t][module] = _solve_target(layer, t, estimator, rank, seed, objective, ridge)
            tensors[t][module] = a.float()
    return tensors, report
