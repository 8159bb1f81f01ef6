"""The foundation layer: what every other layer may use and which imports none of them."""
