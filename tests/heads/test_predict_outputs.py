"""GeoModel.predict with precomputed outputs gives exactly what it computes itself."""

import torch

from heads import GeoModel


def test_predict_reuses_outputs():
    torch.manual_seed(0)
    model = GeoModel.build("test_efficientnet", {"country": {"countries": ["AAA", "BBB", "CCC"]}, "latlon": {}},
                           pretrained=False)
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        outputs = model(x)
    a, b = model.predict(x, k=2), model.predict(x, k=2, outputs=outputs)
    assert torch.equal(a.lat, b.lat) and torch.equal(a.country.prob, b.country.prob)
    assert a.country.labels == b.country.labels


def test_cell_head_from_a_real_cellset():
    import numpy as np

    from geocell.s2cells import build_s2
    from heads import CellHead

    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-50, 50, 3000), rng.uniform(-170, 170, 3000)
    admin1 = np.where(lon < 0, np.where(lat < 0, "W-1", "W-2"), "E-1")
    cells = build_s2(lat, lon, tau_min=10, tau_max=300, point_admin1=admin1,
                     admin1_country={"W-1": "WWW", "W-2": "WWW", "E-1": "EEE"})[0]
    head = CellHead.from_cellset(cells, 16)
    assert head.countries == cells.country_vocab() == ("EEE", "WWW")
    assert head.admin1 == cells.admin1_vocab() and head.num_cells == len(cells)
    probs = head(torch.randn(5, 16)).country_probs
    assert torch.allclose(probs.sum(dim=1), torch.ones(5))
