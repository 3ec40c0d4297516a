"""Modelplane serving runtime: one generic container that serves a registry model."""
