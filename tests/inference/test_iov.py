"""Inter-occasion variability: occasions from OCC, the log density by hand, refusals.

One-compartment IV bolus (100 mg at 0 h and 24 h) with inter-occasion variability on CL:
occasion 1 until the second dose, occasion 2 from it on. The likelihood site of the
NumPyro program must equal the additive-error log density of the observations around the
piecewise exponential written out here, with ``CL`` on each occasion
``exp(mu + omega z_i + omega_occ kappa_ik)``.
"""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro import handlers
from scipy import stats

import twin_uq as tq
from models.one_compartment_iv import OneCompartmentIV
from twin_uq.data.occasions import occasion_segments
from twin_uq.inference.numpyro_model import cohort_program
from twin_uq.inference.prepare import prepare_fit

OBS = [1.0, 6.0, 23.0, 25.0, 30.0]


def _frame(occ_second=(2, 2, 1)):
    """Three patients; the second dose's OCC per patient (patient 3 stays on occasion 1)."""
    rows = []
    for pid, occ2 in zip(("1", "2", "3"), occ_second, strict=True):
        rows.append(dict(ID=pid, TIME=0.0, AMT=100.0, EVID=1, DV=np.nan, OCC=1))
        rows.append(dict(ID=pid, TIME=24.0, AMT=100.0, EVID=1, DV=np.nan, OCC=occ2))
        for t in OBS:
            rows.append(
                dict(ID=pid, TIME=t, AMT=0.0, EVID=0, DV=2.0 - 0.05 * t, OCC=1 if t < 24 else occ2)
            )
    frame = pd.DataFrame(rows).sort_values(["ID", "TIME", "EVID"], kind="stable")
    return frame.reset_index(drop=True)


def _spec(**kw):
    return tq.PopulationModel(
        OneCompartmentIV(),
        error={"concentration": "additive"},
        prior_check="off",
        iov=["CL"],
        **kw,
    )


def test_occasions_start_at_their_first_record():
    frame = _frame()
    cohort = tq.read_cohort(frame)
    occ = occasion_segments(cohort.table, cohort.ids)
    np.testing.assert_array_equal(occ.time, [[0.0, 24.0], [0.0, 24.0], [0.0, np.inf]])
    np.testing.assert_array_equal(occ.index, [[0, 1], [0, 1], [0, 0]])
    assert occ.n_occasions == 2
    assert list(occ.frame(0)["occ"]) == [1, 2]
    # OCC values need not be 1, 2, ...: a patient's occasions are numbered by sorted value
    frame.loc[frame["ID"] == "1", "OCC"] = frame.loc[frame["ID"] == "1", "OCC"] * 10 + 3
    cohort = tq.read_cohort(frame)
    occ = occasion_segments(cohort.table, cohort.ids)
    assert list(occ.frame(0)["occ"]) == [13, 23]
    np.testing.assert_array_equal(occ.index[0], [0, 1])


def _by_hand(mu, omega, z, omega_occ, kappa, sigma, occ_index):
    total = 0.0
    t = np.asarray(OBS)
    for i in range(3):
        cl = np.exp(mu[0] + omega[0] * z[i, 0] + omega_occ * kappa[i, occ_index[i], 0])
        v = np.exp(mu[1] + omega[1] * z[i, 1])
        k0, k1 = cl[0] / v, cl[1] / v
        a24 = 100.0 * np.exp(-k0 * 24.0) + 100.0  # the second dose
        amount = np.where(t < 24.0, 100.0 * np.exp(-k0 * t), a24 * np.exp(-k1 * (t - 24.0)))
        total += stats.norm.logpdf(2.0 - 0.05 * t, amount / v, sigma).sum()
    return total


def test_log_density_equals_the_piecewise_solution_by_hand():
    cohort = tq.read_cohort(_frame())
    prepared = prepare_fit(_spec(), cohort)
    assert prepared.structure.iov == (0,) and prepared.structure.n_occasions == 2
    mu = jnp.log(jnp.array([4.0, 45.0]))
    omega = jnp.array([0.3, 0.2])
    z = jnp.array([[0.5, -0.4], [-1.0, 0.2], [0.3, 0.7]])
    kappa = jnp.array([[[0.8], [-1.2]], [[-0.3], [0.6]], [[1.5], [-2.0]]])
    point = {
        "mu": mu,
        "omega": omega,
        "z": z,
        "sigma_add": jnp.array([0.1]),
        "omega_occ": jnp.array([0.25]),
        "kappa": kappa,
    }
    with handlers.trace() as tr, handlers.substitute(data=point):
        cohort_program(prepared.structure, *prepared.program_args())
    loglik = float(tr["loglik"]["fn"].log_factor)
    occ_index = [[0, 1], [0, 1], [0, 0]]  # patient 3 stays on its first occasion
    expected = _by_hand(
        np.asarray(mu), np.asarray(omega), np.asarray(z), 0.25, np.asarray(kappa), 0.1, occ_index
    )
    assert loglik == pytest.approx(expected, rel=1e-12)
    # kappa ~ N(0, 1): its prior term is in the joint density
    assert float(tr["kappa"]["fn"].log_prob(kappa)) == pytest.approx(
        stats.norm.logpdf(np.asarray(kappa)).sum(), rel=1e-12
    )


def test_refusals_say_what_to_do():
    model = OneCompartmentIV()
    with pytest.raises(tq.errors.InputError, match="does not have"):
        tq.PopulationModel(model, iov=["KA"])
    with pytest.raises(tq.errors.InputError, match="list of parameter names"):
        tq.PopulationModel(model, iov="CL")
    with pytest.raises(tq.errors.InputError, match="centering=0"):
        tq.PopulationModel(model, iov=["CL"], centering="auto")
    with pytest.raises(tq.errors.InputError, match="no inter-occasion"):
        tq.PopulationModel(model, iov=["CL"], priors={"omega_occ.V": 0.2})
    cohort = tq.read_cohort(_frame())
    prepared = prepare_fit(_spec(), cohort)
    with pytest.raises(tq.errors.InputError, match="NumPyro"):
        tq.PyMC().run(prepared, None, seed=0, progress=False)
    # no OCC column; OCC constant within every patient
    with pytest.raises(tq.errors.InputError, match="OCC column"):
        prepare_fit(_spec(), tq.read_cohort(_frame().drop(columns="OCC")))
    with pytest.raises(tq.errors.InputError, match="more than one"):
        prepare_fit(_spec(), tq.read_cohort(_frame(occ_second=(1, 1, 1))))
    # with a covariate of the design that changes within a patient
    frame = _frame()
    frame["WT"] = np.where(frame["TIME"] < 24, 70.0, 80.0)
    with pytest.raises(tq.errors.InputError, match="not supported yet"):
        prepare_fit(_spec(), tq.read_cohort(frame))


def test_fit_keywords_and_the_command_line_declare_iov(cli, tmp_path):
    from twin_uq.inference.fit import _population

    model = OneCompartmentIV()
    spec = _population(model, None, None, None, None, None, None, None, ["CL"])
    # "auto" centring does not handle occasions: with iov the default is non-centred
    assert spec.iov == ("CL",) and spec.centering == 0.0
    assert _population(model, None, None, None, None, None, None, None, None).centering == "auto"
    data = tmp_path / "cohort.csv"
    _frame().to_csv(data, index=False)
    out = tmp_path / "fit.nc"
    result = cli("fit", data, "--model", "one_compartment_iv", "--out", out, "--iov", "CL",
                 "--scheduler", "local")  # fmt: skip
    assert "--iov with --scheduler" in result.output
    assert result.exit_code != 0 and not out.exists()
