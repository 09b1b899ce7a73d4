"""Imports ganloss_cuda as the environment says, computes one loss, and prints one JSON line:
whether the extension loaded, its load error and build facts, and the FallbackWarning messages.
Run by the loader tests in a fresh interpreter (tests/_subprocess.py)."""
import json
import warnings

import torch

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import ganloss_cuda
    from ganloss_cuda import _ext

    loss = ganloss_cuda.feature_loss(torch.ones(2, 3), torch.zeros(2, 3))
    assert float(loss) == 1.0
fallback = [str(w.message) for w in caught
            if issubclass(w.category, ganloss_cuda.FallbackWarning)]
print(json.dumps({"available": ganloss_cuda.available(), "load_error": _ext.load_error,
                  "build_info": _ext.build_info, "fallback": fallback}))
