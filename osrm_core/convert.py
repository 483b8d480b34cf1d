"""Move existing updates into a task's OSRM subspace (docs/osrm.md, "Convert").

Least-squares projection of dW onto the row space of A_t (rows orthonormal, so pinv(A_t) = A_t^T):
    dW' = dW A_t^T A_t.
As a LoRA with scale s:  A' = A_t,  B' = dW A_t^T / s  — dividing by s avoids the released code's
double scaling (it effectively applied 2 * dW A^T A with alpha/r = 2). s is the scale the written adapter
declares (alpha/r, or alpha/sqrt(r) when its config sets use_rslora): dividing by one and declaring the
other would rescale the update by sqrt(r).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


def project_dense(delta: torch.Tensor, a_t: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(A' = A_t: r x d_in, B' = dW A_t^T / s: d_out x r) for a dense update dW (d_out x d_in)."""
    a = a_t.float()
    return a.clone(), (delta.float() @ a.T) / scale


def project_lora(a: torch.Tensor, b: torch.Tensor, scale_in: float, a_t: torch.Tensor, scale_out: float):
    """Project a LoRA (A: r x d_in, B: d_out x r, scale_in) without forming dW: B' = s_in B (A A_t^T) / s_out."""
    at = a_t.float()
    return at.clone(), (b.float() @ (a.float() @ at.T)) * (scale_in / scale_out)


def project_factors(factors: Callable[[str], tuple[torch.Tensor, torch.Tensor]], modules: Iterable[str], scale_in: float,
                    subspace: dict[str, torch.Tensor], scale_out: float) -> tuple[dict, dict]:
    """({module: (A_t, B')}, {module: residual}) of a LoRA whose factors(m) are (A: r x d_in, B: d_out x r) at
    scale_in, moved into the subspace (module -> A_t: r x d_in) at scale_out: dW' = dW A_t^T A_t. `modules`: any
    iterable of module names (e.g. wrapped in a progress bar), read once each."""
    projected, residual = {}, {}
    for m in modules:
        a, b = factors(m)
        projected[m] = project_lora(a, b, scale_in, subspace[m], scale_out)
        residual[m] = projection_residual(scale_in * (b @ a), subspace[m])
    return projected, residual


def projection_residual(delta: torch.Tensor, a_t: torch.Tensor) -> float:
    """||dW - dW A^T A||_F / ||dW||_F: how much of the update lies outside the subspace (dropped)."""
    a = a_t.double()
    d = delta.double()
    return float((d - d @ a.T @ a).norm() / d.norm().clamp_min(1e-300))
