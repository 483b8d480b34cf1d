"""What a conversion keeps of a task, and a post-hoc projection that keeps it (docs/osrm.md, "Convert").

Per module: a task's update ΔW = s B A (B: d_out x r, A: r x d_in); S_j = G_j / n_j (d_in x d_in) the per-token
second moment of task j's tokens at the module's input (its token Gram over its token count); S_¬t the mean of the
other tasks' S_j. The output shift that ΔW causes on task j's tokens is E_j(ΔW) = tr(ΔW S_j ΔWᵀ) = mean_h ‖ΔW h‖².

A conversion ΔW -> ΔW' keeps, of task t:
    update  ‖ΔW'‖²_F / ‖ΔW‖²_F,   own  E_t(ΔW') / E_t(ΔW),   others  tr(ΔW' S_¬t ΔW'ᵀ) / tr(ΔW S_¬t ΔWᵀ).
Over modules each share is aggregated weighted by its denominator (sum of kept / sum of before): a module with
more of the task's output energy counts more.

The post-hoc projection (`keep_lora`) drops from ΔW's input side the directions where the other tasks' second
moment dominates the task's own. With M = S_¬t + εI (ε = ρ tr(S_¬t) / d_in, the contrast subspace's ridge) the
generalised eigenvectors V of S_t v = μ M v (μ descending) satisfy Vᵀ M V = I, Vᵀ S_t V = diag(μ): the input
features z = Vᵀ x are uncorrelated under both moments (variance μ_i on own tokens, 1 on the others' + ε), and
ΔW = Σ_i (ΔW M v_i) v_iᵀ. Keeping the first k components,
    ΔW' = ΔW P_k,  P_k = M V_k V_kᵀ  (P_kᵀ = V_k V_kᵀ M: the oblique, M-orthogonal projector onto span(V_k)),
keeps own shift Σ_{i<=k} μ_i e_i of Σ_i μ_i e_i and other(+ε) shift Σ_{i<=k} e_i, e_i = ‖ΔW M v_i‖²: additive,
so the smallest k whose cumulative own share reaches `share` is exact. An orthogonal projector onto span(V_k)
would mix in the dropped components (V is not orthogonal) and neither sum would hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

SHARES = ("update", "own", "others")


def shift(a: torch.Tensor, b: torch.Tensor, scale: float, s: torch.Tensor) -> float:
    """tr(ΔW S ΔWᵀ) for ΔW = scale · B A (A: r x d_in, B: d_out x r, S: d_in x d_in), without forming ΔW:
    scale² · tr((BᵀB)(A S Aᵀ)), float64."""
    a64, b64 = a.double(), b.double()
    return scale**2 * float(((b64.T @ b64) * (a64 @ s.double() @ a64.T)).sum())


def energies(a: torch.Tensor, b: torch.Tensor, scale: float, s_own: torch.Tensor, s_others: torch.Tensor) -> dict[str, float]:
    """{update: ‖ΔW‖²_F, own: E_t(ΔW), others: tr(ΔW S_¬t ΔWᵀ)} of one module's update."""
    eye = torch.eye(a.shape[1], dtype=torch.float64)
    return {"update": shift(a, b, scale, eye), "own": shift(a, b, scale, s_own), "others": shift(a, b, scale, s_others)}


def kept(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Shares kept (after / before) and both energies, per quantity of SHARES (share 0 of a zero update)."""
    out = {}
    for q in SHARES:
        out[q] = after[q] / before[q] if before[q] > 0 else 0.0
        out[f"{q}_before"], out[f"{q}_after"] = before[q], after[q]
    return out


def aggregate(per_module: dict[str, dict[str, float]]) -> dict[str, float]:
    """Shares over modules, each weighted by its energy before: sum(after) / sum(before) per quantity."""
    out = {}
    for q in SHARES:
        before = sum(m[f"{q}_before"] for m in per_module.values())
        after = sum(m[f"{q}_after"] for m in per_module.values())
        out[q] = after / before if before > 0 else 0.0
    return out


Update = dict[str, tuple[torch.Tensor, torch.Tensor, float]]  # {module: (A, B, scale)}: the update scale · B A


def report(moments: Callable[[str], tuple[torch.Tensor, torch.Tensor]], before: Update, after: Update) -> dict:
    """What the conversion before -> after keeps of a task, moments(module) -> (S_t, S_¬t): {"modules": {module: kept
    shares and energies}, "update", "own", "others": the shares over modules (aggregate)}."""
    per_module = {}
    for m, (a, b, s) in before.items():
        s_own, s_others = moments(m)
        per_module[m] = kept(energies(a, b, s, s_own, s_others), energies(*after[m], s_own, s_others))
    return {**aggregate(per_module), "modules": per_module}


def shares(kept_report: dict) -> dict[str, float]:
    """The task-level shares of a report (what a converted adapter's manifest records as `kept`)."""
    return {q: kept_report[q] for q in SHARES}


class Moments:
    """Per-token second moments of every task's tokens at a module's input, float64: S_j = G_j / n_j and S_¬t, the
    mean of the other tasks' S_j. read(module) -> {task: (G_j, n_j)} (token Gram, token count) is called once per
    input: modules with the same canonical(module) share it."""

    def __init__(self, read: Callable[[str], dict[str, tuple[torch.Tensor, int]]],
                 canonical: Callable[[str], str] = lambda module: module):
        self._read, self._canonical = read, canonical
        self._s: dict[str, dict[str, torch.Tensor]] = {}

    def _of(self, module: str) -> dict[str, torch.Tensor]:
        key = self._canonical(module)
        if key not in self._s:
            self._s[key] = {t: g.double() / max(n, 1) for t, (g, n) in self._read(module).items()}
        return self._s[key]

    def of(self, task: str, module: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(S_t, S_¬t), d_in x d_in float64."""
        s = self._of(module)
        return s[task], sum(v for t, v in s.items() if t != task) / (len(s) - 1)

    def of_task(self, task: str) -> Callable[[str], tuple[torch.Tensor, torch.Tensor]]:
        """module -> (S_t, S_¬t) of `task`: what report and derive.Source read."""
        return lambda module: self.of(task, module)


def generalised_eigvecs(s_own: torch.Tensor, s_others: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(V: d x d, μ: d, M: d x d) of S_own v = μ M v, M = S_others + εI, ε = ridge · tr(S_others) / d, μ descending,
    Vᵀ M V = I (float64). Solved like the contrast subspace: Cholesky L Lᵀ = M, C = L⁻¹ S_own L⁻ᵀ = U diag(μ) Uᵀ,
    V = L⁻ᵀ U."""
    d = s_others.shape[0]
    eps = ridge * float(torch.trace(s_others.double())) / d
    m = s_others.double() + max(eps, 1e-300) * torch.eye(d, dtype=torch.float64)
    low = torch.linalg.cholesky(0.5 * (m + m.T))
    x = torch.linalg.solve_triangular(low, s_own.double(), upper=False)
    c = torch.linalg.solve_triangular(low, x.T, upper=False)
    mu, u = torch.linalg.eigh(0.5 * (c + c.T))
    mu, u = mu.flip(0), u.flip(1)
    return torch.linalg.solve_triangular(low.T, u, upper=True), mu, m


@dataclass(frozen=True)
class Keep:
    """A post-hoc projection of one module: A' (r x d_in, orthonormal rows), B' (d_out x r) at the input's scale,
    k kept generalised eigen-directions of d_in, and the own share they keep by the component sums."""

    a: torch.Tensor
    b: torch.Tensor
    k: int
    own_share: float


def keep_rank(own: torch.Tensor, share: float) -> int:
    """The smallest k whose first k per-component own shifts (μ descending) sum to >= share of all of them."""
    total = float(own.sum())
    if total <= 0:
        return 0
    cum = torch.cumsum(own, 0) / total
    return min(int((cum < share - 1e-12).sum()) + 1, own.numel())


def keep_lora(a: torch.Tensor, b: torch.Tensor, scale: float, s_own: torch.Tensor, s_others: torch.Tensor,
              share: float = 0.9, ridge: float = 1e-2) -> Keep:
    """Post-hoc projection of ΔW = scale · B A (A: r x d_in, B: d_out x r; S_own, S_others: d_in x d_in per-token
    second moments) keeping `share` of the own output shift with the fewest directions (module docstring):
    ΔW' = ΔW M V_k V_kᵀ written as scale · B' A' with A' = orth(rows of A M V_k V_kᵀ) (r x d_in) and
    B' = ΔW' A'ᵀ / scale = B (A M V_k V_kᵀ A'ᵀ) (d_out x r). float32 out."""
    v, mu, m = generalised_eigvecs(s_own, s_others, ridge)
    amv = a.double() @ m @ v  # r x d: column i = A M v_i, so ΔW M v_i = scale · B (A M v_i)
    e = scale**2 * ((b.double() @ amv) ** 2).sum(0)  # e_i = ‖ΔW M v_i‖²
    own = mu.clamp_min(0) * e
    k = keep_rank(own, share)
    rows = amv[:, :k] @ v[:, :k].T  # r x d_in: A M V_k V_kᵀ, the rows of ΔW' / (scale B)
    q, r = torch.linalg.qr(rows.T)  # d_in x r, orthonormal columns (also where rows is rank-deficient)
    q = q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)  # positive diagonal: a deterministic basis
    a_new, b_new = q.T.contiguous(), b.double() @ (rows @ q)
    own_share = float(own[:k].sum() / own.sum()) if float(own.sum()) > 0 else 0.0
    return Keep(a_new.float(), b_new.float(), k, own_share)
