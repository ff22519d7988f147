"""tq.configure(): importing twin_uq changes nothing; configure() sets JAX up, once.

Each check that needs a fresh interpreter (JAX not started yet) runs a small script in a
subprocess with the test environment's JAX variables removed.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import twin_uq as tq
from twin_uq._processes import unguarded_main_script


def run(code: str, tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XLA_FLAGS", "JAX_ENABLE_X64", "JAX_NUM_CPU_DEVICES")
        and not k.startswith("TWIN_UQ_")
    }
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script)], env=clean | {"TWIN_UQ_CACHE": "off"} | env,
        capture_output=True, text=True,
        timeout=300, cwd=tmp_path,
    )  # fmt: skip


def test_import_sets_nothing_and_configure_sets_float64_and_devices(tmp_path):
    res = run(
        """
        import json, os, sys
        import twin_uq as tq
        before = {
            "jax": "jax" in sys.modules,
            "env": sorted(k for k in ("XLA_FLAGS", "JAX_ENABLE_X64", "JAX_NUM_CPU_DEVICES")
                          if k in os.environ),
        }
        import jax
        import jax.numpy as jnp
        assert not jax.config.jax_enable_x64
        first = tq.configure()
        again = tq.configure()
        after = {"dtype": str(jnp.ones(1).dtype), "devices": jax.device_count(),
                 "env": [os.environ["JAX_ENABLE_X64"], os.environ["JAX_NUM_CPU_DEVICES"]]}
        print(json.dumps({"before": before, "first": [first.x64, first.host_devices],
                          "again": [again.x64, again.host_devices], "after": after}))
        """,
        tmp_path,
        TWIN_UQ_HOST_DEVICES="3",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["before"] == {"jax": False, "env": []}
    assert out["first"] == [True, 3] and out["again"] == [True, 3]
    assert out["after"] == {"dtype": "float64", "devices": 3, "env": ["1", "3"]}


def test_late_host_devices_is_refused_with_what_to_do(tmp_path):
    res = run(
        """
        import jax.numpy as jnp
        import twin_uq as tq
        jnp.ones(1).block_until_ready()  # JAX has started: 1 CPU device
        assert tq.configure(host_devices=1).host_devices == 1  # the same count: fine
        try:
            tq.configure(host_devices=4)
        except tq.TwinUQError as err:
            print(type(err).__name__, err)
        """,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ConfigurationError JAX has already started with 1 CPU device")
    assert "call tq.configure() before the first JAX computation" in res.stdout


def test_x64_false_is_a_choice_forgetting_configure_is_warned(tmp_path):
    res = run(
        """
        import warnings
        import twin_uq as tq
        sched = tq.Schedule.build([tq.Bolus(0.0, 10.0)])
        params = {"ka": 1.0, "CL": 1.0, "V": 10.0}
        with warnings.catch_warnings(record=True) as forgot:
            warnings.simplefilter("always")
            tq.simulate("one_compartment_oral", params, sched, [1.0])
        tq.configure(x64=False)
        with warnings.catch_warnings(record=True) as chose:
            warnings.simplefilter("always")
            traj = tq.simulate("one_compartment_oral", params, sched, [1.0])
        print([w.category.__name__ for w in forgot], len(chose), traj.outputs.dtype)
        """,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["['PrecisionWarning']", "0", "float32"]


def test_configure_in_the_test_process_is_idempotent():
    import jax

    cfg = tq.configure()  # conftest configured already: nothing changes
    assert cfg.x64 and jax.config.jax_enable_x64
    assert cfg.host_devices == len(jax.devices("cpu"))
    with pytest.raises(tq.TwinUQError, match="host_devices must be a whole number >= 1"):
        tq.configure(host_devices=0)


CACHE_SCRIPT = """
    import json, os, sys
    import twin_uq as tq
    import jax
    seen = [jax.config.jax_compilation_cache_dir]  # import twin_uq set nothing
    cfg = tq.configure(host_devices=1)
    seen.append([str(cfg.compilation_cache), jax.config.jax_compilation_cache_dir,
                 jax.config.jax_persistent_cache_min_compile_time_secs])
    # Count what the cache gives back on a program that takes XLA a while to compile.
    hits = []
    jax.monitoring.register_event_listener(
        lambda e, **kw: hits.append(e) if e == "/jax/compilation_cache/cache_hits" else None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    x = jax.numpy.arange(8.0)
    jax.jit(lambda v: jax.numpy.cumsum(jax.numpy.sin(v) ** 2 + v)[::-1])(x).block_until_ready()
    seen.append(len(hits))
    off = tq.configure(compilation_cache=False)
    seen.append([off.compilation_cache, jax.config.jax_compilation_cache_dir])
    other = tq.configure(compilation_cache=sys.argv[1] if len(sys.argv) > 1 else "other")
    seen.append(str(other.compilation_cache))
    print(json.dumps(seen))
"""


def test_configure_turns_the_compilation_cache_on_and_off(tmp_path):
    folder = tmp_path / "cache"
    first = run(CACHE_SCRIPT, tmp_path, TWIN_UQ_CACHE=str(folder))
    assert first.returncode == 0, first.stderr
    seen = json.loads(first.stdout.strip().splitlines()[-1])
    assert seen[0] is None
    assert seen[1] == [str(folder / "jax"), str(folder / "jax"), 0.1]
    assert seen[2] == 0  # a cold cache gives nothing back ...
    assert seen[3] == [None, None]
    assert seen[4] == str(tmp_path / "other" / "jax")
    assert any((folder / "jax").iterdir())  # ... and keeps what was compiled


@pytest.mark.slow
def test_a_new_process_reuses_the_compiled_program(tmp_path):
    hits = []
    for _ in range(2):
        res = run(CACHE_SCRIPT, tmp_path, TWIN_UQ_CACHE=str(tmp_path / "cache"))
        assert res.returncode == 0, res.stderr
        hits.append(json.loads(res.stdout.strip().splitlines()[-1])[2])
    assert hits[0] == 0 and hits[1] >= 1  # the jitted program (and arange's) come back


def test_cache_off_a_users_jax_folder_and_an_unwritable_one(tmp_path):
    res = run(
        """
        import json, jax
        import twin_uq as tq
        seen = [str(tq.configure().compilation_cache)]             # TWIN_UQ_CACHE=off
        jax.config.update("jax_compilation_cache_dir", "/tmp/users_own")
        seen.append(str(tq.configure().compilation_cache))           # the user's folder stays
        try:
            tq.configure(compilation_cache="/proc/no_such_place")
        except tq.TwinUQError as err:
            seen.append(str(err))
        print(json.dumps(seen))
        """,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert seen[:2] == ["None", "/tmp/users_own"]
    assert seen[2].startswith("compilation_cache='/proc/no_such_place': cannot create")


@pytest.mark.parametrize(
    ("body", "guarded"),
    [
        ("print(unguarded_main_script())", False),
        ("def go():\n    print(unguarded_main_script())\n\n\ngo()", False),
        ("if __name__ == '__main__':\n    print(unguarded_main_script())", True),
        (
            "def go():\n    print(unguarded_main_script())\n\n\nif '__main__' == __name__:\n    go()",
            True,
        ),
    ],
)
def test_unguarded_main_script(tmp_path, body, guarded):
    res = run("from twin_uq._processes import unguarded_main_script\n" + body, tmp_path)
    assert res.returncode == 0, res.stderr
    expected = "None" if guarded else str(tmp_path / "script.py")
    assert res.stdout.strip() == expected


def test_no_main_script_means_no_guard_needed():
    # Under pytest the call does not come from the __main__ module's top level.
    assert unguarded_main_script() is None
