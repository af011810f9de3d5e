import json

import torch

from vizlib.course.train_course_model import accuracy, main
from vizlib.models import course_model


def test_training_command_writes_weights_the_loader_accepts(tmp_path, capsys):
    out = tmp_path / "course_model.pt"
    main(["--epochs", "1", "--train-size", "256", "--held-out-size", "128", "--out", str(out)])
    metadata = json.loads(out.with_suffix(".json").read_text())
    assert metadata["train_size"] == 256 and 0 <= metadata["held_out_accuracy"] <= 1
    model = course_model(out)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert not torch.equal(model.std, torch.full_like(model.std, 0.25))  # measured on the data
    assert "wrote" in capsys.readouterr().out


def test_accuracy_counts_argmax_hits():
    class Fixed(torch.nn.Module):
        device = torch.device("cpu")

        def forward(self, images):
            return images[:, 0, 0, :2]  # scores = first two pixels of the red channel

    images = torch.zeros(4, 3, 1, 2)
    images[0, 0, 0, 1] = images[1, 0, 0, 1] = images[2, 0, 0, 0] = 1.0
    assert accuracy(Fixed(), images, torch.tensor([1, 1, 1, 0]), batch_size=3) == 0.75
