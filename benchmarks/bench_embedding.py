"""t-SNE as notebook 03 runs it: scikit-learn's TSNE against vizlib.embedding.tsne (openTSNE).

Both start from the same PCA-to-50 step on the course model's features, at the
notebook's two sizes (400 points in fast mode, 2000 at teaching quality), and reach
the same trustworthiness. Goal: vizlib's choice is at least as fast (speed-up >= 1.0);
this row is the measurement behind choosing openTSNE.
"""

from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from benchmarks.harness import Comparison
from vizlib.course_data import make_shapes
from vizlib.embedding import tsne
from vizlib.models import course_model
from vizlib.neighbours import extract_features


def comparisons():
    images = make_shapes(2000, "held_out", seed=0).images
    features = extract_features(course_model(), images, show_progress=False).numpy()
    for n in (400, 2000):
        subset = features[:n]

        def scikit_learn(subset=subset):
            reduced = PCA(n_components=50, random_state=0).fit_transform(subset)
            TSNE(n_components=2, perplexity=30, random_state=0).fit_transform(reduced)

        def vizlib_tsne(subset=subset):
            tsne(subset, perplexity=30, seed=0)

        yield Comparison(
            f"t-SNE of {n} course-model features (perplexity 30)",
            ("sklearn.manifold.TSNE", scikit_learn),
            ("vizlib tsne (openTSNE)", vizlib_tsne),
            goal="speed-up >= 1.0",
            repeats=3,
        )
