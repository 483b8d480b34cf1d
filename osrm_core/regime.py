"""Which regime an OSRM subspace is in: can A_t be exactly orthogonal to the other tasks' features? (docs/regimes.md)

With H_¬t the n x d_in rows the other tasks contribute (sample-mean: (T-1)·k rows; task-mean: T-1 rows; token:
every token) and S_¬t their second moment (any positive multiple of H^T H: the sum of Grams or the mean of the
tasks' S_j span the same column space), A_t H_¬t^T = 0 is possible only if S_¬t has a null space of dimension
>= r. Its dimension is d_in - rank(S_¬t), and rank <= min(n, d_in).

Numerical rank: the eigenvalues of S_¬t (float64, symmetrised) above REL_TOL · lambda_max. REL_TOL = 1e-10 on the
eigenvalues is 1e-5 on the singular values of H: far above the float64 eigensolver's noise (~ d_in · 2.2e-16 ·
lambda_max) and the float32 rounding of the stored features (~1e-7 relative in sigma, 1e-14 in lambda), far
below any direction a feature actually uses.

Captured energy: tr(A S_¬t A^T) / tr(S_¬t) · d_in / r, the share of the other tasks' energy inside the span of
A relative to a random r-dimensional subspace (whose expected share is r / d_in, so a random A scores 1). 0 in
the null-space regime; < 1 means A avoids the other tasks better than chance.

Pure functions of plain tensors and ints; stages/build_subspace.py and stages/report.py assemble them.
"""

from __future__ import annotations

from statistics import median

import torch

REL_TOL = 1e-10
TOKEN_WARN = 0.5  # held-out other-task token energy in A's span (x random) above which the line warns (docs/regimes.md)
TOLERANCE = "eigenvalues of S_not_t above 1e-10 x the largest (singular values of H above 1e-5 x the largest)"


def _sym(s: torch.Tensor) -> torch.Tensor:
    s = s.double()
    return 0.5 * (s + s.T)


def numerical_rank(moment: torch.Tensor, rel_tol: float = REL_TOL) -> int:
    """Eigenvalues of a symmetric PSD moment (d x d) above rel_tol · the largest; 0 for an all-zero moment."""
    vals = torch.linalg.eigvalsh(_sym(moment))
    top = float(vals.max()) if vals.numel() else 0.0
    if not top > 0:
        return 0
    return int((vals > rel_tol * top).sum())


def null_dim(d_in: int, rank: int) -> int:
    """Dimension of the null space left: d_in - rank."""
    return int(d_in) - int(rank)


def captured_energy(a: torch.Tensor, moment: torch.Tensor) -> float:
    """tr(A S A^T) / tr(S) · d / r for A (r x d, orthonormal rows) and S (d x d): 1 = a random subspace, 0 = null space."""
    a = a.double()
    tr = float(torch.trace(moment.double()))
    r, d = a.shape
    if not tr > 0:
        return 0.0
    return max(0.0, float(torch.einsum("ij,jk,ik->", a, _sym(moment), a)) / tr * d / r)  # >= 0 up to rounding


def layer_regime(a: torch.Tensor, moment: torch.Tensor, rows: int, rel_tol: float = REL_TOL) -> dict:
    """One layer's regime: rows the other tasks contribute, d_in, rank of their moment, null dim, whether an exact
    null space of dimension >= r exists, and the captured other-task energy of A vs a random subspace."""
    r, d = a.shape
    rank = numerical_rank(moment, rel_tol)
    left = null_dim(d, rank)
    return {"rows": int(rows), "d_in": int(d), "rank": rank, "null_dim": left, "exact": left >= r,
            "captured_energy_vs_random": captured_energy(a, moment)}


def other_token_moment(grams: dict[str, torch.Tensor], counts: dict[str, int], task: str) -> torch.Tensor:
    """The other tasks' token second moment (d x d, float64): the mean over j != t of G_j / n_j, G_j the token Gram of
    task j's held-out rows (sum of h h^T over their real tokens) and n_j its token count."""
    others = [grams[j].double() / max(counts[j], 1) for j in grams if j != task]
    return sum(others[1:], others[0]) / len(others)


def summarise(layers: list[dict], rank: int) -> dict:
    """Numbers over layer_regime rows (any set: one task's layers, or every task's): layers, how many have an exact
    null space (null_dim >= rank), medians of null dim and captured energy, the range of rows and of d_in."""
    if not layers:
        return {}
    return {"layers": len(layers), "exact_layers": sum(1 for x in layers if x["null_dim"] >= rank), "lora_rank": int(rank),
            "median_null_dim": float(median(x["null_dim"] for x in layers)),
            "median_captured_energy_vs_random": float(median(x["captured_energy_vs_random"] for x in layers)),
            "rows_min": min(x["rows"] for x in layers), "rows_max": max(x["rows"] for x in layers),
            "d_in_min": min(x["d_in"] for x in layers), "d_in_max": max(x["d_in"] for x in layers)} | (
        {"median_token_energy_vs_random": float(median(x["token_energy_vs_random"] for x in layers))}
        if all("token_energy_vs_random" in x for x in layers) else {})


def _span(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def regime_line(summary: dict, where: str = "layers") -> str:
    """One line saying which regime a summarise() result is in (what `osrm build-subspace` prints per arm)."""
    if not summary:
        return "no layers"
    m, exact, r = summary["layers"], summary["exact_layers"], summary["lora_rank"]
    rows, d = _span(summary["rows_min"], summary["rows_max"]), _span(summary["d_in_min"], summary["d_in_max"])
    cmp = "≥" if summary["rows_min"] >= summary["d_in_max"] else ("<" if summary["rows_max"] < summary["d_in_min"] else "vs")
    given = f"other tasks give {rows} rows {cmp} d_in {d}"
    energy = f"captured other-task energy {summary['median_captured_energy_vs_random']:.3g}× a random subspace (median)"
    if exact == 0:
        null = "" if summary["median_null_dim"] == 0 else f", median null dim {summary['median_null_dim']:g} < r={r}"
        return (f"no exact null space at any of {m} {where} ({given}{null}): OSRM's A is least-energy, not orthogonal; "
                f"{energy}{_tokens(summary)} — docs/regimes.md")
    what = f"all {m}" if exact == m else f"{exact} of {m}"
    return (f"exact null space (dim ≥ r={r}) at {what} {where} ({given}, median null dim {summary['median_null_dim']:g}): "
            f"A can be orthogonal to the other tasks' estimator rows there; {energy}{_tokens(summary)} — docs/regimes.md")


def _tokens(summary: dict) -> str:
    """What the merge feels: the other tasks' held-out TOKEN energy in A's span (the estimator's rows are means of
    tokens; A orthogonal to the means can still carry the tokens). Warns when it is over half a random A's."""
    e = summary.get("median_token_energy_vs_random")
    if e is None:
        return ""
    note = (" — orthogonal to the estimator's rows, not to the tokens: on MiniLM such runs merged no better than a random "
            "orthonormal A" if e > TOKEN_WARN else "")
    return f"; their held-out tokens: {e:.2f}× a random subspace's energy (median){note}"
