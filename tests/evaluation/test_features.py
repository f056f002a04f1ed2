"""Feature extraction (one function for Backbone and GeoModel, in-memory and file-backed splits),
the kNN-on-features baseline, and the true-cell centroid being beatable (so it is not a bound)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from geocell import haversine, spherical_mean  # noqa: E402
from geocell_engine.data.dataset import GeoSplit  # noqa: E402
from geocell_engine.errors import BaselineError, DataError  # noqa: E402
from geocell_engine.evaluation.baselines import knn_feature_baseline, true_cell_centroid  # noqa: E402
from geocell_engine.evaluation.features import extract_features, frozen_knn_baseline  # noqa: E402

TINY = "test_efficientnet"


@pytest.fixture(scope="module")
def backbone():
    from heads import Backbone

    torch.manual_seed(0)
    return Backbone(TINY, pretrained=False)


def regions(n_per=6, seed=0):
    """Three regions with their own dominant colour (as in test_baselines)."""
    rng = np.random.default_rng(seed)
    centres = {"FRA": (47.0, 2.0), "BRA": (-10.0, -52.0), "AUS": (-25.0, 134.0)}
    colours = {"FRA": (200, 40, 40), "BRA": (40, 200, 40), "AUS": (40, 40, 200)}
    lat, lon, country, images = [], [], [], []
    for name, (c_lat, c_lon) in centres.items():
        lat.append(c_lat + rng.normal(0, 1.0, n_per))
        lon.append(c_lon + rng.normal(0, 1.0, n_per))
        country += [name] * n_per
        noise = rng.normal(0, 25, (n_per, 16, 16, 3))
        images.append(np.clip(np.array(colours[name]) + noise, 0, 255).astype(np.uint8))
    lat, lon, country = np.concatenate(lat), np.concatenate(lon), np.array(country)
    return GeoSplit("test", lat, lon, country, np.array([f"{c}-1" for c in country]),
                    np.arange(lat.size).astype(str), images=np.concatenate(images))


def test_backbone_and_model_give_the_same_features(backbone):
    from heads import GeoModel
    from heads.classification import CountryHead

    split = regions()
    f = extract_features(backbone, split, image_size=32, batch_size=7)
    assert f.shape == (18, backbone.num_features) and f.dtype == np.float32
    model = GeoModel(backbone, {"country": CountryHead(backbone.num_features, countries=3)})
    model.train()
    g = extract_features(model, split.images, image_size=32, batch_size=18)
    assert model.training  # the mode is restored
    np.testing.assert_allclose(f, g, rtol=1e-4, atol=1e-5)  # batch size and wrapper do not matter


def test_file_backed_split_and_bad_images(backbone, tmp_path):
    from PIL import Image

    split = regions(n_per=2)
    paths = []
    for i, img in enumerate(split.images):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(img).save(paths[-1])
    (tmp_path / "bad.png").write_bytes(b"not an image")
    files = GeoSplit("val", split.lat, split.lon, split.country, split.admin1, split.ids,
                     paths=np.array(paths[:-1] + [str(tmp_path / "bad.png")]))
    with pytest.raises(DataError, match="bad.png"):
        extract_features(backbone, files, image_size=32)
    f, idx = extract_features(backbone, files, image_size=32, on_bad_image="skip", return_index=True)
    assert f.shape[0] == 5 and idx.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(DataError, match="uint8 array"):
        extract_features(backbone, np.zeros((2, 8, 8, 3), np.float32), image_size=32)
    with pytest.raises(DataError, match="heads.GeoModel or a heads.Backbone"):
        extract_features(torch.nn.Identity(), split.images, image_size=32)
    with pytest.raises(DataError, match="image_size"):
        extract_features(backbone, split.images, image_size=0)


def test_frozen_knn_baseline(backbone):
    split = regions()
    p = frozen_knn_baseline(split, split, backbone=backbone, image_size=32, k=1)
    assert p.name == f"kNN frozen {TINY} features (k=1)" and p.ids.tolist() == split.ids.tolist()
    np.testing.assert_allclose(p.pred_lat, split.lat, atol=1e-9)  # each image is its own nearest neighbour
    assert (p.pred_country == split.country).all() and (p.pred_admin1 == split.admin1).all()


def test_knn_feature_baseline_checks():
    f = np.eye(3)
    p = knn_feature_baseline(f, [0.0, 10.0, 20.0], [0, 0, 0], ["A", "B", "C"], 5 * f[:2], [0.0, 10.0], [0, 0],
                             ["A", "B"], k=1)
    assert p.pred_country.tolist() == ["A", "B"]  # scale-free: cosine
    with pytest.raises(BaselineError, match=r"test_features\[1\] is all zeros"):
        knn_feature_baseline(f, [0.0, 10.0, 20.0], [0, 0, 0], list("ABC"), np.array([[1.0, 0, 0], [0, 0, 0]]),
                             [0.0, 1.0], [0, 0], ["A", "A"], k=1)
    with pytest.raises(BaselineError, match="columns"):
        knn_feature_baseline(f, [0.0, 10.0, 20.0], [0, 0, 0], list("ABC"), np.ones((1, 2)), [0.0], [0], ["A"], k=1)
    with pytest.raises(BaselineError, match=r"must be \(3, F\)"):
        knn_feature_baseline(f[:2], [0.0, 10.0, 20.0], [0, 0, 0], list("ABC"), f, [0.0] * 3, [0] * 3, ["A"] * 3, k=1)


def test_true_cell_centroid_can_be_beaten():
    """A point near the border of two cells: the equal-weight mean of the two centroids (what the
    default location rule computes) is nearer than the true cell's centroid."""
    from geocell.s2cells import build_s2

    rng = np.random.default_rng(0)
    lat, lon = rng.normal(48, 1, 300), rng.normal(2, 1, 300)
    admin1 = np.full(300, "FRA-1")
    cells = build_s2(lat, lon, tau_min=5, tau_max=[60], point_admin1=admin1, admin1_country={"FRA-1": "FRA"})[0]
    c_lat, c_lon = np.asarray(cells.centroid_lat), np.asarray(cells.centroid_lon)
    d = haversine(c_lat[:, None], c_lon[:, None], c_lat[None, :], c_lon[None, :])
    np.fill_diagonal(d, np.inf)
    i, j = np.unravel_index(np.argmin(d), d.shape)
    m_lat, m_lon = spherical_mean(c_lat[[i, j]], c_lon[[i, j]])
    ref = true_cell_centroid(cells, [m_lat], [m_lon], ["FRA"])
    assert ref.true_cell[0] in (i, j)
    assert haversine(m_lat, m_lon, ref.pred_lat[0], ref.pred_lon[0]) > 1.0  # km; the mean is at 0 km


def test_cell_probabilities(backbone):
    from heads import GeoModel
    from heads.classification import CellHead

    from geocell_engine.evaluation.features import cell_probabilities

    head = CellHead(backbone.num_features, 4, cell_lat=[0.0, 10.0, 20.0, 30.0], cell_lon=[0.0, 0.0, 0.0, 0.0])
    model = GeoModel(backbone, {"region": head})
    split = regions(n_per=2)
    p = cell_probabilities(model, split, image_size=32, batch_size=4)
    assert p.shape == (6, 4) and np.allclose(p.sum(axis=1), 1.0)
    with pytest.raises(DataError, match="no 'cells' head"):
        cell_probabilities(model, split, image_size=32, head="cells")
