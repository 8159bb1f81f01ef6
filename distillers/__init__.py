"""Distillers (DMD2, Hyper-SD, ADM/DMDX, Lightning) and their teacher adapter layer.

Not implemented yet: this package is reserved by the layout and is filled by the
distillers issue; nothing imports it today.
"""
