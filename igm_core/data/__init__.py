"""Datasets: per-modality tensors and integer labels with train / val / test splits.

Kept empty on purpose: npz.py (numpy only) must import without pulling in torch via base.py.
"""
