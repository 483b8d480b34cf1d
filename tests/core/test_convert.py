"""osrm_core.convert: the projection dW A_t^T A_t in factor form against a naive dense reference."""

import torch

from osrm_core.convert import project_dense, project_lora, projection_residual


def _setup(r_in=3, r=4, d_out=7, d_in=9):
    g = torch.Generator().manual_seed(0)
    a_t = torch.linalg.qr(torch.randn(d_in, r, generator=g))[0].T  # r x d_in, orthonormal rows
    return torch.randn(r_in, d_in, generator=g), torch.randn(d_out, r_in, generator=g), a_t


def test_project_lora_equals_dense_projection():
    """s_out B' A' == s_in B A A_t^T A_t for any pair of scales (alpha/r, alpha/sqrt(r) alike)."""
    a, b, a_t = _setup()
    for s_in, s_out in ((2.0, 2.0), (4.0, 16 / 4**0.5), (0.5, 3.0)):
        a2, b2 = project_lora(a, b, s_in, a_t, s_out)
        torch.testing.assert_close(a2, a_t)
        torch.testing.assert_close(s_out * b2 @ a2, s_in * b @ a @ a_t.T @ a_t)
        a3, b3 = project_dense(s_in * b @ a, a_t, s_out)
        torch.testing.assert_close(s_out * b3 @ a3, s_out * b2 @ a2)


def test_residual_is_the_dropped_fraction():
    a, b, a_t = _setup()
    d = b @ a
    naive = (d - d @ a_t.T @ a_t).norm() / d.norm()
    assert abs(projection_residual(d, a_t) - float(naive)) < 1e-6
    assert projection_residual(d @ a_t.T @ a_t, a_t) < 1e-6  # already inside: nothing dropped
