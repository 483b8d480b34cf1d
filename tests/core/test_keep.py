"""osrm_core.keep: the kept shares of a conversion, and the post-hoc projection that keeps the task, against
naive references (dense ΔW, direct traces, scipy's generalised eigensolver, a brute-force search over k)."""

from __future__ import annotations

import pytest
import scipy.linalg
import torch

from osrm_core.keep import Moments, aggregate, energies, generalised_eigvecs, keep_lora, kept, report, shares, shift


def _planted(d: int = 16, seed: int = 0):
    """(S_own, S_others): a shared isotropic floor, the own task 30x stronger in directions 0..3, the other tasks
    30x stronger in 4..7 (rotated by a random orthogonal matrix)."""
    g = torch.Generator().manual_seed(seed)
    rot, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    own, other = torch.ones(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)
    own[:4], other[4:8] = 30.0, 30.0
    return rot @ torch.diag(own) @ rot.T, rot @ torch.diag(other) @ rot.T


def _lora(d_out: int, d_in: int, r: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(r, d_in, generator=g), torch.randn(d_out, r, generator=g)


def _tr(dw: torch.Tensor, s: torch.Tensor) -> float:
    return float(torch.trace(dw.double() @ s @ dw.double().T))


def test_shift_and_shares_match_dense_traces():
    s_own, s_oth = _planted()
    a, b = _lora(10, 16, 4)
    dw = 2.0 * b.double() @ a.double()
    assert shift(a, b, 2.0, s_own) == pytest.approx(_tr(dw, s_own), rel=1e-10)
    before = energies(a, b, 2.0, s_own, s_oth)
    assert before["update"] == pytest.approx(float((dw**2).sum()), rel=1e-10)
    after = energies(a, 0.5 * b, 2.0, s_own, s_oth)  # half the update: a quarter of every energy
    shares = kept(before, after)
    assert all(shares[q] == pytest.approx(0.25) for q in ("update", "own", "others"))
    # aggregated over modules: weighted by energy before (sum after / sum before), not a plain mean
    agg = aggregate({"m1": shares, "m2": kept(before, before)})
    assert agg["own"] == pytest.approx((0.25 + 1.0) / 2)
    big = kept({q: 3 * v for q, v in before.items()}, {q: 3 * v for q, v in before.items()})
    assert aggregate({"m1": shares, "m2": big})["own"] == pytest.approx((0.25 + 3) / 4)


def test_moments_and_report_by_hand():
    """keep.Moments: S_j = G_j / n_j, S_¬t the mean of the other tasks' S_j, read once per shared input; keep.report
    is kept() per module and aggregate() over them, with the moments of each module."""
    s_own, s_oth = _planted()
    grams = {"t": (3 * s_own, 3), "u": (2 * s_oth, 2), "v": (4 * s_oth, 1)}
    reads = []
    moments = Moments(lambda m: reads.append(m) or grams, canonical=lambda m: "q" if m in ("q", "k") else m)
    own, others = moments.of("t", "q")
    torch.testing.assert_close(own, s_own)
    torch.testing.assert_close(others, 2.5 * s_oth)
    moments.of("u", "k")
    assert reads == ["q"]
    a, b = _lora(10, 16, 4)
    out = report(moments.of_task("t"), {"q": (a, b, 2.0), "k": (a, b, 1.0)}, {"q": (a, 0.5 * b, 2.0), "k": (a, b, 1.0)})
    per = {"q": kept(energies(a, b, 2.0, own, others), energies(a, 0.5 * b, 2.0, own, others)),
           "k": kept(energies(a, b, 1.0, own, others), energies(a, b, 1.0, own, others))}
    assert out == {**aggregate(per), "modules": per}
    assert shares(out) == {q: out[q] for q in ("update", "own", "others")}


def test_generalised_eigvecs_match_scipy():
    s_own, s_oth = _planted(seed=3)
    v, mu, m = generalised_eigvecs(s_own, s_oth, ridge=1e-2)
    ref = scipy.linalg.eigh(s_own.numpy(), m.numpy(), eigvals_only=True)[::-1]
    torch.testing.assert_close(mu, torch.from_numpy(ref.copy()), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(v.T @ m @ v, torch.eye(16, dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(v.T @ s_own @ v, torch.diag(mu), rtol=0, atol=1e-8)


def _brute_force(dw: torch.Tensor, s_own, s_oth, share: float, ridge: float):
    """Smallest k whose dense ΔW M V_k V_kᵀ keeps >= share of the own shift, searched over every k by direct traces."""
    v, _, m = generalised_eigvecs(s_own, s_oth, ridge)
    for k in range(v.shape[1] + 1):
        proj = dw.double() @ m @ v[:, :k] @ v[:, :k].T
        if _tr(proj, s_own) >= share * _tr(dw, s_own) - 1e-9:
            return k, proj
    raise AssertionError("no k keeps the share")


@pytest.mark.parametrize("share", [0.5, 0.9, 0.99])
def test_keep_matches_brute_force_and_keeps_the_share(share):
    s_own, s_oth = _planted(seed=5)
    a, b = _lora(10, 16, 6, seed=7)
    scale = 1.5
    dw = scale * b.double() @ a.double()
    out = keep_lora(a, b, scale, s_own, s_oth, share=share)
    k, ref = _brute_force(dw, s_own, s_oth, share, 1e-2)
    assert out.k == k
    dw_new = scale * out.b.double() @ out.a.double()
    torch.testing.assert_close(dw_new, ref, rtol=0, atol=1e-4)
    torch.testing.assert_close(out.a.double() @ out.a.double().T, torch.eye(6, dtype=torch.float64), rtol=0, atol=1e-5)
    own = _tr(dw_new, s_own) / _tr(dw, s_own)
    assert own >= share - 1e-5 and own == pytest.approx(out.own_share, abs=1e-5)


def test_keep_drops_the_other_tasks_shift():
    """On planted moments (own strong in 4 directions, others in 4 others), keeping 90% of the own shift removes
    most of the shift on the other tasks' tokens; the paper's projection can keep far less of the own shift."""
    s_own, s_oth = _planted(d=32, seed=11)
    a, b = _lora(12, 32, 8, seed=13)
    out = keep_lora(a, b, 2.0, s_own, s_oth, share=0.9)
    shares = kept(energies(a, b, 2.0, s_own, s_oth), energies(out.a, out.b, 2.0, s_own, s_oth))
    assert shares["own"] >= 0.9 - 1e-5
    assert shares["others"] < 0.5, shares
    assert out.k < 32


def test_zero_update_keeps_nothing_and_does_not_fail():
    s_own, s_oth = _planted()
    out = keep_lora(torch.randn(4, 16), torch.zeros(10, 4), 1.0, s_own, s_oth)
    assert out.k == 0 and out.own_share == 0.0 and float(out.b.abs().max()) == 0.0
