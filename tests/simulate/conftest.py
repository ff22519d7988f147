"""Small models written for the engine tests (not part of the library)."""

import jax.numpy as jnp
import pytest

import twin_uq as tq


class OralWithSink(tq.Model):
    """One-compartment oral PK plus a third state collecting the eliminated amount."""

    name = "oral_with_sink"
    states = ("depot", "central", "eliminated")
    parameters = (
        tq.Parameter("ka", "1/h", 1.0),
        tq.Parameter("CL", "L/h", 5.0),
        tq.Parameter("V", "L", 50.0),
    )
    outputs = (tq.Output("concentration", "mg/L"), tq.Output("total", "mg"))
    card = tq.ModelCard("test", "test", "h")
    solver = tq.SolverSettings("exact")

    def linear_system(self, theta):
        ka, k = theta["ka"], theta["CL"] / theta["V"]
        z = jnp.zeros_like(ka)
        return jnp.stack([jnp.stack([-ka, z, z]), jnp.stack([ka, -k, z]), jnp.stack([z, k, z])])

    def observe(self, y, theta):
        return jnp.stack([y[1] / theta["V"], y.sum()])


class SignalIntegrator(tq.Model):
    """dy/dt = gain * insulin(t): the state is the running integral of the signal."""

    name = "signal_integrator"
    states = ("integral",)
    signals = ("insulin",)
    parameters = (tq.Parameter("gain", "1", 1.0),)
    outputs = (tq.Output("integral", "U·min/L"),)
    card = tq.ModelCard("test", "test", "min")
    solver = tq.SolverSettings("tsit5", rtol=1e-10, atol=1e-12)

    def rhs(self, t, y, theta, inputs, covariates):
        return jnp.stack([theta["gain"] * inputs["insulin"]])

    def observe(self, y, theta):
        return y[:1]


class Explosive(tq.Model):
    """dy/dt = a y^2 with y(0) = 1: blows up at t = 1/a."""

    name = "explosive"
    states = ("y",)
    parameters = (tq.Parameter("a", "1/h", 1.0),)
    outputs = (tq.Output("y", "1"),)
    card = tq.ModelCard("test", "test", "h")
    solver = tq.SolverSettings("tsit5", max_steps=64)

    def y0(self, theta, covariates):
        return jnp.ones(1)

    def rhs(self, t, y, theta, inputs, covariates):
        return theta["a"] * y**2

    def observe(self, y, theta):
        return y[:1]


class NaNModel(tq.Model):
    """Right-hand side that is NaN for a < 1 (sqrt of a negative number)."""

    name = "nan_model"
    states = ("y",)
    parameters = (tq.Parameter("a", "1/h", 2.0),)
    outputs = (tq.Output("y", "1"),)
    card = tq.ModelCard("test", "test", "h")
    solver = tq.SolverSettings("tsit5", max_steps=64)

    def rhs(self, t, y, theta, inputs, covariates):
        return -jnp.sqrt(theta["a"] - 1.0) * y + 1.0

    def observe(self, y, theta):
        return y[:1]


@pytest.fixture(scope="session")
def sink_model():
    return OralWithSink()


@pytest.fixture(scope="session")
def oral():
    return tq.load_model("one_compartment_oral")
