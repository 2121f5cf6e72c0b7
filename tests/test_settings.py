import subprocess

from tests.processes import PROJECT_DIR, VENV_BIN, clean_env


def run_check(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=clean_env(DJANGO_SETTINGS_MODULE="config.settings.production", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_secret_key(tmp_path):
    result = run_check(DWC_VAR_DIR=str(tmp_path), CREDENTIALS_KEY="x")
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production." in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_production_refuses_a_credentials_key_that_is_not_a_fernet_key(tmp_path):
    result = run_check(DWC_VAR_DIR=str(tmp_path), SECRET_KEY="s" * 50, CREDENTIALS_KEY="not-a-key")
    assert result.returncode != 0
    assert "CREDENTIALS_KEY must be one or more comma-separated Fernet keys" in result.stderr


def test_production_starts_with_its_secrets(tmp_path):
    result = run_check(
        DWC_VAR_DIR=str(tmp_path), SECRET_KEY="s" * 50, CREDENTIALS_KEY="dGhpcy1pcy1hLTMyLWJ5dGUta2V5LWZvci10ZXN0cyE="
    )
    assert result.returncode == 0, result.stderr


def test_production_hashes_passwords_with_argon2_at_its_full_cost(tmp_path):
    # The suite hashes with cheap Argon2 parameters (config/settings/test.py); the product must not.
    script = (
        "from django.contrib.auth.hashers import get_hasher, make_password;"
        "hasher = get_hasher(); print(type(hasher).__module__, hasher.memory_cost, hasher.time_cost);"
        "print('parameters', make_password('pw').split('$')[3])"
    )
    result = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "shell", "-c", script],
        cwd=PROJECT_DIR,
        env=clean_env(DJANGO_SETTINGS_MODULE="config.settings.base", DWC_VAR_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "django.contrib.auth.hashers 102400 2" in result.stdout.splitlines()
    assert "parameters m=102400,t=2,p=8" in result.stdout.splitlines()


def test_values_signed_with_an_earlier_secret_key_still_verify_while_it_is_a_fallback(tmp_path):
    # Rotating SECRET_KEY (docs/operations.md): sessions and signed links made with the old key keep
    # working while it is listed in SECRET_KEY_FALLBACKS, and stop once it is not.
    script = (
        "from django.core import signing; from django.conf import settings;"
        "print(settings.SECRET_KEY_FALLBACKS);"
        "print(signing.loads(signing.dumps('kept', key='old-key-1'), max_age=60))"
    )

    def run(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", "shell", "-c", script],
            cwd=PROJECT_DIR,
            env=clean_env(DJANGO_SETTINGS_MODULE="config.settings.base", DWC_VAR_DIR=str(tmp_path), **env),
            capture_output=True,
            text=True,
            timeout=60,
        )

    rotated = run(SECRET_KEY="new-key", SECRET_KEY_FALLBACKS=" old-key-1 , old-key-0")
    assert rotated.returncode == 0, rotated.stderr
    assert {"['old-key-1', 'old-key-0']", "kept"} <= set(rotated.stdout.splitlines())
    expired = run(SECRET_KEY="new-key")
    assert expired.returncode != 0 and "BadSignature" in expired.stderr
