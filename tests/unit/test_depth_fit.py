"""bench/depth_fit.py reads the depth-28 op counts off an exact fit: the fit must recover known
coefficients and refuse points that do not lie on one."""
import pytest

from bench import depth_fit

PAIRS = [(2, 2), (4, 2), (2, 4), (3, 3), (3, 2)]


def _depth_fit():
    return depth_fit


def _points(coefs: dict, pairs) -> dict:
    return {(d, s): {name: {"ops": s * (a * d + b) + e * d + c}
                     for name, (a, b, e, c) in coefs.items()}
            for d, s in pairs}


def test_fit_recovers_per_block_per_step_and_per_run_counts():
    fit = _depth_fit()
    coefs = dict(zip(fit.FITTED, [(78, 194, 0, 9), (61.5, 209, 20, 214), (80, 196, 0, 10)],
                     strict=True))
    got = fit.fit(_points(coefs, PAIRS), "ops")
    for name, abec in coefs.items():
        assert got[name] == pytest.approx(list(abec), abs=1e-6)


def test_fit_refuses_a_point_off_the_line():
    fit = _depth_fit()
    coefs = dict.fromkeys(fit.FITTED, (78, 194, 12, 9))
    points = _points(coefs, PAIRS)
    points[(3, 2)][fit.FITTED[1]]["ops"] += 5
    with pytest.raises(SystemExit, match="misses a point by 5"):
        fit.fit(points, "ops")


def test_fit_wants_a_point_to_check_it_on():
    fit = _depth_fit()
    with pytest.raises(SystemExit, match="five points"):
        fit.fit(_points(dict.fromkeys(fit.FITTED, (1, 2, 3, 4)), PAIRS[:4]), "ops")
