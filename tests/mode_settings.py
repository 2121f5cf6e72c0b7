"""Settings as a fresh process computes them from its environment alone.

The test settings change what several tests are about (Redis for the cache, raised limits), so the
embedded mode's or production's own values are read in a process of their own.
"""

import json
import subprocess

from tests.processes import PROJECT_DIR, VENV_BIN, clean_env

TEST_SECRETS = {
    "SECRET_KEY": "s" * 50,
    "CREDENTIALS_KEY": "dGhpcy1pcy1hLTMyLWJ5dGUta2V5LWZvci10ZXN0cyE=",
}


def settings_of(module: str, names: list[str], var_dir, **env: str) -> dict:
    """`names` of the settings module `module`, imported with no DATABASE_URL or REDIS_URL (the embedded
    mode) unless `env` sets them."""
    code = (
        "import importlib, json, sys; m = importlib.import_module(sys.argv[1]); "
        "print(json.dumps({name: getattr(m, name) for name in sys.argv[2:]}, default=str))"
    )
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code, module, *names],
        cwd=PROJECT_DIR,
        env=clean_env(DWC_VAR_DIR=str(var_dir), **TEST_SECRETS, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
