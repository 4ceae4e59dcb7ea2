import os, pytest

@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    "Each test gets its own torch cache, data cache and image-folder cache, so nothing leaks between tests or from the machine."
    monkeypatch.setenv('TORCH_HOME', str(tmp_path/'torch_home'))
    monkeypatch.setenv('PROBING_SOTA_CACHE', str(tmp_path/'image_cache'))
    monkeypatch.delenv('PROBING_SOTA_DATA', raising=False)
    monkeypatch.delenv('PROBING_SOTA_OFFLINE', raising=False)
