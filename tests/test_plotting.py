import io
import inspect

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from public_api import public_callables  # noqa: E402
from vizlib.plotting import (  # noqa: E402
    figure_png, live_figure, mask_outline_image, overlay_image, png_size, show_images, stretched,
)


def test_grid_draws_every_image_with_its_title():
    images = torch.rand(5, 3, 8, 8)
    fig = show_images(images, titles=list("abcde"), ncols=3)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 5 and [ax.get_title() for ax in drawn] == list("abcde")
    assert np.allclose(drawn[1].images[0].get_array(), images[1].permute(1, 2, 0).numpy())
    plt.close(fig)


def test_a_faint_image_is_stretched_for_display_only():
    faint = 0.5 + 0.02 * torch.linspace(-1, 1, 3 * 10 * 10).view(3, 10, 10)
    kept = faint.clone()
    shown = stretched(faint)
    assert shown.min() == 0 and shown.max() == 1 and torch.equal(faint, kept)
    # the order of the values is kept: a stretch, not a remapping
    assert torch.equal(shown.flatten().argsort()[5:-5], faint.flatten().argsort()[5:-5])
    fig = show_images(faint[None], stretch=True)
    drawn = fig.axes[0].images[0].get_array()
    assert np.allclose(drawn, shown.permute(1, 2, 0).numpy(), atol=1e-6)
    plt.close(fig)


def test_grid_takes_maps_and_refuses_mismatched_titles():
    fig = show_images([torch.rand(6, 6), np.zeros((6, 6, 3))])
    assert len([ax for ax in fig.axes if ax.images]) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="titles"):
        show_images(torch.rand(2, 3, 4, 4), titles=["one"])


def test_overlay_blends_a_rescaled_heat_map():
    image = torch.zeros(1, 3, 4, 4)
    heat = torch.arange(16.0).view(4, 4)
    blended = overlay_image(image, heat, alpha=1.0, cmap="gray")
    assert blended.shape == (4, 4, 3)
    assert np.allclose(blended[0, 0], 0) and np.allclose(blended[3, 3], 1)
    with pytest.raises(ValueError, match="does not match"):
        overlay_image(image, torch.zeros(3, 3))


def test_mask_outline_marks_the_border_only():
    mask = np.zeros((7, 7), bool)
    mask[1:6, 1:6] = True
    drawn = mask_outline_image(torch.zeros(1, 3, 7, 7), mask, colour=(1, 0, 0))
    assert drawn[1, 3, 0] == 1 and drawn[3, 3, 0] == 0 and drawn[0, 0, 0] == 0


def test_figure_png_is_the_png_that_savefig_writes(tmp_path):
    fig = show_images(torch.rand(1, 3, 8, 8))
    png = figure_png(fig)
    fig.savefig(tmp_path / "same.png", format="png", bbox_inches="tight")
    plt.close(fig)
    assert png.startswith(b"\x89PNG") and png == (tmp_path / "same.png").read_bytes()


def test_live_figure_redraws_on_every_change_and_leaves_no_figure_open():
    import ipywidgets

    calls = []

    def draw(weight, name):
        calls.append((weight, name))
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.set_title(f"{name} {weight}")
        return fig

    def expected(weight, name):                       # the same figure, drawn here
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.set_title(f"{name} {weight}")
        png = figure_png(fig)
        plt.close(fig)
        return png

    open_before = plt.get_fignums()
    weight, name = ipywidgets.IntSlider(value=2, min=0, max=5), ipywidgets.Dropdown(options=["a", "b"], value="a")
    panel = live_figure(draw, weight=weight, name=name)
    assert panel.children[:2] == (weight, name) and calls == [(2, "a")]          # drawn at once
    assert panel.children[-1].value == expected(2, "a")
    weight.value = 4
    name.value = "b"
    assert calls == [(2, "a"), (4, "a"), (4, "b")]
    assert panel.children[-1].value == expected(4, "b")
    assert plt.get_fignums() == open_before
    with pytest.raises(ValueError, match="at least one control"):
        live_figure(draw)


def test_live_figure_shows_a_failed_redraw_as_a_message_and_keeps_the_last_picture():
    import ipywidgets

    weight = ipywidgets.IntSlider(1, 0, 5)

    def draw(weight):
        if weight == 3:
            raise ValueError("weight 3 is not allowed here")
        fig = plt.figure(figsize=(1, 1))
        fig.suptitle(str(weight))
        return fig

    panel = live_figure(draw, weight=weight)
    message, picture = panel.children[-2], panel.children[-1]
    good = picture.value
    weight.value = 3                                     # no traceback: the message says why, the picture stays
    assert "ValueError: weight 3 is not allowed here" in message.value and picture.value == good
    weight.value = 4                                     # the next good value draws and clears the message
    assert message.value == "" and picture.value != good
    weight.value = 99                                    # set from code beyond the range: the slider clamps it
    assert weight.value == 5 and message.value == ""
    with pytest.raises(ValueError, match="weight 3"):    # the first picture's error goes to the cell that builds it
        live_figure(draw, weight=ipywidgets.IntSlider(3, 0, 5))


def test_live_figure_stops_a_draw_that_never_settles():
    import ipywidgets

    counter = ipywidgets.IntSlider(0, 0, 1000)
    calls = []

    def draw(count):                     # moves its own control on every call: it would redraw forever
        calls.append(count)
        counter.value = count + 1
        return plt.figure(figsize=(1, 1))

    open_before = plt.get_fignums()
    with pytest.raises(RuntimeError, match="draw changed the controls on each of 3 passes"):
        live_figure(draw, count=counter)
    assert calls == [0, 1, 2] and plt.get_fignums() == open_before


def test_live_figure_settles_when_draw_changes_a_control():
    import ipywidgets

    length_box, index_slider = ipywidgets.Dropdown(options=[10, 3], value=10), ipywidgets.IntSlider(8, 0, 9)
    drawn = []

    def draw(length, index):              # like the patch picker: the length sets the slider's range
        index_slider.max = length - 1     # clamps the slider's value when the list shrinks
        drawn.append((length, index))
        return titled(f"{length} {index}")

    def titled(title):
        fig = plt.figure(figsize=(1, 1))
        fig.suptitle(title)
        return fig

    open_before = plt.get_fignums()
    panel = live_figure(draw, length=length_box, index=index_slider)
    length_box.value = 3
    assert index_slider.value == 2 and drawn[-1] == (3, 2) and len(drawn) <= 3
    expected = titled("3 2")
    assert panel.children[-1].value == figure_png(expected)     # the picture shows the clamped value
    plt.close(expected)
    assert plt.get_fignums() == open_before


# ---------------------------------------------------------------- every show_* in vizlib returns a Figure


SHOW_FUNCTIONS = [
    "show_images", "show_grids", "show_spectra", "show_embeddings", "show_thumbnails", "show_neighbours",
    "show_top_patches", "show_channel", "show_occlusion", "show_maps", "show_attack",
    "show_detectors", "show_detector_counts",
]


@pytest.fixture(scope="module")
def show_calls(course):
    """One small call of every public show_* function in vizlib, by its name."""
    from vizlib import adversarial, dissection, embedding, filters, neighbours, occlusion, patches, saliency
    from vizlib.course_data import make_shapes, render_shapes

    images, labels, masks = make_shapes(3, "held_out", seed=0)
    weights = filters.filter_weights(course)
    points = torch.rand(3, 2, generator=torch.Generator().manual_seed(0))
    field = patches.receptive_field(course, "features.relu2")
    top = lambda: patches.top_activations(course, images, "features.relu2", k=2, show_progress=False)  # noqa: E731
    rendered = render_shapes(3, "held_out", seed=0)
    dissected = lambda: dissection.dissect(  # noqa: E731
        course, images, "features.relu5", dissection.course_concepts(rendered), quantile=0.05, show_progress=False)
    return {
        "show_images": lambda: show_images(images),
        "show_grids": lambda: filters.show_grids([filters.filter_grid(weights)]),
        "show_spectra": lambda: filters.show_spectra([weights]),
        "show_embeddings": lambda: embedding.show_embeddings({"points": points}, labels),
        "show_thumbnails": lambda: embedding.show_thumbnails(images, points, cells=2, size=8),
        "show_neighbours": lambda: neighbours.show_neighbours(
            images, [0], {"pixels": neighbours.nearest_neighbours(images.flatten(1), 1, queries=[0]).indices}),
        "show_top_patches": lambda: patches.show_top_patches(images, field, top(), [0, 1]),
        "show_channel": lambda: patches.show_channel(images, field, top(), 0),
        "show_occlusion": lambda: occlusion.show_occlusion(
            images, occlusion.occlusion(course, images, window=32, stride=32, show_progress=False)),
        "show_maps": lambda: saliency.show_maps(images, {"random": torch.rand(3, 64, 64)}, masks),
        "show_attack": lambda: adversarial.show_attack(
            course, images, adversarial.random_sign_noise(images, 0.05)),
        "show_detectors": lambda: dissection.show_detectors(
            images, dissection.detector_examples(course, images, dissected(), [0, 1], k=2), concept_masks=masks),
        "show_detector_counts": lambda: dissection.show_detector_counts({"trained": [dissected()]}),
    }


def test_every_show_function_is_called_below():
    shown = {name for _, name, obj in public_callables() if name.startswith("show_") and inspect.isfunction(obj)}
    assert shown == set(SHOW_FUNCTIONS)


@pytest.mark.parametrize("name", SHOW_FUNCTIONS)
def test_show_returns_a_figure(show_calls, name):
    assert set(show_calls) == set(SHOW_FUNCTIONS)
    open_before = set(plt.get_fignums())
    fig = show_calls[name]()
    assert isinstance(fig, Figure), f"{name} returned {type(fig).__name__}"
    assert fig.number in set(plt.get_fignums()) - open_before   # the figure it drew, not another
    plt.close(fig)


def test_the_live_picture_is_laid_out_at_the_png_width_not_stretched():
    import ipywidgets
    from PIL import Image

    def draw(inches):
        fig, ax = plt.subplots(figsize=(inches, 1.5))
        ax.plot([0, 1], [0, inches])
        return fig

    inches = ipywidgets.FloatSlider(value=2.0, min=1.0, max=6.0)
    picture = live_figure(draw, inches=inches).children[-1]
    for value in (2.0, 5.0):
        inches.value = value
        width, height = Image.open(io.BytesIO(picture.value)).size       # PIL reads the PNG independently
        assert picture.layout.width == f"{width}px" and (width, height) == png_size(picture.value)
        assert picture.layout.max_width == "100%" and picture.layout.height == "auto"   # shrinks only with the page
    assert int(picture.layout.width[:-2]) > 2 * 100       # 5 inches drawn at matplotlib's dpi: widened, not fixed
    with pytest.raises(ValueError, match="not PNG"):
        png_size(b"GIF89a" + bytes(30))


def test_image_picker_names_images_by_title_and_panel_controls_walk_rows():
    import ipywidgets

    from vizlib.plotting import image_picker, panel_controls

    names, picker = image_picker(2, ["cat", "dog"])
    assert names == ["cat", "dog"] and picker.options == (("cat", 0), ("dog", 1)) and picker.value == 0
    assert image_picker(3)[0] == ["image 0", "image 1", "image 2"]
    with pytest.raises(ValueError, match="got 1 titles for 2 images"):
        image_picker(2, ["cat"])
    slider = ipywidgets.IntSlider()
    panel = ipywidgets.VBox([ipywidgets.HBox([picker, slider]), ipywidgets.HTML(), ipywidgets.Image()])
    assert panel_controls(panel) == [picker, slider]
