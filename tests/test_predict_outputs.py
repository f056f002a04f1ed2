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
