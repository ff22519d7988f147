"""Stage 2 of a two-stage fit: a patient whose update did not sample is reported as failed.

The worker runs the twin update's NUTS (:func:`twin_uq.twin.update.run_update`) per
patient; one that raises :class:`~twin_uq.twin.UpdateFailedError` is left out of the
batch's numbers and named with its reason, and the batch's other patients come back
(no cluster needed: the task function is called directly).
"""

import numpy as np
import pytest

import twin_uq as tq
from twin_uq.distributed._worker import conditional_batch
from twin_uq.distributed.assemble import IncompleteResultError, check_complete


def test_a_patient_failed_inside_a_batch_is_missing_with_its_own_reason():
    done = {0: {"ids": ["a"], "failed": {"b": "UpdateFailedError: b did not sample"}}}
    failed = {1: "KilledWorker: lost"}
    with pytest.raises(IncompleteResultError) as info:
        check_complete(["a", "b", "c"], done, failed, [[0, 1], [2]])
    err = info.value
    assert err.missing == ["b", "c"]
    assert err.failures == {"b": "UpdateFailedError: b did not sample", "c": "KilledWorker: lost"}
    assert "b did not sample" in str(err) and "KilledWorker" in str(err)
    check_complete(["a"], done, {}, [[0]])  # the patients asked for all came back


@pytest.mark.slow
def test_the_worker_returns_the_good_patient_and_names_the_failed_one():
    model = tq.load_model("one_compartment_iv")
    design = tq.Design(times=[0.5, 2.0, 8.0], doses=[tq.Bolus(0.0, 100.0, 1)])
    cohort = tq.simulate_cohort(model, 2, design, seed=1).cohort
    ids = list(cohort.ids)
    S, K = 8, 2
    mean = np.log([5.0, 50.0]) + 0.05 * np.random.default_rng(0).standard_normal((2, S, K))
    # The second patient's population mean is far outside the model's range (exp(1e4)
    # overflows): its log density is -inf everywhere, so its chains cannot move.
    mean[1] = 1e4
    payload = dict(
        model="one_compartment_iv", settings=model.solver, table=cohort.to_dataframe(),
        ids=ids, mean=mean, chol=np.broadcast_to(0.3 * np.eye(K), (S, K, K)).copy(),
        add=np.full((S, 1), 0.1), prop=np.full((S, 1), 0.1), nu=np.full(S, 1e6),
        error_code=np.asarray([2]), n_obs=4, seeds=np.asarray([1, 2]), chains=2,
        warmup=20, draws=10,
    )  # fmt: skip
    out = conditional_batch(payload)
    assert out["ids"] == [ids[0]] and list(out["failed"]) == [ids[1]]
    assert out["failed"][ids[1]].startswith(f"The NUTS update of patient {ids[1]!r}")
    assert "never moved" in out["failed"][ids[1]]
    assert out["theta"].shape == (1, 2, 10, K) and np.all(np.isfinite(out["theta"]))
    assert out["r_hat"].shape == out["f"].shape[:1] == (1,)


def test_update_many_names_a_patient_whose_update_did_not_sample():
    from types import SimpleNamespace

    from twin_uq.distributed.updates import _update_task, collect_updates
    from twin_uq.posterior.failure import SamplerFailure
    from twin_uq.twin import UpdateFailedError

    failure = SamplerFailure("nuts-conditional", (0, 1), (0, 1), (), 10)

    def update(rows, **kwargs):
        raise UpdateFailedError(failure, "b")

    post = SimpleNamespace(twin=lambda pid: SimpleNamespace(update=update))
    # the task returns the failure (a retry would fail the same way) instead of raising
    out = _update_task(post, "b", None, {})
    assert out["failed"].startswith("UpdateFailedError: The NUTS update of patient 'b'")
    good = {"theta": np.ones((4, 2))}
    with pytest.raises(IncompleteResultError) as info:
        collect_updates(["a", "b", "c"], {"a": good, "b": out}, {"c": "KilledWorker: lost"})
    assert info.value.missing == ["b", "c"]
    assert info.value.failures == {"b": out["failed"], "c": "KilledWorker: lost"}
    assert "never moved" in str(info.value)
    assert collect_updates(["a"], {"a": good}, {}) == {"a": good}
