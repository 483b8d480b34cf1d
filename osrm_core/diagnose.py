"""Interference diagnostics of trained adapters, from token Grams alone (no forward pass); see docs/diagnostics.md.

For a target linear with task i's token Gram G_i = sum_h h h^T (d_in x d_in, non-padding tokens of the
BASE model's inputs) and task j's update dW_j = s_j B_j A_j (A_j: r x d_in, B_j: d_out x r):
  * output shift  ||dW_j H_i^T||_F^2 = tr(dW_j G_i dW_j^T) = s_j^2 tr((A_j G_i A_j^T)(B_j^T B_j))  (r x r work)
  * interference  E_ij = sum_m tr(dW_j G_i dW_j^T) / sum_m tr(dW_i G_i dW_i^T)   (sums over target modules m)
  * energy ratio  tr(Q^T S Q) / tr(S) * d/r, Q (d x r) an orthonormal basis of A's rows (isotropic S gives 1)
  * drift         ||A_end - A_0||_F / ||A_0||_F
Nested inputs are {task: {module: value}}; every task must have the same modules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from osrm_core.errors import OsrmError
from osrm_core.subspace import normalised_distance

Factors = tuple[torch.Tensor, torch.Tensor, float]  # (A: r x d_in, B: d_out x r, scale s)


def _natural(name: str) -> tuple:
    """Sort key putting layer.2 before layer.10 (digit runs compare as integers)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _layout(nested: dict[str, dict], what: str) -> tuple[list[str], list[str]]:
    """(tasks in given order, modules in natural order) of {task: {module: ...}}; every task the same modules."""
    if not nested:
        raise OsrmError(f"{what}: no tasks given — pass at least two tasks' {what}")
    tasks = list(nested)
    modules = sorted(nested[tasks[0]], key=_natural)
    for t in tasks[1:]:
        if set(nested[t]) != set(modules):
            raise OsrmError(f"{what}: task '{t}' has modules {sorted(nested[t])}, task '{tasks[0]}' has {modules} — use the same lora.blocks for every task")
    if not modules:
        raise OsrmError(f"{what}: task '{tasks[0]}' has no target modules — check lora.blocks")
    return tasks, modules


def _same_layout(a: tuple[list[str], list[str]], b: tuple[list[str], list[str]], what: str) -> None:
    if set(a[0]) != set(b[0]) or a[1] != b[1]:
        raise OsrmError(f"{what}: tasks/modules {sorted(b[0])}/{b[1]} differ from the Grams' {sorted(a[0])}/{a[1]} — extract features and fine-tune the same tasks and lora.blocks")


def _nested(tasks: list[str], cols: list[str], values: torch.Tensor) -> dict[str, dict[str, float]]:
    """{tasks[i]: {cols[j]: values[i, j]}} as plain floats (JSON / DVC metrics)."""
    return {t: {c: float(values[i, k]) for k, c in enumerate(cols)} for i, t in enumerate(tasks)}


def _offdiag(matrix: torch.Tensor) -> torch.Tensor:
    """Off-diagonal entries of a square T x T matrix, flattened (T(T-1),)."""
    return matrix[~torch.eye(matrix.shape[0], dtype=torch.bool)]


def output_shift(a: torch.Tensor, b: torch.Tensor, s: float, gram: torch.Tensor) -> float:
    """tr(dW G dW^T) for dW = s B A, without forming dW: s^2 tr((A G A^T)(B^T B)), float64.

    a: r x d_in, b: d_out x r, gram: d_in x d_in (PSD). Equals sum_h ||dW h||^2 when G = sum_h h h^T.
    """
    if a.dim() != 2 or b.dim() != 2 or gram.shape != (a.shape[1], a.shape[1]) or b.shape[1] != a.shape[0]:
        raise OsrmError(f"shapes A {tuple(a.shape)}, B {tuple(b.shape)}, G {tuple(gram.shape)} do not fit "
                        "(need A r x d_in, B d_out x r, G d_in x d_in) — the adapter and the features are of different models")
    a, b = a.double(), b.double()
    inner = a @ gram.double() @ a.T  # r x r
    outer = b.T @ b  # r x r
    return float(s) ** 2 * float((inner * outer).sum())  # tr(MN) = sum(M * N^T), N symmetric


@dataclass(frozen=True)
class Interference:
    """Output shifts of every task's update on every task's inputs, per target module.

    shifts: (M x T x T) float64, shifts[m, i, j] = tr(dW_j^m G_i^m dW_j^m^T) (task j's update on task i's tokens).
    """

    tasks: list[str]
    modules: list[str]
    shifts: torch.Tensor

    @property
    def matrix(self) -> torch.Tensor:
        """E (T x T): E_ij = sum_m shifts[m,i,j] / sum_m shifts[m,i,i]; diagonal 1."""
        total = self.shifts.sum(0)
        return total / total.diagonal().unsqueeze(1)

    @property
    def per_module(self) -> torch.Tensor:
        """E^(m) (M x T x T): shifts[m,i,j] / shifts[m,i,i]."""
        return self.shifts / self.shifts.diagonal(dim1=1, dim2=2).unsqueeze(2)

    def median_offdiag(self) -> float:
        """Median of E_ij over ordered pairs i != j (midpoint for an even count)."""
        return float(_offdiag(self.matrix).quantile(0.5))

    def mean_offdiag(self) -> float:
        return float(_offdiag(self.matrix).mean())

    def module_medians(self) -> list[float]:
        """Median off-diagonal E^(m) per module (M,), in `modules` order."""
        return [float(_offdiag(e).quantile(0.5)) for e in self.per_module]

    def summary(self) -> dict[str, float | dict[str, float]]:
        """Scalars only (a DVC metrics file): overall median/mean/max off-diagonal and the per-module medians."""
        off = _offdiag(self.matrix)
        return {"median_offdiag": self.median_offdiag(), "mean_offdiag": float(off.mean()), "max_offdiag": float(off.max()),
                "module_median_offdiag": dict(zip(self.modules, self.module_medians()))}

    def as_dict(self) -> dict:
        """summary() plus E as {row task i: {column task j: E_ij}}, per module, and the raw shifts (for from_json)."""
        per = self.per_module
        return {**self.summary(), "tasks": list(self.tasks), "modules": list(self.modules),
                "matrix": _nested(self.tasks, self.tasks, self.matrix),
                "per_module": {m: _nested(self.tasks, self.tasks, per[k]) for k, m in enumerate(self.modules)},
                "shifts": {m: _nested(self.tasks, self.tasks, self.shifts[k]) for k, m in enumerate(self.modules)}}

    @classmethod
    def from_json(cls, data: dict) -> Interference:
        """Inverse of as_dict (e.g. to plot arms diagnosed by separate stages)."""
        try:
            tasks, modules = list(data["tasks"]), list(data["modules"])
            shifts = torch.tensor([[[data["shifts"][m][i][j] for j in tasks] for i in tasks] for m in modules], dtype=torch.float64)
        except (KeyError, TypeError) as err:
            raise OsrmError(f"interference JSON lacks {err} — re-run `osrm diagnose`") from None
        return cls(tasks, modules, shifts)


def interference(grams: dict[str, dict[str, torch.Tensor]], factors: dict[str, dict[str, Factors]]) -> Interference:
    """Interference of every task's adapter on every task's inputs.

    grams: {task i: {module: G_i (d_in x d_in)}}; factors: {task j: {module: (A_j r x d_in, B_j d_out x r, s_j)}}.
    Both must cover the same >= 2 tasks and the same modules. Cost per (i, j, module): O(r d_in^2).
    """
    tasks, modules = _layout(grams, "Grams")
    _same_layout((tasks, modules), _layout(factors, "adapters"), "adapters")
    if len(tasks) < 2:
        raise OsrmError(f"interference needs at least two tasks, got {tasks} — add tasks to the suite")
    shifts = torch.tensor([[[output_shift(*factors[j][m], grams[i][m]) for j in tasks] for i in tasks] for m in modules],
                          dtype=torch.float64)
    own = shifts.diagonal(dim1=1, dim2=2)  # M x T
    if not bool((own > 0).all()):
        k, i = map(int, (own <= 0).nonzero()[0])
        raise OsrmError(f"task '{tasks[i]}': its adapter does not move its own outputs at '{modules[k]}' "
                        "(tr(dW G dW^T) = 0; lora_B all zero?) — diagnose trained adapters, not initial ones")
    return Interference(tasks, modules, shifts)


def energy_ratio(a: torch.Tensor, s: torch.Tensor) -> float:
    """Energy of S captured by the row space of A, relative to a random r-dim subspace: tr(Q^T S Q)/tr(S) * d/r.

    a: r x d (full row rank, r < d); s: d x d PSD second moment. Q (d x r) is from the QR of A^T, so only
    A's row space matters (not its scale). Isotropic S (or a Haar-random span, in expectation) gives 1.
    """
    r, d = a.shape
    if s.shape != (d, d) or r >= d:
        raise OsrmError(f"A {tuple(a.shape)} and S {tuple(s.shape)} do not fit (need A r x d with r < d, S d x d) — "
                        "the adapter and the features are of different models")
    q, _ = torch.linalg.qr(a.double().T)  # d x r, orthonormal columns spanning A's rows
    s = s.double()
    total = float(torch.trace(s))
    if total <= 0:
        raise OsrmError("energy_ratio: the second moment has zero trace (no tokens?) — re-extract features")
    return float(((s @ q) * q).sum()) / total * d / r  # tr(Q^T S Q)


@dataclass(frozen=True)
class Energy:
    """Energy ratios of each task's A (T x M, float64): `own` on its own tokens, `other` on the other tasks' tokens."""

    tasks: list[str]
    modules: list[str]
    own: torch.Tensor
    other: torch.Tensor

    def as_dict(self) -> dict:
        """Means (overall, per task) and the per-module ratios, plain floats."""
        return {"own_mean": float(self.own.mean()), "other_mean": float(self.other.mean()),
                "own_by_task": dict(zip(self.tasks, map(float, self.own.mean(1)))),
                "other_by_task": dict(zip(self.tasks, map(float, self.other.mean(1)))),
                "own": _nested(self.tasks, self.modules, self.own), "other": _nested(self.tasks, self.modules, self.other)}


def energy_shares(grams: dict[str, dict[str, torch.Tensor]], counts: dict[str, dict[str, int]],
                  rows: dict[str, dict[str, torch.Tensor]]) -> Energy:
    """Own- and other-task energy ratios of each task's A (rows[t][m]: r x d_in) at every module.

    Own: S = G_t/n_t. Other: S = sum_{j != t} G_j/n_j (every task weighs the same, whatever its token count).
    """
    tasks, modules = _layout(grams, "Grams")
    _same_layout((tasks, modules), _layout(counts, "token counts"), "token counts")
    _same_layout((tasks, modules), _layout(rows, "adapters' A"), "adapters' A")
    own = torch.zeros(len(tasks), len(modules), dtype=torch.float64)
    other = torch.zeros_like(own)
    for k, m in enumerate(modules):
        moments = {t: _moment(grams[t][m], counts[t][m], t, m) for t in tasks}
        total = sum(moments.values())
        for i, t in enumerate(tasks):
            own[i, k] = energy_ratio(rows[t][m], moments[t])
            other[i, k] = energy_ratio(rows[t][m], total - moments[t])
    return Energy(tasks, modules, own, other)


def _moment(gram: torch.Tensor, count: int, task: str, module: str) -> torch.Tensor:
    """Second moment G/n (d x d float64)."""
    if count <= 0:
        raise OsrmError(f"task '{task}': token count {count} at '{module}' — re-extract its features")
    return gram.double() / count


@dataclass(frozen=True)
class Drift:
    """||A_end - A_0||_F / ||A_0||_F per task and module (T x M float64)."""

    tasks: list[str]
    modules: list[str]
    values: torch.Tensor

    def as_dict(self) -> dict:
        return {"mean": float(self.values.mean()), "by_task": dict(zip(self.tasks, map(float, self.values.mean(1)))),
                "module_mean": dict(zip(self.modules, map(float, self.values.mean(0)))),
                "per_module": _nested(self.tasks, self.modules, self.values)}


def drift(end: dict[str, dict[str, torch.Tensor]], init: dict[str, dict[str, torch.Tensor]]) -> Drift:
    """How far training moved A (the paper's Figure 3): end/init are {task: {module: A (r x d_in)}}."""
    tasks, modules = _layout(init, "initial A")
    _same_layout((tasks, modules), _layout(end, "trained A"), "trained A")
    values = torch.zeros(len(tasks), len(modules), dtype=torch.float64)
    for i, t in enumerate(tasks):
        for k, m in enumerate(modules):
            if end[t][m].shape != init[t][m].shape:
                raise OsrmError(f"task '{t}', '{m}': trained A {tuple(end[t][m].shape)} vs initial {tuple(init[t][m].shape)} — "
                                "the subspace file is not the one this adapter was trained from")
            values[i, k] = normalised_distance(end[t][m], init[t][m])
    return Drift(tasks, modules, values)
