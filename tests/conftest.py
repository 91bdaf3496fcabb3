"""Shared fixtures. Unit tests need nothing; host tests boot the real ComfyUI once per session."""
from __future__ import annotations

from pathlib import Path

import pytest

from tools import comfy_host as host_support

_COMFY = host_support.find_comfyui()


def pytest_report_header(config):
    if _COMFY is None:
        skipped = " Host and end-to-end tests will be SKIPPED. !!!"
        return "!!! " + host_support.HOW_TO_GET_IT + skipped
    return f"ComfyUI host: {_COMFY}"


def pytest_collection_modifyitems(config, items):
    if _COMFY is not None:
        return
    skip = pytest.mark.skip(reason=host_support.HOW_TO_GET_IT)
    for item in items:
        if "host" in item.keywords or "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def comfy_root() -> Path:
    if _COMFY is None:
        pytest.skip(host_support.HOW_TO_GET_IT)
    return _COMFY


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lm_host") / "models"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def host(comfy_root, models_dir, tmp_path_factory):
    """The booted ComfyUI with this pack loaded; `.layer_ops`, `.memory`, `.labels`, ... are the
    pack's modules."""
    custom_nodes = tmp_path_factory.mktemp("custom_nodes")
    h = host_support.boot(comfy_root, models_dir, custom_nodes)
    from tools import random_models

    h.model_paths = random_models.write_models(str(models_dir))
    return h


@pytest.fixture(scope="session")
def models(host):
    """Loaded random PixArt models by variant name, through ComfyUI's own loader."""
    import comfy.sd

    cache: dict = {}

    def get(name: str = "pixart_alpha_512"):
        if name not in cache:
            cache[name] = comfy.sd.load_diffusion_model(host.model_paths[name])
        return cache[name]

    return get


@pytest.fixture(scope="module")
def temp_dir(host, tmp_path_factory):
    """Nodes that show pictures (PreviewImage, Layer Box) write into ComfyUI's temp folder:
    point it at a test folder, never into ~/ComfyUI."""
    fp = host.folder_paths
    before = fp.get_temp_directory()
    d = tmp_path_factory.mktemp("comfy_temp")
    fp.set_temp_directory(str(d))
    yield d
    fp.set_temp_directory(before)


@pytest.fixture(scope="module")
def vae(host):
    """TAESD through ComfyUI's own VAELoader."""
    return host.nodes.VAELoader().load_vae("taesd")[0]
