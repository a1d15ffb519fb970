"""Marks the doctests that train (or run a ResNet) as `slow`: together minutes of compilation."""

import pytest
from _pytest.doctest import DoctestItem

TRAINING_DOCTESTS = {
    "mmident_jax",
    "mmident_jax.train",
    "mmident_jax.driver",
    "mmident_jax.evaluation",
    "mmident_jax.twoview",
    "mmident_jax.multiview.experiment",
    "mmident_jax.imgtxt.experiment",
    "mmident_jax.imgtxt.encoders",
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items):
    for item in items:
        if isinstance(item, DoctestItem) and item.dtest.globs.get("__name__") in TRAINING_DOCTESTS:
            item.add_marker(pytest.mark.slow)
