"""The OSRM subspace (DESIGN.md §2): A_t = argmin ||A H_{¬t}^T||_F^2 s.t. A A^T = I_r.

With G = H^T H (d_in x d_in), ||A H^T||_F^2 = tr(A G A^T), so by Ky Fan the optimum is the r eigenvectors
of G with the smallest eigenvalues, as rows of A. Everything is solved in float64.

Degenerate eigenvalues (e.g. the null space of a rank-deficient G) leave the basis inside that
eigenspace arbitrary; LAPACK's choice is not stable across builds. We fix it basis-independently:
with Q (d x m) spanning the degenerate cluster that straddles position r, the c missing rows are
orth(Q Q^T Z) for a seeded Gaussian Z (d x c) — the projector Q Q^T is unique, so the result does not
depend on which basis LAPACK returned. Orthonormalisation is QR with a positive-diagonal R.
Non-degenerate eigenvectors are unique up to sign; the sign makes the largest-|.| entry positive.
"""

from __future__ import annotations

import torch

from osrm_core.errors import OsrmError


def leave_one_out(grams: dict[str, torch.Tensor], counts: dict[str, int], task: str) -> tuple[torch.Tensor, int]:
    """G_{¬t} = sum_j G_j - G_t (d_in x d_in, float64) and n_{¬t}; one pass, no O(T^2) recomputation."""
    if task not in grams:
        raise OsrmError(f"task '{task}' has no features among {sorted(grams)}")
    total = torch.zeros_like(next(iter(grams.values())), dtype=torch.float64)
    for g in grams.values():
        total += g.double()
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
    """Rows spanning the `rank` smallest eigen-directions of a PSD gram (d x d).

    Returns (A: rank x d float64 with A A^T = I, eigvals: rank float64 ascending, degenerate: int =
    how many rows were chosen inside a degenerate cluster).
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
    c = rank - below
    if c:
        q = vecs[:, cluster]
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(d, c, generator=gen, dtype=torch.float64)
        pick = _orth(q @ (q.T @ z))
        basis = torch.cat([fixed, pick], dim=1)
    else:
        basis = fixed
    a = basis.T.contiguous()
    return a, (a @ g @ a.T).diagonal().clone(), c


def objective(a: torch.Tensor, gram: torch.Tensor) -> float:
    """||A H^T||_F^2 = tr(A G A^T) for A (r x d) and G = H^T H (d x d)."""
    a = a.double()
    return float(torch.einsum("ij,jk,ik->", a, gram.double(), a))


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


def solve_layer(gram: torch.Tensor, rank: int, seed: int) -> tuple[torch.Tensor, dict]:
    """A (rank x d_in, float32) for one layer, plus its report row.

    Report: objective ||A H^T||_F^2 (= sum of the chosen eigenvalues), the same for a random
    orthonormal A, their ratio, and how many rows were picked inside a degenerate eigenspace.
    """
    a, eigvals, degenerate = smallest_subspace(gram, rank, seed)
    obj = objective(a, gram)
    rand = objective(random_orthonormal(rank, gram.shape[0], seed), gram)
    row = {
        "objective": obj,
        "random_objective": rand,
        "ratio_to_random": obj / rand if rand > 0 else 0.0,
        "degenerate_rows": degenerate,
        "eigenvalues": [float(v) for v in eigvals],
        "trace": float(torch.trace(gram.double())),
    }
    return a.float(), row
