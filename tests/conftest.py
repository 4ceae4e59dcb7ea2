import os, pytest

@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    "Each test gets its own torch cache and data cache, so nothing leaks between tests or from the machine."
    monkeypatch.setenv('TORCH_HOME', str(tmp_path/'torch_home'))
    monkeypatch.delenv('PROBING_SOTA_DATA', raising=False)
    monkeypatch.delenv('PROBING_SOTA_OFFLINE', raising=False)
