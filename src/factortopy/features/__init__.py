"""Backbone features, extracted once per image and reused: the (images, L, grid^2 + 1, C_max) store."""
