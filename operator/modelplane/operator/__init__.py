"""Modelplane operator: reconciles ModelDeployment resources into workloads."""
