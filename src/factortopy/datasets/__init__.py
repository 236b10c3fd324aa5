"""Datasets that ship with factortopy: planted-truth subjects made offline."""
