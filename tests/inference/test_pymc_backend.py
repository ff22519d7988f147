"""PyMC backend: the JAX likelihood Op, the same model as NumPyro, the same output layout.

Fast tests use one tiny cohort (4 patients, 6 observations) so that the jitted likelihood,
its VJP and the NumPyro sampler compile once for the whole module. The cross-backend
agreement test is marked slow.
"""

import sys
import warnings
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from optional_deps import require
from scales_models import DESIGN as SCALES_DESIGN, IvOralF

import twin_uq as tq
from twin_uq.inference.population import PopulationModel
from twin_uq.inference.prepare import prepare_fit

pm = require("pymc")
pytensor = require("pytensor")
import pytensor.tensor as pt  # noqa: E402
from numpyro.infer.util import log_density  # noqa: E402
from pymc.model.transform.conditioning import remove_value_transforms  # noqa: E402

from twin_uq.inference.numpyro_model import cohort_program  # noqa: E402
from twin_uq.inference.pymc_backend import build_pymc_model, run_pymc  # noqa: E402
from twin_uq.inference.pymc_op import CohortLoglikOp, cohort_loglik_total  # noqa: E402

TINY_DESIGN = tq.Design(
    times=[0.5, 1.0, 2.0, 4.0, 8.0, 24.0],
    doses=[tq.Bolus(0.0, 100.0, 1)],
    covariates={"AGE": ("uniform", 20.0, 85.0), "WT": ("lognormal", 70.0, 0.2)},
)


@pytest.fixture(scope="module")
def tiny():
    return tq.simulate_cohort("one_compartment_oral", 4, TINY_DESIGN, seed=3)


@pytest.fixture(scope="module")
def prepared(tiny):
    spec = PopulationModel(model=tq.load_model("one_compartment_oral"), centering="auto")
    return prepare_fit(spec, tiny.cohort)


def _theta(prepared, seed=0):
    rng = np.random.default_rng(seed)
    mu = np.asarray(prepared.priors.mu_loc)
    return np.exp(mu + 0.3 * rng.standard_normal((prepared.data.n_patients, mu.size)))


def test_op_value_and_gradient_match_jax(prepared):
    s, data = prepared.structure, prepared.data
    theta0 = _theta(prepared)
    add0, prop0, nu0 = np.array([0.07]), np.array([0.15]), np.array(1e6)
    th, a, b = pt.dmatrix("theta"), pt.dvector("add"), pt.dvector("prop")
    nu = pt.dscalar("nu")
    out = CohortLoglikOp(s, data)(th, a, b, nu)
    grads = pytensor.grad(out, [th, a, b])
    f = pytensor.function([th, a, b, nu], [out, *grads], mode="FAST_COMPILE")
    value, g_th, g_a, g_b = f(theta0, add0, prop0, nu0)
    args = [jnp.asarray(x) for x in (theta0, add0, prop0, nu0)]
    expected = cohort_loglik_total(s, data, *args)
    exp_grads = jax.grad(lambda *x: cohort_loglik_total(s, data, *x, args[3]), argnums=(0, 1, 2))(
        *args[:3]
    )
    # Same JAX function, same float64 arithmetic: agreement to rounding.
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    for got, want in zip((g_th, g_a, g_b), exp_grads, strict=True):
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-10, atol=1e-10)
    # And the gradient is the derivative of the value: central differences in one
    # direction (step 1e-6 relative; truncation error O(h^2) ~ 1e-10 relative).
    rng = np.random.default_rng(1)
    d = rng.standard_normal(theta0.shape) * theta0
    h = 1e-6
    fd = (f(theta0 + h * d, add0, prop0, nu0)[0] - f(theta0 - h * d, add0, prop0, nu0)[0]) / (2 * h)
    np.testing.assert_allclose(fd, np.sum(g_th * d), rtol=1e-6)


def test_op_pickles_and_rebuilds(prepared):
    import cloudpickle

    op = CohortLoglikOp(prepared.structure, prepared.data)
    op2 = cloudpickle.loads(cloudpickle.dumps(op))
    theta0 = _theta(prepared, 2)
    args = [jnp.asarray(x) for x in (theta0, [0.07], [0.15], 1e6)]
    v1 = cohort_loglik_total(op.structure, op.data, *args)
    v2 = cohort_loglik_total(op2.structure, op2.data, *args)
    assert float(v1) == float(v2)


def _log_densities(prepared, pmodel, point):
    """Joint log density (constrained space, no Jacobian) from NumPyro and from PyMC."""
    program = lambda *args: cohort_program(prepared.structure, *args)  # noqa: E731
    lp_numpyro, _ = log_density(
        program, prepared.program_args(), {}, {k: jnp.asarray(v) for k, v in point.items()}
    )
    plain = remove_value_transforms(pmodel)
    f = plain.compile_logp(jacobian=False, mode="FAST_COMPILE")
    values = {plain.rvs_to_values[plain[k]].name: v for k, v in point.items()}
    return float(lp_numpyro), float(f(values))


@pytest.mark.parametrize(
    "variant",
    [
        "diagonal_auto",
        "lkj_covariate_student_t",
        "logit_fixed_auto",
        "logit_fixed_half",
        "logit_fixed_lkj",
    ],
)
def test_pymc_model_has_the_numpyro_density(tiny, variant):
    model = tq.load_model("one_compartment_oral")
    cohort = tiny.cohort
    if variant.startswith("logit_fixed"):
        # logit-normal F and a fixed-effect ka (tests/scales_models.py)
        model = IvOralF()
        cohort = tq.simulate_cohort(model, 4, SCALES_DESIGN, seed=3).cohort
        population = {"auto": {"centering": "auto"}, "half": {"centering": 0.5}}.get(
            variant.rsplit("_", 1)[1], {"correlation": "lkj"}
        )
        spec = PopulationModel(model=model, **population)
    elif variant == "diagonal_auto":
        spec = PopulationModel(model=model, centering="auto")
    else:
        spec = PopulationModel(
            model=model,
            correlation="lkj",
            covariate_effects={"CL": ["AGE"]},
            error={"concentration": "student_t"},
        )
    prep = prepare_fit(spec, cohort)
    pmodel = build_pymc_model(prep)
    rng = np.random.default_rng(5)
    points = []
    for _ in range(2):
        p = {k: np.asarray(v, dtype=float) for k, v in prep.init_values().items()}
        p["mu"] = p["mu"] + 0.2 * rng.standard_normal(p["mu"].shape)
        p["omega"] = p["omega"] * np.exp(0.3 * rng.standard_normal(p["omega"].shape))
        p["z"] = p["z"] + 0.5 * rng.standard_normal(p["z"].shape)
        if "beta" in p:
            p["beta"] = 0.3 * rng.standard_normal(p["beta"].shape)
        if "corr_chol" in p:
            a = rng.uniform(-0.5, 0.5, 3)
            corr = np.array([[1, a[0], a[1]], [a[0], 1, a[2]], [a[1], a[2], 1]])
            p["corr_chol"] = np.linalg.cholesky(corr)
        if "nu" in p:
            p["nu"] = np.asarray(rng.uniform(3.0, 30.0))
        points.append(p)
    (n1, m1), (n2, m2) = (_log_densities(prep, pmodel, p) for p in points)
    # Same density up to a normalising constant (LKJ constants may differ by convention):
    # differences between two points agree to rounding.
    assert np.isfinite([n1, n2, m1, m2]).all()
    np.testing.assert_allclose(m1 - m2, n1 - n2, rtol=1e-9, atol=1e-8)
    if "auto" in variant or "half" in variant:
        np.testing.assert_allclose(m1, n1, rtol=1e-10)


def test_missing_pymc_names_the_extra(prepared, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymc", None)
    with pytest.raises(ImportError, match=r"twin-uq\[pymc\]"):
        build_pymc_model(prepared)
    with pytest.raises(ImportError, match=r"twin-uq\[pymc\]"):
        tq.fit("one_compartment_oral", prepared.cohort, backend="pymc", draws=5, warmup=5)


def test_unknown_sampler_and_method_are_refused(prepared):
    with pytest.raises(ValueError, match="Unknown PyMC sampler 'stan'"):
        run_pymc(prepared, SimpleNamespace(sampler="stan"))  # tq.PyMC refuses it earlier
    with pytest.raises(ValueError, match="method='nuts' only"):
        tq.fit("one_compartment_oral", prepared.cohort, backend="pymc", method="svi")
    with pytest.raises(ValueError, match="Unknown backend"):
        tq.fit("one_compartment_oral", prepared.cohort, backend="stan")


def test_pymc_nuts_in_process_returns_backend_result(prepared):
    # cores=1: chains run in this process, reusing the jitted Op compiled above.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyTensor: no BLAS found
        method = tq.PyMC(sampler="pymc", chains=1, warmup=30, draws=20)
        res = run_pymc(prepared, method, seed=1, cores=1)
    assert set(res.samples) == {"mu", "omega", "z", "sigma_add", "sigma_prop"}
    assert res.samples["z"].shape == (1, 20, 4, 3)
    assert set(res.sample_stats) == {
        "diverging",
        "energy",
        "n_steps",
        "tree_depth",
        "acceptance_rate",
        "step_size",
        "lp",
    }
    assert res.info == {
        "backend": "pymc",
        "sampler": "pymc",
        "cores": 1,
        "mp_ctx": "none",
        "pytensor_mode": "CVM",
    }
    assert np.isfinite(res.sample_stats["lp"]).all()
    assert res.sample_stats["diverging"].dtype == bool


def _layout(post):
    tree = post.idata
    out = {}
    for name, node in tree.children.items():
        ds = node.to_dataset()
        out[name] = {v: (ds[v].dims, ds[v].shape[2:] if "chain" in ds[v].dims else ds[v].shape)
                     for v in ds.data_vars}  # fmt: skip
    return out


@pytest.mark.slow  # 25 s in CI; the in-process PyMC fit stays in the default run
def test_fit_backend_pymc_has_the_numpyro_layout(tiny):
    kw = {"chains": 2, "warmup": 40, "draws": 30, "seed": 0, "progress": False}
    ref = tq.fit("one_compartment_oral", tiny.cohort, **kw)
    post = tq.fit("one_compartment_oral", tiny.cohort, backend="pymc", sampler="numpyro", **kw)
    assert isinstance(post, tq.CohortPosterior)
    assert _layout(post) == _layout(ref)
    assert post.posterior.sizes == ref.posterior.sizes
    info = post.idata.attrs["backend_info"]
    assert '"backend": "pymc"' in info and '"sampler": "numpyro"' in info
    # Downstream features work unchanged.
    summary = post.population_summary()
    assert list(summary.index) == list(ref.population_summary().index)
    diag = post.diagnostics()
    assert diag.n_draws == 60
    assert post.to_pymc_model().named_vars.keys() >= {"mu", "omega", "z", "loglik"}


def _agreement_rows(a, b, k=4.0):
    import arviz_stats as azs

    rows = []
    stats = {
        "mean": (lambda x: float(x.mean()), {"method": "mean"}),
        "sd": (lambda x: float(x.std()), {"method": "sd"}),
        "q05": (lambda x: float(x.quantile(0.05)), {"method": "quantile", "prob": 0.05}),
        "q95": (lambda x: float(x.quantile(0.95)), {"method": "quantile", "prob": 0.95}),
    }
    for var in ("typical", "omega"):
        for p in a[var].parameter.values:
            xa, xb = a[var].sel(parameter=p), b[var].sel(parameter=p)
            for name, (f, kw) in stats.items():
                ma = float(azs.mcse(xa.to_dataset(name="x"), **kw)["x"])
                mb = float(azs.mcse(xb.to_dataset(name="x"), **kw)["x"])
                rows.append((f"{var}[{p}].{name}", f(xa), f(xb), k * np.hypot(ma, mb)))
    return rows


@pytest.mark.slow
def test_pymc_and_numpyro_posteriors_agree():
    """Same model, two independent samplers: summaries agree within Monte Carlo error.

    Bound per statistic: |a - b| < 4 sqrt(mcse_a^2 + mcse_b^2) (arviz_stats.mcse; quantiles
    with method="quantile"). With 24 statistics the chance of a false failure under exact
    agreement is < 24 * 6.3e-5 (two-sided normal tail beyond 4 SD).

    The second sampler is nutpie (Rust NUTS, its own mass-matrix adaptation) on the model
    built in PyMC: independent of NumPyro in both the model code and the sampler. PyMC's own
    NUTS is as independent but calls the JAX likelihood from Python at every leapfrog step:
    11 minutes alone for this fit (benchmarks/RESULTS_pymc.md), against about one for nutpie.
    """
    design = tq.Design(times=[0.5, 1, 2, 4, 6, 8, 12, 24], doses=[tq.Bolus(0.0, 100.0, 1)])
    sim = tq.simulate_cohort("one_compartment_oral", 12, design, seed=2024)
    kw = {"chains": 4, "warmup": 1000, "draws": 1000, "seed": 1, "progress": False}
    a = tq.fit("one_compartment_oral", sim.cohort, **kw).posterior
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyTensor: no BLAS found
        b = tq.fit("one_compartment_oral", sim.cohort, backend="pymc", sampler="nutpie", **kw)
    b = b.posterior
    bad = [r for r in _agreement_rows(a, b) if abs(r[1] - r[2]) >= r[3]]
    assert not bad, f"outside 4 combined MCSE: {bad}"
    la = np.log(a["theta"].median(("chain", "draw")).values).ravel()
    lb = np.log(b["theta"].median(("chain", "draw")).values).ravel()
    assert np.corrcoef(la, lb)[0, 1] > 0.99


@pytest.mark.slow
def test_script_without_main_guard_samples_with_the_default_and_pymc_samplers(tmp_path):
    # A user's script run as is (no `if __name__ == "__main__":`): the default sampler
    # (nutpie) starts no processes; sampler="pymc" keeps its chains in this process and
    # says so in one warning, instead of PyMC's chain processes re-running the script and
    # dying in a multiprocessing traceback.
    import json
    import subprocess

    script = tmp_path / "no_guard.py"
    script.write_text(
        "import json, warnings\n"
        "import twin_uq as tq\n"
        "tq.configure()\n"
        "design = tq.Design(times=[0.5, 1.0, 2.0, 4.0, 8.0, 24.0], doses=[tq.Bolus(0.0, 100.0, 1)])\n"
        "sim = tq.simulate_cohort('one_compartment_oral', 4, design, seed=3)\n"
        "kw = dict(chains=2, warmup=10, draws=5, max_tree_depth=3, seed=0, progress=False)\n"
        "default = tq.fit('one_compartment_oral', sim.cohort, backend='pymc', **kw)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    own = tq.fit('one_compartment_oral', sim.cohort, backend='pymc', sampler='pymc', **kw)\n"
        "print(json.dumps([json.loads(p.idata.attrs['backend_info']) for p in (default, own)]\n"
        "                 + [[str(w.message) for w in caught if w.category is RuntimeWarning]]))\n"
    )
    res = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=1800
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    default, own, warned = json.loads(res.stdout.strip().splitlines()[-1])
    assert default["sampler"] == "nutpie"
    assert own["sampler"] == "pymc" and own["cores"] == 1 and own["mp_ctx"] == "none"
    assert len(warned) == 1 and "Put the script's code under that guard" in warned[0]
