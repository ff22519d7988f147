"""``twin-uq fit --scheduler``: two-stage fits on Dask from the command line."""

import pytest
from cli_helpers import one_error_line
from optional_deps import require

import twin_uq as tq
from twin_uq.cli.fit import parse_scheduler

GOOD = "ID,TIME,DV,AMT,EVID\nA,0,.,100,1\nA,1,5.0,.,0\nB,0,.,100,1\nB,2,3.0,.,0\n"


@pytest.mark.parametrize(
    ("text", "workers"),
    [
        (None, None),
        ("local", 2),
        ("local:3", 3),
        ("tcp://10.0.0.5:8786", None),
        ("host:8786", None),
    ],
)
def test_parse_scheduler(text, workers):
    assert parse_scheduler(text) == workers


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (["--scheduler", "local:0"], "write local:N with N >= 1"),
        (["--scheduler", "local:two"], "write local:N with N >= 1"),
        (["--scheduler", "myhost"], "give a scheduler address such as tcp://host:8786"),
        (
            ["--scheduler", "local", "--subsample", "0"],
            "--subsample 0 and --batch-size 32 must be >= 1",
        ),
    ],
)
def test_bad_scheduler_options_are_refused_before_any_work(cli, tmp_path, option, fragment):
    data = tmp_path / "cohort.csv"
    data.write_text(GOOD)
    out = tmp_path / "fit.nc"
    result = cli("fit", data, "--model", "one_compartment_oral", "--out", out, *option)
    assert fragment in one_error_line(result)
    assert not out.exists()


@pytest.mark.slow
def test_fit_on_a_local_cluster_writes_every_patient_once(cli, tmp_path, oral_sim):
    """A real two-stage fit on a 2-worker LocalCluster, stage 1 on half the patients."""
    require("distributed")
    data = tmp_path / "cohort.csv"
    oral_sim.table.to_csv(data, index=False)
    out = tmp_path / "fit.nc"
    result = cli("fit", data, "--model", "one_compartment_oral", "--out", out,
                 "--scheduler", "local:2", "--subsample", "8", "--batch-size", "4",
                 "--chains", "2", "--warmup", "300", "--draws", "300")  # fmt: skip
    assert result.exit_code == 0, result.output
    post = tq.load_posterior(out)
    ids = [str(p) for p in post.posterior["patient"].values]
    assert sorted(ids) == sorted(str(p) for p in oral_sim.table["id"].unique())
    assert len(set(ids)) == len(ids)
    assert post.idata.attrs["approximate"] == "true"
    assert '"method": "two-stage"' in post.idata.attrs["settings"]
    assert '"subsample": 8' in post.idata.attrs["settings"]
