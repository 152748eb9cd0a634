"""Where the network puts each image: one layer's activations for many images, projected to 2-D.

PCA is computed here with NumPy; t-SNE comes from scikit-learn when it is installed (the ``explain``
extra). Successive projections of the same images can be lined up with the previous one, so points
do not jump to the mirror side from one epoch to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.explain.activations import layer_outputs_for
from engine.explain.progress import CancelCheck, Progress, Reporter
from engine.layers import Dense, Dropout
from engine.model import Model

METHODS = ("pca", "tsne")


def tsne_available() -> bool:
    try:
        import sklearn.manifold  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Embedding:
    """``points`` (N, 2), one per image; ``explained`` the share of the variance the two PCA axes hold
    (NaN for t-SNE); ``dimensions`` the length of the layer's activation vectors."""

    layer: str
    method: str
    points: np.ndarray
    explained: float
    dimensions: int


def vector_layers(model: Model) -> list[str]:
    """Layers worth embedding: every layer except the output, feature maps included (they are flattened)."""
    return [info.name for info in model.analysis.layers[:-1] if info.output_shape is not None]


def default_embedding_layer(model: Model) -> str:
    """The last hidden Dense layer (its input to the classifier); else the last vector before the
    output; else the output itself."""
    infos = model.analysis.layers
    hidden = [(layer, info) for layer, info in zip(model.layers[:-1], infos[:-1]) if info.output_shape is not None]
    dense = [info.name for layer, info in hidden if isinstance(layer, Dense)]
    if dense:
        return dense[-1]
    vectors = [info.name for layer, info in hidden
               if len(info.output_shape) == 1 and not isinstance(layer, Dropout)]
    return vectors[-1] if vectors else infos[-1].name


def pca_2d(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """The first two principal components of (N, D) features: (points (N, 2), share of variance)."""
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)
    total = float((x * x).sum())
    n, d = x.shape
    if n < 2 or total <= 0:
        return np.zeros((n, 2)), 0.0
    if min(n, d) <= 256:
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        axes = vt[:2].T
    else:
        # Randomised subspace iteration (Halko et al.): the top directions of a wide matrix without its full SVD.
        q = np.random.default_rng(seed).standard_normal((d, 8))
        for _ in range(6):
            q, _ = np.linalg.qr(x.T @ (x @ q))
        _, s, vt = np.linalg.svd(x @ q, full_matrices=False)
        axes = q @ vt[:2].T
    if axes.shape[1] < 2:
        axes = np.pad(axes, ((0, 0), (0, 2 - axes.shape[1])))
    points = x @ axes
    return points, float((points * points).sum() / total)


def tsne_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """t-SNE of (N, D) features through scikit-learn (ImportError when it is not installed)."""
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float64)
    if len(x) < 5:
        return pca_2d(x)[0]
    # Reduced by PCA first (as is usual) so t-SNE's neighbour search stays quick on wide layers.
    if x.shape[1] > 50:
        x = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(x[: min(len(x), 2000)], full_matrices=False)
        x = x @ vt[:50].T
    perplexity = float(min(30.0, (len(x) - 1) / 3))
    return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)


def align(points: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """Flip each axis of ``points`` so it points the way it did in ``reference`` (the same images)."""
    if reference is None or reference.shape != points.shape or not len(points):
        return points
    signs = np.where((points * reference).sum(axis=0) < 0, -1.0, 1.0)
    return points * signs


def embed(model: Model, images: np.ndarray, layer: str | None = None, method: str = "pca",
          reference: np.ndarray | None = None, batch_size: int = 256, seed: int = 0,
          progress: Progress | None = None, cancelled: CancelCheck | None = None) -> Embedding:
    """Project ``layer``'s activations (the default embedding layer when None) for ``images``
    (N, H, W, C), normalised inputs, to 2-D with ``method`` ("pca" or "tsne")."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    name = layer or default_embedding_layer(model)
    name = model.names[model.index_of(name)]
    reporter = Reporter(1, progress, cancelled)
    share = 0.5 if method == "tsne" else 0.9
    features = layer_outputs_for(model, images, name, batch_size,
                                 (lambda f: progress(f * share)) if progress is not None else None, cancelled,
                                 reduce=lambda out: out.reshape(len(out), -1).astype(np.float32))
    reporter.check()
    if method == "tsne":
        points, explained = tsne_2d(features, seed), float("nan")
    else:
        points, explained = pca_2d(features, seed)
    points = align(np.asarray(points, dtype=np.float64), reference)
    reporter.step()
    return Embedding(name, method, points, explained, int(features.shape[1]) if features.ndim == 2 else 0)
