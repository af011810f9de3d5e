import socket

import torch
import torchvision

from test_datasets import make_tiny_imagenette
from vizlib import config, models
from vizlib.course import download


def test_download_command_uses_what_is_already_cached(tmp_path, monkeypatch, capsys):
    """The real download path, offline: everything is pre-filled, so nothing is fetched."""
    monkeypatch.setattr(socket.socket, "connect", lambda *a: (_ for _ in ()).throw(AssertionError("network")))
    old_hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        path = models.cached_weights_path("squeezenet1_1")
        path.parent.mkdir(parents=True)
        torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
        monkeypatch.setattr(config, "CACHE_DIR", make_tiny_imagenette(tmp_path / "data"))
        download.main(["--models", "squeezenet1_1"])
    finally:
        torch.hub.set_dir(old_hub)
    out = capsys.readouterr().out
    assert "squeezenet1_1" in out and "Imagenette: 2 validation images" in out
