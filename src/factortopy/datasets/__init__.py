"""Synthetic data factortopy makes itself, offline: planted-truth subjects (``planted``), the
bundled photographs they show (``photos``) and tiny files in the real release layouts with known
answers for tests and examples (``fixtures``).

Not to be confused with :mod:`factortopy.data`, which READS the real releases (Algonauts 2023, raw
NSD) and your own data: ``data`` reads what exists, ``datasets`` makes what can be checked against
a known truth.
"""
