"""The command line's persistent compilation cache: where it goes, and how to turn it off.

Run in a fresh interpreter each: the setting is process-wide, and the test process must
keep its own (no cache) for the rest of the suite.
"""

import json
import subprocess
import sys

SCRIPT = """
import json, jax
from twin_uq.cli._cache import enable_compilation_cache
folder = enable_compilation_cache()
print(json.dumps({"folder": None if folder is None else str(folder),
                  "dir": jax.config.jax_compilation_cache_dir,
                  "min_s": jax.config.jax_persistent_cache_min_compile_time_secs}))
"""


def _run(env_value):
    env = {"PATH": "", "HOME": "/proc/twin_uq_no_home", "JAX_PLATFORMS": "cpu"}
    if env_value is not None:
        env["TWIN_UQ_CACHE"] = env_value
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cache_folder_follows_the_environment(tmp_path):
    got = _run(str(tmp_path / "c"))
    assert got["folder"] == str(tmp_path / "c" / "jax") == got["dir"]
    assert (tmp_path / "c" / "jax").is_dir()
    assert got["min_s"] == 0.1


def test_cache_can_be_turned_off_and_an_unwritable_home_is_no_error():
    assert _run("off")["folder"] is None
    got = _run(None)  # HOME cannot be created: the command runs without a cache
    assert got["folder"] is None and not got["dir"]
