"""Property-based tests of the data layer, and a fuzz run of the table reader (slow).

Properties (any valid generated long table):

* CSV, Parquet and DataFrame input give the same Cohort, with exactly the patients,
  observations, doses and covariates the table describes;
* the order of the rows does not change any patient's data (interleaving patients, or any
  shuffle with ``sort=True``);
* ``Cohort.for_model`` keeps every observation exactly once (masks and padding) and every
  dose in the schedule;
* an invalid mutation of one row (missing, non-numeric or negative time, a dose without an
  amount, an infinite value) is always refused with a :class:`CohortError` naming that row
  and column.

The fuzz run feeds ``read_cohort`` arbitrary bytes and text, garbled CSVs and Parquet
files, and DataFrames holding arbitrary Python objects: it must return a valid Cohort or
raise :class:`CohortError`, never another exception, never hang.
"""

from __future__ import annotations

import contextlib
import io
import signal
import time
import warnings
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import twin_uq as tq
from twin_uq.data import Cohort, CohortError, CohortWarning, read_cohort
from twin_uq.data.model_checks import DepotInfusionWarning

OUTPUTS = ("concentration", "effect")  # the outputs of pkpd_emax
ID_CHARS = "ABCxyz0189-_,\"'é/#:"  # CSV-special characters inside ids (quoting)
COLUMNS = (
    "ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "RATE", "DUR", "ADDL", "II",
    "output", "LLOQ", "WT", "SEX",
)  # fmt: skip
FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


# ---- a generator of valid tables, with the content each one describes ---------------------------

EVENT = st.sampled_from(
    ["obs", "obs", "obs2", "blq", "mdv", "bolus", "infusion", "infusion_dur", "addl", "evid2"]
)


@st.composite
def events(draw):
    kind = draw(EVENT)
    return {
        "kind": kind,
        "step": draw(st.integers(0, 12)) / 4,  # quarter hours: exact in CSV; 0 gives ties
        "value": draw(st.floats(0.01, 1000.0, allow_nan=False, allow_infinity=False)),
        "cmt": draw(st.integers(0, 2)),
        "extra": draw(st.floats(0.25, 24.0, allow_nan=False)),
        "n": draw(st.integers(1, 3)),
        "below": draw(st.one_of(st.none(), st.floats(0.0, 0.99))),
        "wt": draw(st.floats(30.0, 150.0, allow_nan=False)),
    }


@st.composite
def tables(draw):
    """A valid long table (DataFrame) and, per patient, what it must contain."""
    n_pat = draw(st.integers(1, 4))
    if draw(st.booleans()):
        ids = draw(st.lists(st.integers(0, 10**6), min_size=n_pat, max_size=n_pat, unique=True))
    else:
        ids = draw(
            st.lists(
                st.text(ID_CHARS, max_size=6).map(lambda s: "P" + s),
                min_size=n_pat,
                max_size=n_pat,
                unique=True,
            )
        )
    patients = []
    for pid in ids:
        evs = draw(st.lists(events(), min_size=1, max_size=7))
        sex = draw(st.sampled_from(["F", "M"]))
        t, rows = 0.0, []
        spec = {"id": str(pid), "obs": [], "boluses": [], "infusions": [], "excluded": 0}
        spec["sex"], spec["wt"] = sex, None
        for j, e in enumerate(evs):
            # a covariate change gets a time of its own, so the baseline value is unambiguous
            t += max(e["step"], 0.25) if e["kind"] == "evid2" else e["step"]
            v = e["value"] + j * 1e-3  # distinct values: no row duplicates another
            row = {c: np.nan for c in COLUMNS} | {"ID": pid, "TIME": t, "EVID": 0, "MDV": 0}
            row["SEX"] = sex
            kind = e["kind"]
            if kind in ("obs", "obs2"):
                out = OUTPUTS[kind == "obs2"]
                row |= {"DV": v, "output": out}
                spec["obs"].append((t, v, out, False))
            elif kind == "blq":
                dv = np.nan if e["below"] is None else e["below"]
                row |= {"DV": dv, "LLOQ": 1.0 + j / 1000, "output": OUTPUTS[0]}
                spec["obs"].append((t, 0.0 if np.isnan(dv) else dv, OUTPUTS[0], True))
            elif kind == "mdv":
                row |= {"DV": v, "MDV": 1, "output": OUTPUTS[0]}
                spec["excluded"] += 1
            elif kind == "evid2":
                wt = e["wt"] + j * 1e-3
                row |= {"EVID": 2, "WT": wt}
                spec["excluded"] += 1
                spec["wt"] = wt if spec["wt"] is None else spec["wt"]
            else:
                row |= {"AMT": v, "EVID": 1, "MDV": 1, "CMT": e["cmt"]}
                cmt = e["cmt"]
                if kind == "bolus":
                    spec["boluses"].append((t, v, cmt))
                elif kind == "addl":
                    row |= {"ADDL": e["n"], "II": e["extra"]}
                    spec["boluses"] += [(t + k * e["extra"], v, cmt) for k in range(e["n"] + 1)]
                elif kind == "infusion":
                    row["RATE"] = v / e["extra"]
                    spec["infusions"].append((t, v, e["extra"], cmt))
                else:
                    row |= {"RATE": -2, "DUR": e["extra"]}
                    spec["infusions"].append((t, v, e["extra"], cmt))
            rows.append(row)
        patients.append((spec, rows))
    # Interleave the patients, each patient's rows keeping their order.
    order = draw(st.permutations([k for k, (_, rows) in enumerate(patients) for _ in rows]))
    cursor = [0] * n_pat
    records = []
    for k in order:
        records.append(patients[k][1][cursor[k]])
        cursor[k] += 1
    df = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    df["EVID"] = df["EVID"].astype(np.int64)
    df["MDV"] = df["MDV"].astype(np.int64)
    return df, [spec for spec, _ in patients]


def as_multiset(items) -> Counter:
    return Counter(items)


def check_content(c: Cohort, df: pd.DataFrame, specs: list[dict]) -> None:
    """``c`` holds exactly the patients, observations, doses and covariates of ``specs``."""
    assert c.ids == tuple(dict.fromkeys(str(i) for i in df["ID"]))
    assert sorted(c.ids) == sorted(s["id"] for s in specs)
    for s in specs:
        k = c.index(s["id"])
        m = c.obs_mask[k]
        got = [
            (t, v, c.outputs[o], bool(z))
            for t, v, o, z in zip(
                c.obs_time[k][m], c.obs_value[k][m], c.obs_output[k][m], c.obs_censored[k][m],
                strict=True,
            )
        ]  # fmt: skip
        assert got == s["obs"]  # each patient's observations, in time order, once each
        bol = [(b.time, b.amount, b.cmt) for b in c.boluses[k]]
        assert as_multiset(bol) == as_multiset(s["boluses"])
        assert [b[0] for b in bol] == sorted(b[0] for b in bol)
        inf = c.infusions[k]
        assert [i.start for i in inf] == sorted(i.start for i in inf)
        assert len(inf) == len(s["infusions"])
        for got_i, (t, amt, dur, cmt) in zip(
            sorted(inf, key=lambda i: (i.start, i.rate * i.duration)),
            sorted(s["infusions"], key=lambda i: (i[0], i[1])),
            strict=True,
        ):
            assert (got_i.start, got_i.cmt) == (t, cmt)
            assert got_i.duration == pytest.approx(dur, rel=1e-12)
            assert got_i.rate * got_i.duration == pytest.approx(amt, rel=1e-12)
        assert (c.excluded["id"] == s["id"]).sum() == s["excluded"]
        assert c.covariates.loc[s["id"], "SEX"] == s["sex"]
        wt = c.covariates.loc[s["id"], "WT"]
        assert np.isnan(wt) if s["wt"] is None else wt == s["wt"]
        # padding: masked out, value 0, no limit, times never decrease
        assert not c.obs_censored[k][~m].any()
        assert (c.obs_value[k][~m] == 0).all() and np.isneginf(c.obs_lloq[k][~m]).all()
        assert (np.diff(c.obs_time[k]) >= 0).all()


# ---- round trips -------------------------------------------------------------------------------


@FAST
@given(tables())
def test_csv_parquet_and_dataframe_give_the_same_cohort(tmp_path_factory, data):
    df, specs = data
    folder = tmp_path_factory.mktemp("rt")
    c = read_cohort(df)
    check_content(c, df, specs)
    df.to_csv(folder / "c.csv", index=False)
    df.to_parquet(folder / "c.parquet")
    assert read_cohort(folder / "c.csv") == c
    assert read_cohort(folder / "c.parquet") == c
    # and the normalised table reads back to the same cohort
    assert read_cohort(c.to_dataframe()) == c


# ---- row order ---------------------------------------------------------------------------------


def per_patient(c: Cohort) -> dict[str, tuple]:
    """Everything about each patient, keyed by id (independent of patient order)."""
    out = {}
    for k, pid in enumerate(c.ids):
        m = c.obs_mask[k]
        obs = sorted(
            zip(
                c.obs_time[k][m].tolist(), c.obs_value[k][m].tolist(),
                [c.outputs[o] for o in c.obs_output[k][m]], c.obs_censored[k][m].tolist(),
                strict=True,
            )
        )  # fmt: skip
        times = c.obs_time[k][m].tolist()
        assert times == sorted(times)
        doses = (Counter(c.boluses[k]), Counter(c.infusions[k]))
        cov = tuple(c.covariates.loc[pid].astype(str))
        out[pid] = (obs, doses, cov, int((c.excluded["id"] == pid).sum()))
    return out


@FAST
@given(tables(), st.randoms(use_true_random=False))
def test_row_order_does_not_change_any_patient(data, rnd):
    df, _ = data
    c = read_cohort(df)
    expected = per_patient(c)
    # Another interleaving of the patients (each patient's rows in order): accepted as is.
    groups = [g for _, g in df.groupby("ID", sort=False)]
    labels = [lab for g in groups for lab in g.index]
    owner = [k for k, g in enumerate(groups) for _ in range(len(g))]
    rnd.shuffle(owner)
    cursor = [0] * len(groups)
    order = []
    for k in owner:
        order.append(groups[k].index[cursor[k]])
        cursor[k] += 1
    assert sorted(order) == sorted(labels)
    again = read_cohort(df.loc[order].reset_index(drop=True))
    assert per_patient(again) == expected
    assert again.ids == tuple(dict.fromkeys(str(i) for i in df.loc[order, "ID"]))
    # Any shuffle, with sort=True: the same patients (a warning says who was re-ordered).
    shuffled = list(df.index)
    rnd.shuffle(shuffled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CohortWarning)
        resorted = read_cohort(df.loc[shuffled].reset_index(drop=True), sort=True)
    assert per_patient(resorted) == expected


# ---- padded arrays for a model -----------------------------------------------------------------


@pytest.fixture(scope="module")
def pkpd():
    return tq.load_model("pkpd_emax")


@FAST
@given(tables())
def test_model_arrays_keep_every_observation_and_dose_once(pkpd, data):
    df, specs = data
    c = read_cohort(df)
    with warnings.catch_warnings():
        # Generated infusions may go into the depot; that question is tested elsewhere.
        warnings.simplefilter("ignore", DepotInfusionWarning)
        a = c.for_model(pkpd)
    P, N = c.n_patients, max(1, max(len(s["obs"]) for s in specs))
    assert a.obs_time.shape == a.obs_mask.shape == (P, N)
    mask = np.asarray(a.obs_mask)
    assert mask.sum() == sum(len(s["obs"]) for s in specs)
    for s in specs:
        k = c.ids.index(s["id"])
        m = mask[k]
        got = [
            (t, v, pkpd.output_names[o], bool(z))
            for t, v, o, z in zip(
                np.asarray(a.obs_time)[k][m], np.asarray(a.obs_value)[k][m],
                np.asarray(a.obs_output)[k][m], np.asarray(a.obs_censored)[k][m],
                strict=True,
            )
        ]  # fmt: skip
        assert as_multiset(got) == as_multiset(s["obs"])
        lloq = np.asarray(a.obs_lloq)[k][m]
        censored = np.asarray(a.obs_censored)[k][m]
        assert (lloq[censored] >= 1.0).all() and np.isneginf(lloq[~censored]).all()
        sched = a.schedule
        bm = np.asarray(sched.bolus_mask)[k]
        got_b = zip(
            np.asarray(sched.bolus_time)[k][bm], np.asarray(sched.bolus_amount)[k][bm],
            np.asarray(sched.bolus_cmt)[k][bm], strict=True,
        )  # fmt: skip
        assert as_multiset(got_b) == as_multiset(s["boluses"])
        assert (np.asarray(sched.bolus_amount)[k][~bm] == 0).all()
        im = np.asarray(sched.infusion_mask)[k]
        delivered = (np.asarray(sched.infusion_stop) - np.asarray(sched.infusion_start))[k][im]
        delivered = delivered * np.asarray(sched.infusion_rate)[k][im]
        np.testing.assert_allclose(
            np.sort(delivered), np.sort([i[1] for i in s["infusions"]]), rtol=1e-12
        )
        wt = np.asarray(a.covariates)[k, pkpd.covariates.index("WT")]
        assert wt == (70.0 if s["wt"] is None else s["wt"])  # the model's default fills gaps


# ---- invalid mutations are refused, naming the row ---------------------------------------------

MUTATIONS = {
    "time missing": ("TIME", np.nan),
    "time negative": ("TIME", -0.5),
    "time not a number": ("TIME", "1h"),
    "time infinite": ("TIME", np.inf),
    "amount missing": ("AMT", np.nan),
    "amount not a number": ("AMT", "ten"),
    "value infinite": ("DV", np.inf),
}


@FAST
@given(tables(), st.sampled_from(sorted(MUTATIONS)), st.integers(0, 10**6), st.booleans())
def test_invalid_mutation_is_refused_naming_the_row(data, what, pick, via_csv):
    df, _ = data
    column, bad = MUTATIONS[what]
    rows = np.flatnonzero(df["EVID"].to_numpy() == 1) if column == "AMT" else np.arange(len(df))
    if column == "DV":
        rows = np.flatnonzero(df["DV"].notna().to_numpy())
    if rows.size == 0:
        return
    i = int(rows[pick % rows.size])
    df = df.astype({column: object})
    df.loc[i, column] = bad
    if via_csv:
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        source: object = _write(buf.getvalue())
        label = i + 2  # the line in the file, the header being line 1
    else:
        source, label = df, i
    with pytest.raises(CohortError) as err:
        read_cohort(source)
    named = [(p.row, p.column) for p in err.value.problems]
    assert (label, column) in named, (what, named)
    word = "line" if via_csv else "index"
    assert f"{word} {label}, column {column}" in str(err.value)


_TMP: dict[str, object] = {}


def _write(text: str | bytes, suffix: str = ".csv"):
    """Write to one reused temporary file per suffix (no fixture inside @given)."""
    import tempfile
    from pathlib import Path

    folder = _TMP.setdefault("dir", Path(tempfile.mkdtemp(prefix="twin_uq_fuzz_")))
    path = folder / f"t{suffix}"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# ---- fuzz: read_cohort returns a Cohort or raises CohortError, nothing else ---------------------

#: Seconds one read may take before it counts as a hang.
HANG_SECONDS = 20
FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
_FUZZ_STATS: Counter = Counter()


@contextlib.contextmanager
def _no_hang(seconds: int):
    def alarm(signum, frame):
        raise TimeoutError(f"read_cohort did not finish within {seconds} s (hang)")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def reads_or_refuses(read: Callable[[], Cohort], kind: str) -> None:
    """``read()`` returns a consistent Cohort or raises CohortError; nothing else."""
    _FUZZ_STATS[kind] += 1
    with _no_hang(HANG_SECONDS), warnings.catch_warnings():
        warnings.simplefilter("ignore", CohortWarning)
        try:
            c = read()
        except CohortError as e:
            assert str(e).strip(), "a CohortError must say what is wrong"
            _FUZZ_STATS[f"{kind}: refused"] += 1
            return
    _FUZZ_STATS[f"{kind}: read"] += 1
    assert isinstance(c, Cohort) and c.n_patients >= 1
    m = c.obs_mask
    assert np.isfinite(c.obs_time).all() and (c.obs_time >= 0).all()
    assert np.isfinite(c.obs_value[m]).all()
    for b in c.boluses:
        assert all(np.isfinite(x.time) and x.amount > 0 for x in b)
    for i in c.infusions:
        assert all(x.rate > 0 and x.duration > 0 for x in i)


CSV_TOKENS = st.sampled_from(
    [",", '"', "\n", "\r\n", "\r", "\t", ";", "\x00", "\ufeff", "é", "nan", "NA", "inf",
     "-inf", "1e400", "-1e-400", "1e308", "0x10", "١٢", "½", "True", " ", ".", "-", "--1",
     "1,5", "2024-01-01", "ID", "TIME", "AMT", "EVID", "RATE", "-2", "-1", "3", "4", "SS",
     "ADDL", "II", "1" * 400, "\\", "'", "#", "=1+1"]
)  # fmt: skip


@st.composite
def garbled_csv(draw) -> bytes:
    df, _ = draw(tables())
    text = df.to_csv(index=False)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "dup_line", "swap", "cut"]))
        n = len(text)
        a = draw(st.integers(0, max(n - 1, 0)))
        b = draw(st.integers(a, min(n, a + 40)))
        if op == "insert":
            text = text[:a] + draw(CSV_TOKENS) + text[a:]
        elif op == "delete":
            text = text[:a] + text[b:]
        elif op == "replace":
            text = text[:a] + draw(st.text(max_size=8)) + text[b:]
        elif op == "cut":
            text = text[:a]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if op == "dup_line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text.encode("utf-8", errors="surrogatepass")


WEIRD = st.sampled_from(
    [None, [], {}, (), b"x", True, False, 10**30, -(10**30), -0.0, float("inf"), float("nan"),
     complex(1, 2), pd.Timestamp("2024-01-01"), pd.NaT, Decimal("1.5"), "", " ", "\x00",
     object(), np.datetime64("2024-01-01"), np.int8(-3), np.float32(2.5), pd.NA, "-2", "1e400"]
)  # fmt: skip


@st.composite
def garbled_frame(draw) -> pd.DataFrame:
    df, _ = draw(tables())
    df = df.astype(object)
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(df) - 1))
        col = draw(st.sampled_from(list(df.columns)))
        with contextlib.suppress(Exception):  # pandas may refuse some objects in a cell
            df.at[i, col] = draw(st.one_of(WEIRD, st.text(max_size=5), st.floats()))
    if draw(st.booleans()):  # odd column names too
        names = list(df.columns)
        k = draw(st.integers(0, len(names) - 1))
        names[k] = draw(st.one_of(st.text(max_size=6), st.integers(), st.none(), WEIRD))
        with contextlib.suppress(Exception):
            df.columns = names
    return df


@st.composite
def garbled_parquet(draw) -> bytes:
    df, _ = draw(tables())
    buf = io.BytesIO()
    df.to_parquet(buf)
    raw = bytearray(buf.getvalue())
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            k = draw(st.integers(0, len(raw) - 1))
            raw[k] = draw(st.integers(0, 255))
        else:
            raw = raw[: draw(st.integers(0, len(raw)))] or bytearray(b"P")
    return bytes(raw)


@pytest.mark.slow
def test_fuzz_read_cohort_reads_or_refuses():
    """About a minute of fuzzing; prints how many inputs of each kind were read or refused."""
    start = time.monotonic()

    @FUZZ
    @given(st.binary(max_size=3000))
    def arbitrary_bytes(data):
        reads_or_refuses(lambda: read_cohort(_write(data)), "bytes")

    @FUZZ
    @given(st.text(max_size=3000))
    def arbitrary_text(text):
        path = _write(text.encode("utf-8", errors="surrogatepass"), ".tsv")
        reads_or_refuses(lambda: read_cohort(path), "text")

    @FUZZ
    @given(garbled_csv())
    def garbled_csvs(data):
        reads_or_refuses(lambda: read_cohort(_write(data)), "garbled csv")

    @FUZZ
    @given(garbled_parquet())
    def garbled_parquets(data):
        reads_or_refuses(lambda: read_cohort(_write(data, ".parquet")), "garbled parquet")

    @FUZZ
    @given(garbled_frame())
    def garbled_frames(df):
        reads_or_refuses(lambda: read_cohort(df), "garbled DataFrame")

    for run in (arbitrary_bytes, arbitrary_text, garbled_csvs, garbled_parquets, garbled_frames):
        run()
    elapsed = time.monotonic() - start
    print(f"\nfuzz: {sum(v for k, v in _FUZZ_STATS.items() if ':' not in k)} inputs in "
          f"{elapsed:.0f} s: {dict(_FUZZ_STATS)}")  # fmt: skip
    for kind in ("garbled csv", "garbled DataFrame"):
        assert _FUZZ_STATS[f"{kind}: read"] > 0  # the fuzzer also reaches valid tables
